//! Patches as b4 and git send-email hand them to kvmtk: one patch on
//! standard input (`-`), and the per-patch hook `docs/hooks/kvmtk-patch-check`
//! run as b4's `prep-perpatch-check-cmd` (the patch piped to it) and as a
//! `sendemail-validate` hook (the patch file as its argument), on a patch
//! of the branch and on one from elsewhere. Also `--keep-going` and `-3`
//! through the command line.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

#[path = "../test-support/hw001_repo.rs"]
mod hw001_repo;
use hw001_repo::{copy_tree, fixture, git, setup};

fn hook() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/hooks/kvmtk-patch-check")
}

/// Run `cmd` in `dir` with `stdin` piped in.
fn run(dir: &Path, cmd: &mut Command, stdin: &[u8]) -> Output {
    let mut child =
        cmd.current_dir(dir).stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    // kvmtk may stop reading early (an input over its limit): a broken pipe is fine.
    let _ = child.stdin.take().unwrap().write_all(stdin);
    child.wait_with_output().unwrap()
}

fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

#[test]
fn one_patch_on_standard_input() {
    let (dir, patch) = setup();
    let bytes = std::fs::read(&patch).unwrap();
    let kvmtk = env!("CARGO_BIN_EXE_kvmtk");
    let tree = dir.path().join("quiet");
    copy_tree(&fixture("rules/hw001-unguarded-list-walk/quiet"), &tree);
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "-"]), &bytes);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("lint stdin: 1 patch on "), "{out}");
    assert!(out.contains("  introduces HW001 warning x86 foo_clock_cpu_online"), "{out}");
    // The same patch twice: already applied the second time, and the series goes on.
    let twice = [&bytes[..], b"\n", &bytes[..]].concat();
    let twice = String::from_utf8(twice).unwrap().replacen("Subject: [PATCH]", "Subject: [PATCH 1/2]", 1).replacen(
        "Subject: [PATCH]",
        "Subject: [PATCH 2/2]",
        1,
    );
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "-"]), twice.as_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("[2/2] stdin#2 x86: Resync the clock of every guest on CPU online\n  already applied, skipped: it reverse-applies\n"), "{}", text(&o));
    // Empty input: a clear error.
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "-"]), b"");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("no patches in `-`"), "{}", text(&o));
    // Standard input is bounded too: 64 MiB and one byte is refused.
    let zeros = vec![0u8; (64 << 20) + 1];
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "-"]), &zeros);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(
        text(&o).contains("standard input is larger than 64 MiB, the limit for a patch or mbox input"),
        "{}",
        text(&o)
    );
    // A device is not read.
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "/dev/zero"]), b"");
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("`/dev/zero` is not a regular file"), "{}", text(&o));
    // -3 without a repository is a usage error.
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "-3", "-"]), &bytes);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("-3 needs --repo"), "{}", text(&o));
}

#[test]
fn keep_going_lints_the_rest_and_fails() {
    let (dir, patch) = setup();
    let bytes = String::from_utf8(std::fs::read(&patch).unwrap()).unwrap();
    let tree = dir.path().join("quiet");
    copy_tree(&fixture("rules/hw001-unguarded-list-walk/quiet"), &tree);
    // Patch 1 of 2 is for another tree; patch 2 is the real one.
    let foreign = "From: A <a@example.org>\nSubject: [PATCH 1/2] x: other tree\n\n---\ndiff --git a/virt/kvm/nope.c b/virt/kvm/nope.c\n--- a/virt/kvm/nope.c\n+++ b/virt/kvm/nope.c\n@@ -1,3 +1,3 @@\n a\n-b\n+c\n d\n";
    let second = bytes.replacen("Subject: [PATCH]", "Subject: [PATCH 2/2]", 1);
    let kvmtk = env!("CARGO_BIN_EXE_kvmtk");
    let input = format!("From x Mon Sep 17 00:00:00 2001\n{foreign}\n{second}");
    let o = run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "-"]), input.as_bytes());
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(text(&o).contains("`virt/kvm/nope.c` does not exist in the tree"), "{}", text(&o));
    let o =
        run(dir.path(), Command::new(kvmtk).args(["lint", "--tree", "quiet", "--keep-going", "-"]), input.as_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let t = text(&o);
    assert!(
        t.contains("[1/2] stdin#1 x: other tree\n  did not apply, skipped: stdin#1: `virt/kvm/nope.c` does not exist"),
        "{t}"
    );
    assert!(t.contains("  computed on a tree without stdin#1, which did not apply\n  introduces HW001"), "{t}");
    assert!(t.contains("kvmtk: stdin#1 did not apply (--keep-going): the lint is incomplete"), "{t}");
}

#[test]
fn b4_and_sendemail_validate_hooks() {
    let (dir, patch) = setup();
    let repo = dir.path().join("repo");
    let bytes = std::fs::read(&patch).unwrap();
    let hook_cmd = || {
        let mut c = Command::new("sh");
        c.arg(hook()).env("KVMTK", env!("CARGO_BIN_EXE_kvmtk")).env("GIT_CONFIG_GLOBAL", "/dev/null");
        c
    };
    // b4 prep: the branch's patch on stdin, linted as its commit against its parent.
    let o = run(&repo, &mut hook_cmd(), &bytes);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("introduces HW001 warning x86 foo_clock_cpu_online"), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stdout).contains("^..") && text(&o).contains(": 1 commit on "), "{}", text(&o));
    // sendemail-validate: the patch file as the argument.
    let mut c = hook_cmd();
    c.arg(&patch);
    let o = run(&repo, &mut c, b"");
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    assert!(text(&o).contains("introduces HW001"), "{}", text(&o));
    // b4 am: a patch from the list (its commit unknown here) on the base tree, from stdin.
    git(&repo, &["checkout", "-q", "base"]);
    let foreign = String::from_utf8(bytes.clone()).unwrap();
    let foreign = foreign.replacen(&foreign[5..45], "0000000000000000000000000000000000000000", 1);
    let o = run(&repo, &mut hook_cmd(), foreign.as_bytes());
    assert_eq!(o.status.code(), Some(1), "{}", text(&o));
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.starts_with("lint stdin: 1 patch on "), "{out}");
    assert!(out.contains("introduces HW001"), "{out}");
    // A clean patch passes: the fire commit reversed, from the list, on the fire tree.
    git(&repo, &["checkout", "-q", "-b", "revert", "topic"]);
    git(&repo, &["revert", "--no-edit", "HEAD"]);
    let reverted = git(&repo, &["format-patch", "-1", "--stdout"]);
    git(&repo, &["checkout", "-q", "topic"]);
    let reverted = reverted.replacen(&reverted[5..45], "0000000000000000000000000000000000000000", 1);
    let o = run(&repo, &mut hook_cmd(), reverted.as_bytes());
    assert_eq!(o.status.code(), Some(0), "{}", text(&o));
}
