//! Which configuration builds each file of an arch's KVM code, read from
//! `arch/<arch>/kvm/Makefile` as data (never run): `obj-$(CONFIG_X) +=
//! kvm.o`, `kvm-$(CONFIG_Y) += file.o`, `kvm-objs-$(CONFIG_Z) :=
//! $(some-objs)`, inside `ifdef CONFIG_W` blocks. With the Kconfig's
//! selects ([`crate::kconfig`]) this says which symbols are on whenever a
//! file is built, so an `#ifndef CONFIG_X` in a function it calls can be
//! judged for that caller (PPC's e500mc objects are built only under an
//! option that selects `KVM_BOOKE_HV`).
//!
//! Over-approximate on the side of "built without conditions": a file
//! the Makefile does not name, a composite object nobody lists, an
//! `ifeq`/`ifneq`/`else` block or a variable that cannot be expanded adds
//! a way of building with no symbol required, so nothing is ever judged
//! off that Kbuild could build.

use std::collections::{BTreeMap, BTreeSet};

/// An arch's KVM Makefile, relative to the tree root.
pub fn arch_makefile(arch: &str) -> String {
    format!("arch/{arch}/kvm/Makefile")
}

/// A conjunction of Kconfig symbols (without `CONFIG_`) that must all be
/// enabled.
pub type Conjunction = BTreeSet<String>;

/// The ways each file of a Makefile's directory is built: one
/// [`Conjunction`] per way (a disjunction). Keyed by the source path
/// relative to the tree root (`arch/powerpc/kvm/e500mc.c`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildConditions {
    files: BTreeMap<String, Vec<Conjunction>>,
}

/// One assignment: `name` (with `$(CONFIG_X)` replaced by `y`), the
/// symbols its name and enclosing `ifdef`s require, its words.
#[derive(Debug, Clone)]
struct Assignment {
    name: String,
    requires: Conjunction,
    words: Vec<String>,
}

/// Bounds on expansion: Makefiles can reference themselves.
const MAX_DEPTH: usize = 8;

/// `foo-m` and `foo-y` are built the same way here: both mean "when the
/// option is on".
fn normalize(name: &str) -> String {
    match name.strip_suffix("-m") {
        Some(stem) => format!("{stem}-y"),
        None => name.to_string(),
    }
}

/// The name with each `$(CONFIG_X)` replaced by `y`, and the symbols it
/// requires; `None` when it references anything else.
fn conditional_name(raw: &str) -> Option<(String, Conjunction)> {
    let mut name = String::new();
    let mut requires = Conjunction::new();
    let mut rest = raw;
    while let Some(at) = rest.find("$(") {
        name.push_str(&rest[..at]);
        let close = rest[at..].find(')')? + at;
        let sym = rest[at + 2..close].strip_prefix("CONFIG_")?;
        requires.insert(sym.to_string());
        name.push('y');
        rest = &rest[close + 1..];
    }
    name.push_str(rest);
    Some((normalize(&name), requires))
}

/// The logical lines of a Makefile: continuations joined, comments cut.
fn logical_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let line = line.split('#').next().unwrap_or("");
        match line.trim_end().strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(line);
                out.push(std::mem::take(&mut cur));
            }
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

