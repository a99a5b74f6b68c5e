//! FNV-1a, 64 bits: the one stable hash of the crate. Finding fingerprints,
//! cache keys and cache versions must not change across runs, platforms or
//! releases, as `std`'s hasher may.

/// A running hash over parts; each part is followed by a 0 byte, so that
/// `("ab", "c")` and `("a", "bc")` differ.
#[derive(Debug, Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    /// Feed one part.
    pub fn part(&mut self, bytes: &[u8]) -> &mut Fnv {
        for &b in bytes.iter().chain(std::iter::once(&0u8)) {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    /// The hash so far.
    pub fn finish(&self) -> u64 {
        self.0
    }
}

/// The hash of these parts.
pub fn fnv(parts: &[&[u8]]) -> u64 {
    let mut h = Fnv::default();
    for p in parts {
        h.part(p);
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_separated_and_values_are_stable() {
        assert_ne!(fnv(&[b"ab", b"c"]), fnv(&[b"a", b"bc"]));
        // FNV-1a of "a\0", computed independently: fingerprints never drift.
        assert_eq!(fnv(&[b"a"]), 0x089b_e207_b544_f1e4);
    }
}
