//! SourceTree over a small fake kernel tree in a temporary directory: the
//! file set, arch narrowing, odd files, and the exact error messages.

use std::fs;
use std::path::Path;

use analyzer::source::{SourceError, SourceOptions, SourceSpec, SourceTree, SourceWarning};

fn write(root: &Path, rel: &str, bytes: &[u8]) {
    let p = root.join(rel);
    fs::create_dir_all(p.parent().unwrap()).unwrap();
    fs::write(p, bytes).unwrap();
}

/// A minimal tree with files inside and outside the KVM file set.
fn fake_tree(root: &Path) {
    for (rel, text) in [
        ("virt/kvm/kvm_main.c", "int kvm_main;\n"),
        ("virt/kvm/eventfd.c", "int eventfd;\n"),
        ("virt/kvm/sub/helper.h", "#define HELPER 1\n"),
        ("virt/kvm/Makefile.kvm", "obj-y += kvm_main.o\n"),
        ("include/linux/kvm_host.h", "struct kvm;\n"),
        ("include/linux/cpuhotplug.h", "enum cpuhp_state { CPUHP_OFFLINE };\n"),
        ("include/linux/list.h", "struct list_head;\n"),
        ("arch/x86/kvm/x86.c", "int x86;\n"),
        ("arch/x86/kvm/vmx/vmx.c", "int vmx;\n"),
        ("arch/x86/kvm/Makefile", "obj-y += x86.o\n"),
        ("arch/x86/include/asm/kvm_host.h", "struct kvm_arch;\n"),
        ("arch/x86/include/asm/kvm-x86-ops.h", "KVM_X86_OP(hardware_enable)\n"),
        ("arch/x86/include/asm/apic.h", "int apic;\n"),
        ("arch/arm64/kvm/arm.c", "int arm;\n"),
        ("arch/arm64/include/asm/kvm_host.h", "struct kvm_arch;\n"),
        ("arch/powerpc/include/asm/kvm_ppc.h", "int ppc;\n"),
        ("arch/alpha/kernel/setup.c", "int alpha;\n"),
        ("Documentation/virt/kvm/locking.rst", "KVM Lock Overview\n"),
        ("Documentation/virt/kvm/api.rst", "API\n"),
        ("drivers/misc/foo.c", "int foo;\n"),
    ] {
        write(root, rel, text.as_bytes());
    }
}

fn paths(tree: &SourceTree) -> Vec<&str> {
    tree.files.iter().map(|f| f.path.as_str()).collect()
}

fn load_dir(root: &Path, opts: &SourceOptions) -> Result<SourceTree, SourceError> {
    SourceTree::load(&SourceSpec::Dir(root.to_path_buf()), opts)
}

#[test]
fn loads_the_kvm_file_set_sorted() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    let tree = load_dir(tmp.path(), &SourceOptions::default()).unwrap();
    assert_eq!(
        paths(&tree),
        [
            "Documentation/virt/kvm/locking.rst",
            "arch/arm64/include/asm/kvm_host.h",
            "arch/arm64/kvm/arm.c",
            "arch/powerpc/include/asm/kvm_ppc.h",
            "arch/x86/include/asm/kvm-x86-ops.h",
            "arch/x86/include/asm/kvm_host.h",
            // Read as data: which options build each file (kbuild.rs).
            "arch/x86/kvm/Makefile",
            "arch/x86/kvm/vmx/vmx.c",
            "arch/x86/kvm/x86.c",
            "include/linux/cpuhotplug.h",
            "include/linux/kvm_host.h",
            "virt/kvm/eventfd.c",
            "virt/kvm/kvm_main.c",
            "virt/kvm/sub/helper.h",
        ]
    );
    // powerpc has a KVM header but no arch/powerpc/kvm directory.
    assert_eq!(tree.arches, ["arm64", "x86"]);
    assert_eq!(tree.warnings, []);
    assert_eq!(tree.commit, None);
    assert_eq!(tree.root_label, tmp.path().display().to_string());

    let f = tree.file("arch/x86/kvm/vmx/vmx.c").unwrap();
    assert_eq!(f.arch.as_deref(), Some("x86"));
    assert_eq!(f.bytes, b"int vmx;\n");
    assert_eq!(tree.file("virt/kvm/kvm_main.c").unwrap().arch, None);
    assert!(tree.file("drivers/misc/foo.c").is_none());
    assert!(tree.file("nope").is_none());
}

#[test]
fn blob_ids_match_git() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    write(tmp.path(), "virt/kvm/hello.c", b"hello\n");
    let tree = load_dir(tmp.path(), &SourceOptions::default()).unwrap();
    // `printf 'hello\n' | git hash-object --stdin`
    assert_eq!(
        tree.file("virt/kvm/hello.c").unwrap().blob_id.as_deref(),
        Some("ce013625030ba8dba906f756967f9e9ca394464a")
    );
}

