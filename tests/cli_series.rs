//! `kvmtk series generate` / `kvmtk series test` end to end: exit codes,
//! messages, outputs.

use std::path::PathBuf;
use std::process::{Command, Output};

fn kvmtk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).output().expect("run kvmtk")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name).display().to_string()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

const DATE: &str = "Mon, 3 Jun 2024 10:00:00 +0000";

#[test]
fn generate_writes_a_series_and_refuses_to_overwrite() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("s");
    let out_s = out.to_str().unwrap();
    let def = fixture("default");
    let args = ["series", "generate", &def, "--out", out_s, "--author", "A U Thor <a@example.org>", "--date", DATE];
    let o = kvmtk(&args);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(stdout(&o).contains("and a cover letter to"), "{}", stdout(&o));
    let cover = std::fs::read_to_string(out.join("0000-cover-letter.patch")).unwrap();
    assert!(cover.starts_with("From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: A U Thor <a@example.org>\nDate: Mon, 3 Jun 2024 10:00:00 +0000\nSubject: [PATCH 0/"), "{cover}");
    // Not empty any more: refused with exit 2, then replaced with --force.
    let o = kvmtk(&args);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("exists and is not empty; pass --force to replace it"), "{}", stderr(&o));
    let mut forced = args.to_vec();
    forced.push("--force");
    assert_eq!(kvmtk(&forced).status.code(), Some(0));
    // Usage errors.
    let o = kvmtk(&["series", "generate", &def, "--out", out_s, "--force", "--only", "no-such-step"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown transformation `no-such-step` in --only"), "{}", stderr(&o));
    let o = kvmtk(&["series", "generate", &def, "--out", out_s, "--force", "--date", "tomorrow"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid date `tomorrow`"), "{}", stderr(&o));
    let o = kvmtk(&["series", "generate", &def, "--out", out_s, "--force", "--author", "nobody"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid author `nobody`"), "{}", stderr(&o));
    let o = kvmtk(&["series", "generate", &def, "--out", out_s, "--branch", "x"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--repo"), "{}", stderr(&o));
}

#[test]
fn test_reports_failing_patches_with_exit_1_and_input_errors_with_2() {
    let tree = fixture("broken-series/tree");
    let series = fixture("broken-series/sleep-in-starting");
    let o = kvmtk(&["series", "test", &tree, &series]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("introduces HW007 common kvm_starting_cpu"), "{text}");
    assert!(text.contains("2 of 3 patches failed"), "{text}");
    let o = kvmtk(&["series", "test", &tree, &series, "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(v["ok"], false);
    assert_eq!(v["patches"][1]["introduced"][0]["rule"], "HW007");
    assert_eq!(v["patches"][2]["applies"]["status"], "fail");
    // A build that fails.
    let o = kvmtk(&[
        "series",
        "test",
        &tree,
        &fixture("broken-series/no-compile"),
        "--build",
        "gcc -fsyntax-only -Werror -Iinclude virt/kvm/kvm_main.c",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains("build fails (exit status 1)"), "{}", stdout(&o));
    // Input errors: exit 2.
    let o = kvmtk(&["series", "test", &tree, &fixture("broken-series/nope")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("cannot read series"), "{}", stderr(&o));
    let o = kvmtk(&["series", "test", &series]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("give the kernel tree and the series"), "{}", stderr(&o));
}

#[test]
fn test_passes_a_clean_series_from_a_repo_revision() {
    // The first patch of the broken series alone is fine, read from a git
    // revision of the tree.
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("r");
    let git = |args: &[&str]| {
        let o = Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@t")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@t")
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    std::fs::create_dir(&repo).unwrap();
    let src = PathBuf::from(fixture("broken-series/tree"));
    for f in ["virt/kvm/kvm_main.c", "include/linux/kvm_host.h", "include/linux/cpuhotplug.h"] {
        std::fs::create_dir_all(repo.join(f).parent().unwrap()).unwrap();
        std::fs::copy(src.join(f), repo.join(f)).unwrap();
    }
    git(&["init", "-q"]);
    git(&["add", "-A"]);
    git(&["commit", "-q", "-m", "base"]);
    let one = dir.path().join("one");
    std::fs::create_dir(&one).unwrap();
    let name = "0001-KVM-Document-the-STARTING-section-callback.patch";
    std::fs::copy(PathBuf::from(fixture("broken-series/sleep-in-starting")).join(name), one.join(name)).unwrap();
    let o = kvmtk(&["series", "test", "--repo", repo.to_str().unwrap(), "--rev", "HEAD", one.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("all 1 patches pass"), "{}", stdout(&o));
}
