//! What the tree's KVM Kconfig files say an arch builds: `config` symbols
//! declared in `virt/kvm/Kconfig` and `arch/<arch>/kvm/Kconfig`, and the
//! symbols each arch's KVM options `select`. Read as data (never parsed as
//! C), so an `#ifdef CONFIG_X` in common code can be judged per arch: when
//! `X` is declared here and nothing the arch's KVM options select reaches
//! it, the code under it is not built for that arch (upstream's
//! `CONFIG_KVM_GENERIC_HARDWARE_ENABLING`, which PPC does not select).
//!
//! Deliberately over-approximate on the side of "built": every option of
//! the arch's KVM Kconfig counts as enabled, a `select X if Y` counts as
//! selecting `X`, and a symbol not declared in the files read is unknown
//! (never "off"). A missing Kconfig file only means less is known.

use std::collections::{BTreeMap, BTreeSet};

use crate::source::SourceTree;

/// The common KVM Kconfig, relative to the tree root.
pub const COMMON_KCONFIG: &str = "virt/kvm/Kconfig";

/// An arch's KVM Kconfig, relative to the tree root.
pub fn arch_kconfig(arch: &str) -> String {
    format!("arch/{arch}/kvm/Kconfig")
}

/// The KVM Kconfig symbols of a tree.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Kconfig {
    /// Every `config` (and `menuconfig`) symbol declared in the files read.
    declared: BTreeSet<String>,
    /// What each symbol `select`s, by the file that declares it: the
    /// common Kconfig (`None`) and each arch's. Per file, because every
    /// arch declares a `config KVM` of its own: one arch's selects must not
    /// count for another.
    selects: BTreeMap<Option<String>, BTreeMap<String, BTreeSet<String>>>,
    /// The symbols declared in each arch's KVM Kconfig.
    arch_options: BTreeMap<String, BTreeSet<String>>,
    /// The unconditional selects (`select X`, not `select X if Y`), by
    /// file as `selects`: what is on whenever the selecting symbol is.
    always_selects: BTreeMap<Option<String>, BTreeMap<String, BTreeSet<String>>>,
    /// Which options build each arch file, from the arch's KVM Makefile.
    builds: BTreeMap<String, crate::kbuild::BuildConditions>,
}

/// What each symbol selects: every select, and the unconditional ones.
type Selects = BTreeMap<String, BTreeSet<String>>;

/// The symbols declared in `text` and what each selects.
#[cfg(test)]
fn read(text: &str) -> (BTreeSet<String>, Selects) {
    let (declared, selects, _) = read_all(text);
    (declared, selects)
}

/// [`read`], with the unconditional selects apart.
fn read_all(text: &str) -> (BTreeSet<String>, Selects, Selects) {
    let mut declared = BTreeSet::new();
    let mut selects: Selects = BTreeMap::new();
    let mut always: Selects = BTreeMap::new();
    let mut current: Option<String> = None;
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("").trim();
        let mut words = line.split_whitespace();
        match words.next() {
            Some("config" | "menuconfig") => {
                current = words.next().map(str::to_string);
                declared.extend(current.clone());
            }
            Some("select" | "imply") => {
                if let (Some(c), Some(sym)) = (&current, words.next()) {
                    selects.entry(c.clone()).or_default().insert(sym.to_string());
                    if words.next().is_none() {
                        always.entry(c.clone()).or_default().insert(sym.to_string());
                    }
                }
            }
            Some("menu" | "endmenu" | "if" | "endif" | "choice" | "endchoice" | "source" | "comment") => {
                current = None;
            }
            _ => {}
        }
    }
    (declared, selects, always)
}

impl Kconfig {
    /// The Kconfig of `source`: its `virt/kvm/Kconfig` and the
    /// `arch/<arch>/kvm/Kconfig` of each arch it holds.
    pub fn of(source: &SourceTree) -> Kconfig {
        let mut k = Kconfig::default();
        for f in &source.files {
            let arch = match f.arch.as_deref() {
                Some(a) if f.path == arch_kconfig(a) => Some(a),
                None if f.path == COMMON_KCONFIG => None,
                _ => continue,
            };
            k.add_file(arch, &f.text());
        }
        for f in &source.files {
            if let Some(a) = f.arch.as_deref().filter(|a| f.path == crate::kbuild::arch_makefile(a)) {
                let dir = f.path.trim_end_matches("/Makefile");
                k.builds.insert(a.to_string(), crate::kbuild::BuildConditions::read(dir, &f.text()));
            }
        }
        k
    }