#[test]
fn arch_narrowing_keeps_common_files() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    let opts = SourceOptions { arches: Some(vec!["x86".to_string()]), ..Default::default() };
    let tree = load_dir(tmp.path(), &opts).unwrap();
    assert_eq!(
        paths(&tree),
        [
            "Documentation/virt/kvm/locking.rst",
            "arch/x86/include/asm/kvm-x86-ops.h",
            "arch/x86/include/asm/kvm_host.h",
            // Read as data: which options build each file (kbuild.rs).
            "arch/x86/kvm/Makefile",
            "arch/x86/kvm/vmx/vmx.c",
            "arch/x86/kvm/x86.c",
            "include/linux/cpuhotplug.h",
            "include/linux/kvm_host.h",
            "virt/kvm/eventfd.c",
            "virt/kvm/kvm_main.c",
            "virt/kvm/sub/helper.h",
        ]
    );
    assert_eq!(tree.arches, ["x86"]);
    let x86: Vec<&str> = tree.files_for_arch("arm64").map(|f| f.path.as_str()).collect();
    assert!(!x86.iter().any(|p| p.starts_with("arch/")));
}

#[test]
fn extra_paths() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    let opts = SourceOptions {
        arches: Some(vec!["arm64".to_string()]),
        extra_paths: vec![
            "include/linux/list.h".to_string(),
            "drivers/misc".to_string(),
            "arch/x86/include/asm/apic.h".to_string(),
            "include/linux/missing.h".to_string(),
            "Documentation/virt/kvm/api.rst".to_string(),
        ],
    };
    let tree = load_dir(tmp.path(), &opts).unwrap();
    assert!(tree.file("include/linux/list.h").is_some());
    assert!(tree.file("drivers/misc/foo.c").is_some());
    assert!(tree.file("Documentation/virt/kvm/api.rst").is_some());
    // Narrowed away: x86 is not selected.
    assert!(tree.file("arch/x86/include/asm/apic.h").is_none());
    assert_eq!(
        tree.warnings,
        [SourceWarning {
            path: "include/linux/missing.h".to_string(),
            message: "extra path not found in the tree".to_string()
        }]
    );
}

#[test]
fn missing_optional_files_are_warnings() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    fs::remove_file(tmp.path().join("include/linux/cpuhotplug.h")).unwrap();
    fs::remove_file(tmp.path().join("Documentation/virt/kvm/locking.rst")).unwrap();
    let tree = load_dir(tmp.path(), &SourceOptions::default()).unwrap();
    let warnings: Vec<String> = tree.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "Documentation/virt/kvm/locking.rst: warning: not found; analysis that reads it falls back to defaults",
            "include/linux/cpuhotplug.h: warning: not found; analysis that reads it falls back to defaults",
        ]
    );
    assert!(tree.file("virt/kvm/kvm_main.c").is_some());
}

#[test]
fn non_utf8_contents_load_as_bytes() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    let bytes = b"/* caf\xe9 */\nint x; \xff\xfe\n".to_vec();
    write(tmp.path(), "virt/kvm/latin1.c", &bytes);
    let tree = load_dir(tmp.path(), &SourceOptions::default()).unwrap();
    let f = tree.file("virt/kvm/latin1.c").unwrap();
    assert_eq!(f.bytes, bytes);
    assert!(f.text().contains('\u{fffd}'));
    assert_eq!(tree.warnings, []);
}

#[cfg(unix)]
#[test]
fn symlinks_inside_followed_outside_and_dangling_warned() {
    use std::os::unix::fs::symlink;
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("linux");
    fake_tree(&root);
    write(tmp.path(), "outside.c", b"int secret;\n");
    symlink("../../include/linux/kvm_host.h", root.join("virt/kvm/alias.h")).unwrap();
    symlink(tmp.path().join("outside.c"), root.join("virt/kvm/outside.c")).unwrap();
    symlink("../../../outside.c", root.join("virt/kvm/outside_rel.c")).unwrap();
    symlink("does-not-exist.c", root.join("virt/kvm/dangling.c")).unwrap();
    // A symbolic link to a directory is not descended into.
    symlink("../../arch", root.join("virt/kvm/archlink")).unwrap();

    let tree = load_dir(&root, &SourceOptions::default()).unwrap();
    assert_eq!(tree.file("virt/kvm/alias.h").unwrap().bytes, b"struct kvm;\n");
    assert!(tree.file("virt/kvm/outside.c").is_none());
    assert!(tree.file("virt/kvm/outside_rel.c").is_none());
    assert!(tree.file("virt/kvm/dangling.c").is_none());
    assert!(!tree.files.iter().any(|f| f.path.starts_with("virt/kvm/archlink")));

    let outside = fs::canonicalize(tmp.path().join("outside.c")).unwrap();
    let warnings: Vec<String> = tree.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(
        warnings,
        [
            "virt/kvm/dangling.c: warning: cannot read: dangling or looping symbolic link (No such file or directory (os error 2))".to_string(),
            format!(
                "virt/kvm/outside.c: warning: symbolic link points outside the tree (to `{}`); not followed",
                outside.display()
            ),
            format!(
                "virt/kvm/outside_rel.c: warning: symbolic link points outside the tree (to `{}`); not followed",
                outside.display()
            ),
        ]
    );
    // The rest of the tree still loads.
    assert!(tree.file("arch/x86/kvm/x86.c").is_some());
}

