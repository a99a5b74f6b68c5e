//! `refs` (whole-kernel references) on the bundled default fixture and on
//! small synthetic trees: the mechanical symbol selection, the reference
//! kinds, and the pre-filter's treatment of comments, strings, members,
//! locals and binary files.

use std::path::{Path, PathBuf};

use analyzer::refs::{find_refs, NoProgress, RefKind, RefsError, RefsOptions, RefsReport, Scope, SymbolKind};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../kvm-fixtures/default")
}

fn run(dir: &Path, scope: Scope, symbols: &[&str]) -> RefsReport {
    let opts = RefsOptions { scope, symbols: symbols.iter().map(|s| s.to_string()).collect() };
    find_refs(dir, &opts, &NoProgress).expect("refs runs")
}

/// (path, line, kind, function, detail) of the references to `symbol`.
fn refs_of(r: &RefsReport, symbol: &str) -> Vec<(String, u32, RefKind, Option<String>, String)> {
    r.references_to(symbol).map(|x| (x.path.clone(), x.line, x.kind, x.function.clone(), x.detail.clone())).collect()
}

fn has(r: &RefsReport, symbol: &str, path: &str, kind: RefKind, function: Option<&str>) -> bool {
    r.references_to(symbol).any(|x| x.path == path && x.kind == kind && x.function.as_deref() == function)
}

#[test]
fn default_selection_is_the_enable_path() {
    let r = run(&fixture(), Scope::Kvm, &[]);
    let role = |name: &str, role: &str| {
        let s = r.symbol(name).unwrap_or_else(|| panic!("{name} not selected: {:?}", r.symbols));
        s.roles.iter().any(|x| x == role)
    };
    assert!(role("kvm_arch_hardware_enable", "enable hook"));
    assert!(role("kvm_arch_hardware_disable", "disable hook"));
    assert!(role("hardware_enable_nolock", "enable primitive"));
    assert!(role("hardware_disable_nolock", "disable primitive"));
    assert!(role("kvm_starting_cpu", "hotplug callback"));
    assert!(role("kvm_dying_cpu", "hotplug callback"));
    assert!(role("hardware_enable_all", "invokes a primitive"));
    assert!(role("kvm_reboot", "invokes a primitive"));
    assert!(role("kvm_usage_count", "global touched by the path"));
    assert!(role("kvm_rebooting", "global touched by the path"));
    assert!(role("kvm_count_lock", "global touched by the path"));
    assert_eq!(r.symbol("kvm_usage_count").map(|s| s.kind), Some(SymbolKind::Variable));
    assert_eq!(r.symbol("kvm_arch_hardware_enable").map(|s| s.kind), Some(SymbolKind::Function));
    // Every arch of the fixture links the hook.
    let hook = r.symbol("kvm_arch_hardware_enable").expect("hook");
    assert_eq!(hook.arches, ["arm64", "mips", "powerpc", "s390", "x86"]);
    assert!(!hook.file_local);
    assert!(r.symbol("kvm_usage_count").is_some_and(|s| s.file_local && s.home == ["virt/kvm/kvm_main.c"]));
    // Module init/exit code is not the enable path.
    assert!(r.symbol("kvm_exit").is_none() && r.symbol("kvm_init").is_none());
    assert!(r.symbols.iter().all(|s| s.references > 0), "{:?}", r.symbols);
}