    /// Add one Kconfig file: the common one (`arch` None) or an arch's.
    fn add_file(&mut self, arch: Option<&str>, text: &str) {
        let (declared, selects, always) = read_all(text);
        let own_always = self.always_selects.entry(arch.map(str::to_string)).or_default();
        for (c, s) in always {
            own_always.entry(c).or_default().extend(s);
        }
        if let Some(a) = arch {
            self.arch_options.entry(a.to_string()).or_default().extend(declared.iter().cloned());
        }
        self.declared.extend(declared);
        let own = self.selects.entry(arch.map(str::to_string)).or_default();
        for (c, s) in selects {
            own.entry(c).or_default().extend(s);
        }
    }

    /// The symbols that may be enabled when `arch` builds KVM: its KVM
    /// options and everything they select, transitively. `None` when the
    /// arch's KVM Kconfig was not read (nothing is known).
    pub fn enabled(&self, arch: &str) -> Option<BTreeSet<String>> {
        let mut seen: BTreeSet<String> = BTreeSet::new();
        let mut stack: Vec<String> = self.arch_options.get(arch)?.iter().cloned().collect();
        let files = [self.selects.get(&Some(arch.to_string())), self.selects.get(&None)];
        while let Some(s) = stack.pop() {
            if seen.insert(s.clone()) {
                stack.extend(files.iter().flatten().filter_map(|m| m.get(&s)).flatten().cloned());
            }
        }
        Some(seen)
    }

    /// Whether code under the `#if` conditions `condition` (as facts write
    /// them: `CONFIG_X`, `defined(CONFIG_X)`, `!CONFIG_X`) is left out of
    /// `arch`'s build: one of them requires a declared symbol that the arch
    /// never enables. Negated conditions are not judged (a select may be
    /// conditional), so they never count as left out.
    pub fn compiled_out(&self, arch: &str, condition: &[String]) -> bool {
        let Some(enabled) = self.enabled(arch) else { return false };
        condition
            .iter()
            .any(|c| required_symbol(c).is_some_and(|sym| self.declared.contains(sym) && !enabled.contains(sym)))
    }
}

impl Kconfig {
    /// The symbols on whenever the arch file `path` is built: those every
    /// way of building it (its arch's KVM Makefile) requires, with what
    /// they select unconditionally. Empty when the Makefile does not name
    /// the file (nothing is known).
    pub fn always_on_for(&self, arch: &str, path: &str) -> BTreeSet<String> {
        let Some(ways) = self.builds.get(arch).and_then(|b| b.ways(path)) else {
            return BTreeSet::new();
        };
        let files = [self.always_selects.get(&Some(arch.to_string())), self.always_selects.get(&None)];
        let closure = |way: &BTreeSet<String>| {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<String> = way.iter().cloned().collect();
            while let Some(s) = stack.pop() {
                if seen.insert(s.clone()) {
                    stack.extend(files.iter().flatten().filter_map(|m| m.get(&s)).flatten().cloned());
                }
            }
            seen
        };
        let mut ways = ways.iter().map(closure);
        let first = ways.next().unwrap_or_default();
        ways.fold(first, |acc, w| acc.intersection(&w).cloned().collect())
    }
}

/// Which branches of an `#if`/`#ifdef` chain (conditions as facts write
/// them: `CONFIG_X`, `!CONFIG_X`, `defined(CONFIG_X)`, `else`) can be
/// compiled when every symbol of `on` is enabled: a branch testing that a
/// symbol of `on` is off cannot, nor an `else` after a branch testing that
/// one is on. Everything else may be.
pub fn live_branches<'c>(conditions: impl IntoIterator<Item = &'c str>, on: &BTreeSet<String>) -> Vec<bool> {
    let mut taken_before = false;
    conditions
        .into_iter()
        .map(|c| {
            let c = c.trim();
            if c == "else" {
                return !taken_before;
            }
            if required_symbol(c).is_some_and(|s| on.contains(s)) {
                taken_before = true;
                return true;
            }
            let negated = c.strip_prefix('!').map(str::trim);
            !negated.and_then(required_symbol).is_some_and(|s| on.contains(s))
        })
        .collect()
}