/// chmod 000 only blocks reads for unprivileged users: as root (common in
/// containers) the file stays readable, and the test checks that instead
/// of pretending. The dangling-symlink test above covers an unreadable
/// entry regardless of privileges.
#[cfg(unix)]
#[test]
fn unreadable_file_and_directory_become_warnings() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    let secret = tmp.path().join("virt/kvm/secret.c");
    fs::write(&secret, b"int secret;\n").unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o000)).unwrap();
    let hidden_dir = tmp.path().join("arch/arm64/kvm/hyp");
    write(tmp.path(), "arch/arm64/kvm/hyp/switch.c", b"int sw;\n");
    fs::set_permissions(&hidden_dir, fs::Permissions::from_mode(0o000)).unwrap();
    let privileged = fs::read(&secret).is_ok();

    let tree = load_dir(tmp.path(), &SourceOptions::default());
    // Restore permissions so the temporary directory can be removed.
    fs::set_permissions(&hidden_dir, fs::Permissions::from_mode(0o755)).unwrap();
    fs::set_permissions(&secret, fs::Permissions::from_mode(0o644)).unwrap();
    let tree = tree.unwrap();

    if privileged {
        eprintln!("notice: running privileged; chmod 000 does not block reads");
        assert_eq!(tree.file("virt/kvm/secret.c").unwrap().bytes, b"int secret;\n");
        assert!(tree.file("arch/arm64/kvm/hyp/switch.c").is_some());
        assert_eq!(tree.warnings, []);
    } else {
        assert!(tree.file("virt/kvm/secret.c").is_none());
        let warnings: Vec<String> = tree.warnings.iter().map(|w| w.to_string()).collect();
        assert_eq!(
            warnings,
            [
                "arch/arm64/kvm/hyp: warning: cannot read directory: Permission denied (os error 13)",
                "virt/kvm/secret.c: warning: cannot read: Permission denied (os error 13)",
            ]
        );
    }
    assert!(tree.file("virt/kvm/kvm_main.c").is_some());
}

#[test]
fn a_directory_named_like_a_source_file_is_a_warning() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    fs::create_dir_all(tmp.path().join("arch/x86/include/asm/kvm_ppc.h")).unwrap();
    let tree = load_dir(tmp.path(), &SourceOptions::default()).unwrap();
    let warnings: Vec<String> = tree.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(warnings, ["arch/x86/include/asm/kvm_ppc.h: warning: is a directory, expected a file; skipped"]);
}

#[test]
fn error_not_a_kernel_tree_names_all_missing_files() {
    let tmp = tempfile::tempdir().unwrap();
    write(tmp.path(), "README", b"not a kernel\n");
    let err = load_dir(tmp.path(), &SourceOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is not a kernel source tree: missing virt/kvm/kvm_main.c and include/linux/kvm_host.h",
            tmp.path().display()
        )
    );
    assert!(matches!(err, SourceError::NotAKernelTree { ref missing, .. } if missing.len() == 2));

    write(tmp.path(), "include/linux/kvm_host.h", b"struct kvm;\n");
    let err = load_dir(tmp.path(), &SourceOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("`{}` is not a kernel source tree: missing virt/kvm/kvm_main.c", tmp.path().display())
    );
}

#[test]
fn error_empty_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let err = load_dir(tmp.path(), &SourceOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "`{}` is an empty directory; expected a kernel source tree (with virt/kvm/kvm_main.c and include/linux/kvm_host.h)",
            tmp.path().display()
        )
    );
}

#[test]
fn error_nonexistent_path_and_file_path() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("no-such-tree");
    let err = load_dir(&missing, &SourceOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("`{}` does not exist; expected a kernel source tree or git repository", missing.display())
    );

    let file = tmp.path().join("file.txt");
    fs::write(&file, b"x").unwrap();
    let err = load_dir(&file, &SourceOptions::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("`{}` is not a directory; expected the top directory of a kernel source tree", file.display())
    );
}

#[test]
fn error_unknown_arch_lists_present_arches() {
    let tmp = tempfile::tempdir().unwrap();
    fake_tree(tmp.path());
    let opts = SourceOptions { arches: Some(vec!["x86".to_string(), "sparc".to_string()]), ..Default::default() };
    let err = load_dir(tmp.path(), &opts).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("unknown architecture `sparc` in `{}`; architectures with KVM code: arm64, x86", tmp.path().display())
    );
}