#[test]
fn reference_kinds_on_the_fixture() {
    let r = run(&fixture(), Scope::Kvm, &[]);
    let main = "virt/kvm/kvm_main.c";
    // The arch hook: defined per arch, declared in the common header,
    // called by the primitive.
    for arch_file in ["arch/x86/kvm/x86.c", "arch/arm64/kvm/arm.c", "arch/s390/kvm/kvm-s390.c"] {
        assert!(
            has(&r, "kvm_arch_hardware_enable", arch_file, RefKind::Declaration, Some("kvm_arch_hardware_enable")),
            "{:?}",
            refs_of(&r, "kvm_arch_hardware_enable")
        );
    }
    assert!(has(&r, "kvm_arch_hardware_enable", "include/linux/kvm_host.h", RefKind::Declaration, None));
    assert!(has(&r, "kvm_arch_hardware_enable", main, RefKind::Call, Some("hardware_enable_nolock")));
    // The primitive passed to on_each_cpu: a callback.
    let cb: Vec<_> = r
        .references_to("hardware_enable_nolock")
        .filter(|x| x.kind == RefKind::AddressTaken && x.function.as_deref() == Some("hardware_enable_all"))
        .collect();
    assert_eq!(cb.len(), 1, "{:?}", refs_of(&r, "hardware_enable_nolock"));
    assert_eq!(cb[0].detail, "function passed to on_each_cpu");
    // The globals: written, read, address taken for the lock, exported.
    assert!(r.references_to("kvm_usage_count").any(|x| x.kind == RefKind::Use
        && x.detail == "write"
        && x.function.as_deref() == Some("hardware_enable_all")));
    assert!(r.references_to("kvm_count_lock").any(|x| x.kind == RefKind::AddressTaken
        && x.detail == "address passed to raw_spin_lock"
        && x.function.as_deref() == Some("kvm_starting_cpu")));
    assert!(r
        .references_to("kvm_rebooting")
        .any(|x| x.path == main && x.function.is_none() && x.detail == "exported by EXPORT_SYMBOL_GPL"));
    assert!(r.references_to("kvm_rebooting").any(|x| x.path == "include/linux/kvm_host.h"
        && x.kind == RefKind::Declaration
        && x.detail == "extern declaration"));
    // Sorted, 1-based positions that point at the name.
    assert!(r.references.windows(2).all(|w| (&w[0].path, w[0].line, w[0].col) <= (&w[1].path, w[1].line, w[1].col)));
    let text = std::fs::read_to_string(fixture().join(main)).expect("fixture");
    for x in r.references.iter().filter(|x| x.path == main) {
        let line = text.lines().nth(x.line as usize - 1).expect("line");
        assert!(line[x.col as usize - 1..].starts_with(&x.symbol), "{x:?}: {line}");
    }
}

#[test]
fn scope_all_finds_what_scope_kvm_finds() {
    let kvm = run(&fixture(), Scope::Kvm, &[]);
    let all = run(&fixture(), Scope::All, &[]);
    assert_eq!(all.scope, Scope::All);
    for x in &kvm.references {
        assert!(all.references.contains(x), "{x:?} missing from --scope all");
    }
    assert!(all.stats.files >= kvm.stats.files);
}