/// The assignments of a Makefile, each with the `ifdef` symbols around it.
fn assignments(text: &str) -> Vec<Assignment> {
    // One entry per open conditional: the symbol it requires, if any
    // (`ifdef CONFIG_X`, `ifeq ($(CONFIG_X),y)`); `else` drops it.
    let mut open: Vec<Option<String>> = Vec::new();
    let mut out = Vec::new();
    for line in logical_lines(text) {
        let t = line.trim();
        let first = t.split_whitespace().next().unwrap_or("");
        match first {
            "ifdef" => {
                let sym = t.split_whitespace().nth(1).and_then(|w| w.strip_prefix("CONFIG_"));
                open.push(sym.map(str::to_string));
                continue;
            }
            "ifeq" => {
                let inner = t["ifeq".len()..].trim().trim_start_matches('(').trim_end_matches(')');
                let sym = match inner.split_once(',') {
                    Some((a, b)) if b.trim() == "y" => {
                        a.trim().strip_prefix("$(CONFIG_").and_then(|s| s.strip_suffix(')')).map(str::to_string)
                    }
                    _ => None,
                };
                open.push(sym);
                continue;
            }
            "ifndef" | "ifneq" => {
                open.push(None);
                continue;
            }
            "else" => {
                if let Some(top) = open.last_mut() {
                    *top = None;
                }
                continue;
            }
            "endif" => {
                open.pop();
                continue;
            }
            _ => {}
        }
        // The first `=` ends the name; a `:`, `+` or `?` before it is the
        // operator's (`:=`, `+=`, `?=`).
        let Some((lhs, rhs)) = t.split_once('=') else { continue };
        let lhs = lhs.trim_end_matches([':', '+', '?']).trim();
        if lhs.is_empty() || lhs.contains(char::is_whitespace) {
            continue;
        }
        let Some((name, mut requires)) = conditional_name(lhs) else { continue };
        requires.extend(open.iter().flatten().cloned());
        out.push(Assignment { name, requires, words: rhs.split_whitespace().map(str::to_string).collect() });
    }
    out
}

impl BuildConditions {
    /// Read the Makefile of `dir` (relative to the tree root).
    pub fn read(dir: &str, text: &str) -> BuildConditions {
        let assigns = assignments(text);
        let referenced: BTreeSet<String> = assigns
            .iter()
            .flat_map(|a| a.words.iter())
            .filter_map(|w| w.strip_prefix("$(").and_then(|r| r.strip_suffix(')')))
            .map(normalize)
            .collect();
        // Members of each list (variables nobody expands: `obj-y`,
        // `kvm-y`, `kvm-hv-y`), with the symbols required on the way.
        let mut members: BTreeMap<String, Vec<(String, Conjunction)>> = BTreeMap::new();
        for a in assigns.iter().filter(|a| !referenced.contains(&a.name)) {
            let list = members.entry(a.name.clone()).or_default();
            expand(&assigns, &a.words, &a.requires, 0, list);
        }
        let mut objects: BTreeMap<String, Vec<Conjunction>> = BTreeMap::new();
        for list in members.keys() {
            for (obj, req) in &members[list] {
                for way in ways_of_list(&members, list, 0) {
                    let mut all = req.clone();
                    all.extend(way);
                    objects.entry(obj.clone()).or_default().push(all);
                }
            }
        }
        let mut files = BTreeMap::new();
        for (obj, ways) in objects {
            if let Some(stem) = obj.strip_suffix(".o") {
                files.insert(format!("{dir}/{stem}.c"), ways);
            }
        }
        BuildConditions { files }
    }

    /// The ways `path` is built, when the Makefile names it.
    pub fn ways(&self, path: &str) -> Option<&[Conjunction]> {
        self.files.get(path).map(Vec::as_slice)
    }
}

/// The object words of `words`, `$(var)` expanded through the variables'
/// assignments, each with the symbols required on the way. A reference
/// that cannot be expanded (`$(KVM)/kvm_main.o`) names no file of here.
fn expand(
    assigns: &[Assignment],
    words: &[String],
    req: &Conjunction,
    depth: usize,
    out: &mut Vec<(String, Conjunction)>,
) {
    for w in words {
        match w.strip_prefix("$(").and_then(|r| r.strip_suffix(')')) {
            Some(var) if depth < MAX_DEPTH => {
                let var = normalize(var);
                for a in assigns.iter().filter(|a| a.name == var) {
                    let mut r = req.clone();
                    r.extend(a.requires.iter().cloned());
                    expand(assigns, &a.words, &r, depth + 1, out);
                }
            }
            Some(_) => {}
            None if w.ends_with(".o") && !w.contains('$') => out.push((w.clone(), req.clone())),
            None => {}
        }
    }
}

