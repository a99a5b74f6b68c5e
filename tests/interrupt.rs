//! Nothing lost: an interrupted `series generate` leaves no partial output,
//! the temporary directories a killed run leaves are cleaned by the next
//! run (a directory replaced with --force is put back when the kill came
//! between the two renames), and `--branch` never touches the user's
//! current branch, index or work tree.

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kvmtk_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).current_dir(dir).output().expect("run kvmtk")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache_support;

fn kernel_cache(name: &str) -> Option<PathBuf> {
    kernel_cache_support::kernel_tree(name)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

const DATE: &str = "Mon, 3 Jun 2024 10:00:00 +0000";

#[test]
fn sigint_during_generation_leaves_no_output_and_no_temporary_directory() {
    let Some(kernel) = kernel_cache("linux-6.1") else { return };
    let dir = tempfile::Builder::new().prefix("kvmtk-interrupt-").tempdir().unwrap();
    let out = dir.path().join("series");
    let started = Instant::now();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvmtk"));
    // A harness that starts the tests in the background without job
    // control (`cmd &` in a script) has SIGINT ignored, and an ignored
    // signal stays ignored across exec: kvmtk would then, rightly, run to
    // the end. The child gets the default action, as from a terminal.
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd
        .args(["series", "generate"])
        .arg(&kernel)
        .arg("--out")
        .arg(&out)
        .args(["--author", "A <a@b>", "--date", DATE])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    let kill = Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    assert!(kill.success());
    let o = child.wait_with_output().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the run finished before SIGINT: raise the machine's speed assumption"
    );
    // Killed by the signal (no handler): no exit code.
    assert_eq!(o.status.code(), None, "{}", stderr(&o));
    assert!(!out.exists(), "partial output left");
    assert_eq!(names(dir.path()), Vec::<String>::new(), "temporary directory left beside the output");
}

#[test]
fn stale_temporary_directories_of_killed_runs_are_cleaned_and_a_moved_aside_output_restored() {
    let dir = tempfile::Builder::new().prefix("kvmtk-stale-").tempdir().unwrap();
    let d = dir.path();
    let tree = fixture("default");
    let tree = tree.to_str().unwrap();
    let gen = |out: &str, force: bool| {
        let mut a = vec!["series", "generate", tree, "--out", out, "--author", "A <a@b>", "--date", DATE];
        if force {
            a.push("--force");
        }
        kvmtk_in(d, &a)
    };
    // A run killed while staging left `.series.kvmtk-XXXXXX` with part of a series.
    std::fs::create_dir(d.join(".series.kvmtk-AbC123")).unwrap();
    std::fs::write(d.join(".series.kvmtk-AbC123/0001-partial.patch"), "From 0\n").unwrap();
    // Another output's staging directory is not ours to delete.
    std::fs::create_dir(d.join(".other.kvmtk-XyZ789")).unwrap();
    let o = gen("series", false);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(names(d), [".other.kvmtk-XyZ789", "series"]);
    assert!(names(&d.join("series")).iter().all(|n| n != "0001-partial.patch"));

    // A --force run killed between moving the old output aside and moving
    // the new one in: the next run puts the old output back first, so
    // without --force it is refused and the user's files are intact.
    std::fs::create_dir_all(d.join(".mine.kvmtk-old-QwE456/old")).unwrap();
    std::fs::write(d.join(".mine.kvmtk-old-QwE456/old/notes.txt"), "my notes").unwrap();
    std::fs::create_dir(d.join(".mine.kvmtk-RtY012")).unwrap();
    let o = gen("mine", false);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "kvmtk: error: output directory `mine` exists and is not empty; pass --force to replace it\n"
    );
    assert_eq!(std::fs::read_to_string(d.join("mine/notes.txt")).unwrap(), "my notes");
    assert_eq!(names(d), [".other.kvmtk-XyZ789", "mine", "series"]);
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@t")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@t")
        .output()
        .expect("git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn branch_leaves_current_branch_index_and_work_tree_byte_for_byte() {
    let dir = tempfile::Builder::new().prefix("kvmtk-branch-").tempdir().unwrap();
    let r = dir.path().join("repo");
    copy_tree(&fixture("default"), &r);
    git(&r, &["init", "-q", "-b", "work"]);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-q", "-m", "base"]);
    git(&r, &["tag", "base"]);
    git(&r, &["commit", "-q", "--allow-empty", "-m", "later"]);
    // Staged, unstaged and untracked changes, in files the series touches.
    std::fs::write(r.join("virt/kvm/kvm_main.c"), "/* staged */\n").unwrap();
    git(&r, &["add", "virt/kvm/kvm_main.c"]);
    std::fs::write(r.join("arch/x86/kvm/x86.c"), "/* unstaged */\n").unwrap();
    std::fs::write(r.join("untracked.txt"), "u").unwrap();
    let snapshot = |r: &Path| {
        (
            git(r, &["symbolic-ref", "HEAD"]),
            git(r, &["rev-parse", "HEAD"]),
            std::fs::read(r.join(".git/index")).unwrap(),
            git(r, &["diff", "--cached"]),
            git(r, &["diff"]),
            git(r, &["status", "--porcelain", "--untracked-files=all"]),
        )
    };
    let before = snapshot(&r);
    let o = kvmtk_in(
        dir.path(),
        &[
            "series",
            "generate",
            "--repo",
            "repo",
            "--rev",
            "base",
            "--out",
            "s",
            "--branch",
            "kvm-rework",
            "--author",
            "A <a@b>",
            "--date",
            DATE,
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(snapshot(&r), before);
    assert_eq!(git(&r, &["rev-parse", "kvm-rework~6"]), git(&r, &["rev-parse", "base"]));
    // Refused (branch exists): still nothing changed, nothing written.
    let o = kvmtk_in(
        dir.path(),
        &["series", "generate", "--repo", "repo", "--rev", "base", "--out", "t", "--branch", "work"],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), "kvmtk: error: branch `work` already exists in repo; choose another name\n");
    assert_eq!(snapshot(&r), before);
    assert!(!dir.path().join("t").exists());
}
