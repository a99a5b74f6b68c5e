//! Reading files without blocking or exhausting memory: every file kvmtk
//! reads whole (an API model, a baseline, a C file of a directory tree, a
//! cache entry) goes through [`read_bounded`], which opens it once, asks
//! the opened descriptor what it is, and reads at most a limit.
//!
//! Checking a path and then opening it would race with whoever replaces
//! the file in between, so the checks are made on the opened descriptor
//! (`fstat`): the open itself never blocks (`O_NONBLOCK`: a FIFO opens at
//! once, and is then refused for not being a regular file), and for files
//! kvmtk names itself (cache entries) it never follows a symbolic link
//! (`O_NOFOLLOW`).

use std::fs::File;
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _};
use std::path::Path;

/// Whether the last component of the path may be a symbolic link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Links {
    /// Follow it: a path the user gave may be a link to the real file.
    Follow,
    /// Refuse it (`O_NOFOLLOW`): for paths kvmtk names itself, where a
    /// link can only be something planted or broken.
    Refuse,
}

/// Why a file was not read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Opening or reading failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The path names a FIFO, a device, a directory or a socket.
    #[error("it is {kind}, not a regular file")]
    NotRegular {
        /// What it is, with its article ("a FIFO").
        kind: &'static str,
    },
    /// The file holds more than the limit.
    #[error("it is {} ({size} bytes), over the limit of {}", human_size(*size), human_size(*limit))]
    TooLarge {
        /// Its size, or the limit plus one when it grew while being read.
        size: u64,
        /// The limit it is over.
        limit: u64,
    },
}

/// The bytes of the regular file at `path`, if it holds at most `limit`
/// bytes. Never blocks on a FIFO or a device and never reads more than
/// `limit + 1` bytes, whatever the path names.
pub fn read_bounded(path: &Path, limit: u64, links: Links) -> Result<Vec<u8>, ReadError> {
    let mut flags = libc::O_NONBLOCK;
    if links == Links::Refuse {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new().read(true).custom_flags(flags).open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(ReadError::NotRegular { kind: kind_of(&meta.file_type()) });
    }
    if meta.len() > limit {
        return Err(ReadError::TooLarge { size: meta.len(), limit });
    }
    read_at_most(file, meta.len(), limit)
}

/// Read what `file` holds, at most `limit` bytes: a file that grew past
/// `limit` since `fstat` (still being written) is refused, not read on.
fn read_at_most(file: File, expected: u64, limit: u64) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::with_capacity(usize::try_from(expected).unwrap_or(0));
    file.take(limit.saturating_add(1)).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(ReadError::TooLarge { size: limit + 1, limit });
    }
    Ok(bytes)
}

fn kind_of(t: &std::fs::FileType) -> &'static str {
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_symlink() {
        "a symbolic link"
    } else {
        "not a regular file"
    }
}

/// `n` bytes as a reader wants to see it: `512 bytes`, `4 MiB`, `1.5 GiB`.
pub fn human_size(n: u64) -> String {
    const KIB: u64 = 1 << 10;
    const MIB: u64 = 1 << 20;
    const GIB: u64 = 1 << 30;
    let scaled = |unit: u64, name: &str| {
        if n / unit * unit == n {
            format!("{} {name}", n / unit)
        } else {
            format!("{:.1} {name}", n as f64 / unit as f64)
        }
    };
    match n {
        n if n >= GIB => scaled(GIB, "GiB"),
        n if n >= MIB => scaled(MIB, "MiB"),
        n if n >= KIB => scaled(KIB, "KiB"),
        n => format!("{n} bytes"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regular_files_within_the_limit_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"12345").unwrap();
        assert_eq!(read_bounded(&p, 5, Links::Refuse).unwrap(), b"12345");
        let over = read_bounded(&p, 4, Links::Refuse).unwrap_err();
        assert!(matches!(over, ReadError::TooLarge { size: 5, limit: 4 }), "{over:?}");
    }

    #[test]
    fn links_are_refused_only_when_asked() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a");
        std::fs::write(&p, b"x").unwrap();
        let link = dir.path().join("l");
        std::os::unix::fs::symlink(&p, &link).unwrap();
        assert_eq!(read_bounded(&link, 5, Links::Follow).unwrap(), b"x");
        assert!(matches!(read_bounded(&link, 5, Links::Refuse), Err(ReadError::Io(_))));
    }

    #[test]
    fn devices_fifos_and_directories_are_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
        for (p, kind) in
            [(fifo.as_path(), "a FIFO"), (Path::new("/dev/zero"), "a character device"), (dir.path(), "a directory")]
        {
            let e = read_bounded(p, 1 << 20, Links::Follow).unwrap_err();
            assert_eq!(e.to_string(), format!("it is {kind}, not a regular file"), "{}", p.display());
        }
    }

    #[test]
    fn sizes_read_like_a_person_writes_them() {
        assert_eq!(human_size(4 << 20), "4 MiB");
        assert_eq!(human_size(3 << 29), "1.5 GiB");
        assert_eq!(human_size(100), "100 bytes");
        assert_eq!(human_size(1536), "1.5 KiB");
    }
}