/// The ways the list `list` is built: `obj-y` always (no symbol), a
/// composite `foo-y`/`foo-objs` as `foo.o` is; a composite nobody lists
/// counts as built with no symbol required.
fn ways_of_list(members: &BTreeMap<String, Vec<(String, Conjunction)>>, list: &str, depth: usize) -> Vec<Conjunction> {
    let composite = list.strip_suffix("-y").or_else(|| list.strip_suffix("-objs"));
    let Some(stem) = composite.filter(|s| *s != "obj" && depth < MAX_DEPTH) else {
        return vec![Conjunction::new()];
    };
    let object = format!("{stem}.o");
    let mut ways = Vec::new();
    for (parent, objs) in members {
        for (_, req) in objs.iter().filter(|(o, _)| *o == object) {
            for way in ways_of_list(members, parent, depth + 1) {
                let mut all = req.clone();
                all.extend(way);
                ways.push(all);
            }
        }
    }
    if ways.is_empty() {
        ways.push(Conjunction::new());
    }
    ways
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(s: &[&str]) -> Conjunction {
        s.iter().map(|x| x.to_string()).collect()
    }

    const MAKEFILE: &str = "\
common-objs-y += core.o
obj-$(CONFIG_OPT_TIMING) += timing.o

alpha-objs := \\
\t$(common-objs-y) \\
\tshared.o \\
\talpha.o
kvm-objs-$(CONFIG_FOO_ALPHA) := $(alpha-objs)

beta-objs := $(common-objs-y) shared.o beta.o # comment
kvm-objs-$(CONFIG_FOO_BETA) := $(beta-objs)

ifdef CONFIG_FOO_EXTRA
kvm-hv-y += extra.o
endif
kvm-hv-$(CONFIG_FOO_UV) += uv.o

kvm-y += $(kvm-objs-m) $(kvm-objs-y)
obj-$(CONFIG_FOO_ALPHA) += kvm.o
obj-$(CONFIG_FOO_BETA) += kvm.o
obj-$(CONFIG_FOO_HV) += kvm-hv.o
";

    #[test]
    fn each_file_with_the_options_that_build_it() {
        let b = BuildConditions::read("arch/foo/kvm", MAKEFILE);
        let ways = |p: &str| b.ways(&format!("arch/foo/kvm/{p}")).map(<[Conjunction]>::to_vec);
        let alpha = ways("alpha.c").unwrap();
        assert!(!alpha.is_empty());
        assert!(alpha.iter().all(|w| w.contains("FOO_ALPHA")), "{alpha:?}");
        let shared = ways("shared.c").unwrap();
        assert!(shared.iter().any(|w| w.contains("FOO_ALPHA") && !w.contains("FOO_BETA")));
        assert!(shared.iter().any(|w| w.contains("FOO_BETA") && !w.contains("FOO_ALPHA")));
        assert_eq!(ways("timing.c").unwrap(), vec![set(&["OPT_TIMING"])]);
        assert_eq!(ways("extra.c").unwrap(), vec![set(&["FOO_EXTRA", "FOO_HV"])]);
        assert_eq!(ways("uv.c").unwrap(), vec![set(&["FOO_HV", "FOO_UV"])]);
        assert!(ways("absent.c").is_none());
    }

    #[test]
    fn an_else_block_or_unlisted_composite_requires_nothing() {
        let b = BuildConditions::read(
            "d",
            "ifdef CONFIG_A\nx-y += a.o\nelse\nx-y += b.o\nendif\nifeq ($(CONFIG_C),y)\nobj-y += c.o\nendif\n",
        );
        assert_eq!(b.ways("d/a.c").unwrap(), [set(&["A"])]);
        assert_eq!(b.ways("d/b.c").unwrap(), [Conjunction::new()]);
        assert_eq!(b.ways("d/c.c").unwrap(), [set(&["C"])]);
    }
}