/// The symbol a condition requires, when it is a plain positive test of
/// one: `CONFIG_X`, `defined(CONFIG_X)`, `IS_ENABLED(CONFIG_X)`.
fn required_symbol(cond: &str) -> Option<&str> {
    let c = cond.trim();
    let inner = ["defined(", "IS_ENABLED(", "IS_BUILTIN("]
        .iter()
        .find_map(|p| c.strip_prefix(p).and_then(|r| r.strip_suffix(')')))
        .unwrap_or(c)
        .trim();
    let sym = inner.strip_prefix("CONFIG_")?;
    sym.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_').then_some(sym)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn declared_and_selected_symbols() {
        let (declared, selects) = read(
            "config FOO_KVM\n\ttristate \"x\"\n\tselect GENERIC_ON # comment\n\tselect BAR if BAZ\n\nconfig GENERIC_ON\n\tbool\n",
        );
        assert!(declared.contains("FOO_KVM") && declared.contains("GENERIC_ON"));
        assert_eq!(selects["FOO_KVM"], ["BAR", "GENERIC_ON"].iter().map(|s| s.to_string()).collect());
    }

    #[test]
    fn required_symbols() {
        assert_eq!(required_symbol("CONFIG_A_B"), Some("A_B"));
        assert_eq!(required_symbol("defined(CONFIG_A)"), Some("A"));
        assert_eq!(required_symbol("!CONFIG_A"), None);
        assert_eq!(required_symbol("CONFIG_A && CONFIG_B"), None);
    }

    #[test]
    fn compiled_out_only_for_declared_unselected_symbols() {
        let mut k = Kconfig::default();
        k.add_file(None, "config GENERIC_ON\n\tbool\n");
        k.add_file(Some("a"), "config ARCH_A_KVM\n\tselect GENERIC_ON\n");
        k.add_file(Some("b"), "config ARCH_B_KVM\n\tselect OTHER\n");
        let cond = vec!["CONFIG_GENERIC_ON".to_string()];
        assert!(!k.compiled_out("a", &cond));
        assert!(k.compiled_out("b", &cond));
        assert!(!k.compiled_out("b", &["CONFIG_UNKNOWN".to_string()]));
        assert!(!k.compiled_out("c", &cond), "an arch without a Kconfig read: unknown");
    }

    #[test]
    fn one_archs_config_kvm_selects_nothing_for_another() {
        // Every arch declares its own `config KVM`: arch a's selects the
        // generic code, arch b's does not (6.12's x86 and powerpc).
        let mut k = Kconfig::default();
        k.add_file(None, "config GENERIC_ON\n\tbool\n");
        k.add_file(Some("a"), "config KVM\n\tselect GENERIC_ON\n");
        k.add_file(Some("b"), "config KVM\n\tselect OTHER\n");
        let cond = vec!["CONFIG_GENERIC_ON".to_string()];
        assert!(!k.compiled_out("a", &cond));
        assert!(k.compiled_out("b", &cond));
    }

    #[test]
    fn symbols_on_for_a_file_built_only_under_an_option_that_selects_them() {
        let mut k = Kconfig::default();
        k.add_file(
            Some("p"),
            "config P_HV\n\tbool\nconfig P_MC\n\tselect P_HV\n\tselect P_COND if X\nconfig P_V2\n\tselect OTHER\n",
        );
        let make = "mc-objs := shared.o mc.o\nv2-objs := shared.o v2.o\nkvm-objs-$(CONFIG_P_MC) := $(mc-objs)\nkvm-objs-$(CONFIG_P_V2) := $(v2-objs)\nkvm-y += $(kvm-objs-y)\nobj-$(CONFIG_P_MC) += kvm.o\nobj-$(CONFIG_P_V2) += kvm.o\n";
        k.builds.insert("p".into(), crate::kbuild::BuildConditions::read("arch/p/kvm", make));
        let mc = k.always_on_for("p", "arch/p/kvm/mc.c");
        assert!(mc.contains("P_MC") && mc.contains("P_HV"), "{mc:?}");
        assert!(!mc.contains("P_COND"), "a conditional select is not always on");
        assert!(!k.always_on_for("p", "arch/p/kvm/shared.c").contains("P_HV"), "shared.c is built for V2 too");
        assert!(k.always_on_for("p", "arch/p/kvm/unknown.c").is_empty());
        let on: BTreeSet<String> = ["P_HV".to_string()].into();
        assert_eq!(live_branches(["!CONFIG_P_HV", "else"], &on), [false, true]);
        assert_eq!(live_branches(["CONFIG_P_HV", "else"], &on), [true, false]);
        assert_eq!(live_branches(["!defined(CONFIG_OTHER)", "else"], &on), [true, true]);
    }
}