fn write(dir: &Path, path: &str, bytes: &[u8]) {
    let p = dir.join(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

#[test]
fn comments_strings_members_locals_and_binaries_are_not_references() {
    let dir = tempfile::Builder::new().prefix("kvmtk-refs-synth").tempdir().expect("tempdir");
    let d = dir.path();
    write(
        d,
        "drivers/a.c",
        b"/* kvm_flag is set on reboot */\n\
          static const char *s = \"kvm_flag\";\n\
          bool kvm_flag;\n\
          #define FLAG_SET() (kvm_flag = true)\n\
          struct ops { int kvm_flag; };\n\
          void f(struct ops *o, int kvm_flag2)\n\
          {\n\
          \to->kvm_flag = 1; // kvm_flag\n\
          \tif (kvm_flag)\n\
          \t\tset(&kvm_flag);\n\
          }\n\
          void g(int kvm_flag)\n\
          {\n\
          \tuse(kvm_flag);\n\
          }\n",
    );
    write(d, "drivers/bin.h", b"kvm_flag\0\x01\x02\xff binary");
    write(d, "drivers/notes.txt", b"kvm_flag");
    write(d, "drivers/garbage.c", b"kvm_flag ((( }}} \xff\xfe #if\n#define\n\"kvm_flag");
    let r = run(d, Scope::All, &["kvm_flag"]);
    let got: Vec<_> = r.references.iter().map(|x| (x.path.as_str(), x.line, x.kind, x.detail.as_str())).collect();
    assert_eq!(
        got,
        [
            ("drivers/a.c", 3, RefKind::Declaration, "definition"),
            ("drivers/a.c", 4, RefKind::Use, "in #define FLAG_SET"),
            // A struct member's declaration is not told apart from a use
            // (the facts have no struct bodies): reported, unclassified.
            ("drivers/a.c", 5, RefKind::Use, "unclassified (macro or unparsed code)"),
            ("drivers/a.c", 9, RefKind::Use, "read"),
            ("drivers/a.c", 10, RefKind::AddressTaken, "address passed to set"),
            ("drivers/garbage.c", 1, RefKind::Use, "unclassified (macro or unparsed code)"),
        ],
        "{:#?}",
        r.references
    );
    assert_eq!(r.symbol("kvm_flag").map(|s| s.kind), Some(SymbolKind::Variable));
    assert_eq!(r.stats.mentions_in_comments_or_strings, 4);
    assert_eq!(r.stats.member_mentions, 1);
    // `kvm_flag` as g's parameter: its declaration and its use.
    assert_eq!(r.stats.local_names, 2);
    assert_eq!(r.skipped.len(), 1);
    assert_eq!((r.skipped[0].path.as_str(), r.skipped[0].reason.as_str()), ("drivers/bin.h", "binary file"));
    assert_eq!(r.stats.files, 3, "only .c and .h files are read");
}

#[test]
fn file_local_symbols_flag_homonyms() {
    let dir = tempfile::Builder::new().prefix("kvmtk-refs-homonym").tempdir().expect("tempdir");
    let d = dir.path();
    write(d, "a.c", b"static void helper(void) { }\nvoid a(void) { helper(); }\n");
    write(d, "b.c", b"void b(void) { helper(); }\n");
    let r = run(d, Scope::All, &["helper"]);
    let s = r.symbol("helper").expect("symbol");
    assert!(s.file_local);
    assert_eq!(s.defined_in, ["a.c"]);
    let flags: Vec<_> = r.references.iter().map(|x| (x.path.as_str(), x.kind, x.homonym)).collect();
    assert_eq!(
        flags,
        [("a.c", RefKind::Declaration, false), ("a.c", RefKind::Call, false), ("b.c", RefKind::Call, true)]
    );
}

#[test]
fn bad_inputs_are_errors_not_panics() {
    let opts = |s: &[&str]| RefsOptions { scope: Scope::All, symbols: s.iter().map(|x| x.to_string()).collect() };
    assert!(matches!(find_refs(&fixture(), &opts(&["not-an-ident"]), &NoProgress), Err(RefsError::InvalidSymbol(_))));
    let missing = Path::new("/nonexistent/kvmtk-refs-tree");
    assert!(find_refs(missing, &opts(&["x"]), &NoProgress).is_err());
    assert!(find_refs(missing, &RefsOptions { scope: Scope::Kvm, symbols: vec![] }, &NoProgress).is_err());
    // Not a kernel tree: the default selection needs the KVM code.
    let dir = tempfile::Builder::new().prefix("kvmtk-refs-empty").tempdir().expect("tempdir");
    write(dir.path(), "x.c", b"int x;");
    assert!(matches!(
        find_refs(dir.path(), &RefsOptions { scope: Scope::All, symbols: vec![] }, &NoProgress),
        Err(RefsError::Source(_))
    ));
}

#[test]
fn one_letter_statement_macro_parses() {
    // `X(a) { ... }` in a body once made idiom recovery slice out of
    // bounds (found by `refs --scope all` on the whole 6.1 tree).
    let src = b"void f(void)\n{\n\tX(a) {\n\t\tkvm_flag = 1;\n\t}\n}\n";
    let facts = analyzer::parse::parse_file("a.c", None, src);
    assert_eq!(facts.functions.len(), 1);
    let dir = tempfile::Builder::new().prefix("kvmtk-refs-x").tempdir().expect("tempdir");
    write(dir.path(), "a.c", src);
    let r = run(dir.path(), Scope::All, &["kvm_flag"]);
    assert!(r.skipped.is_empty(), "{:?}", r.skipped);
    assert_eq!(r.references.len(), 1);
    assert_eq!(r.references[0].function.as_deref(), Some("f"));
}
