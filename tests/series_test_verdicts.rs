//! `series test` never passes what it did not check, and leaves nothing
//! behind (issue 16, item 5): checkpatch's exit status is honoured, SIGINT
//! and SIGTERM during `--build` stop the build's whole process group and
//! remove the scratch copy, a scratch copy a killed run left is removed by
//! the next run (and one a live run holds is not), and `--branch` names are
//! checked like `git check-ref-format --branch`.

use std::os::unix::io::AsRawFd;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// `kvmtk` with its temporary directory (where the scratch copy goes) in
/// `tmp`.
fn kvmtk(tmp: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_kvmtk"));
    c.env("TMPDIR", tmp);
    c
}

/// A series of one patch that applies to the fixture tree cleanly.
fn one_good_patch(dir: &Path) -> PathBuf {
    let s = dir.join("series");
    std::fs::create_dir_all(&s).unwrap();
    let name = "0001-KVM-Document-the-STARTING-section-callback.patch";
    std::fs::copy(fixture("broken-series/sleep-in-starting").join(name), s.join(name)).unwrap();
    s
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn checkpatch_exit_status_is_honoured() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let series = one_good_patch(d);
    let tree = fixture("broken-series/tree");
    let run = |script: &str| {
        let path = d.join("checkpatch.pl");
        std::fs::write(&path, script).unwrap();
        kvmtk(d).args(["series", "test"]).arg(&tree).arg(&series).arg("--checkpatch").arg(&path).output().unwrap()
    };
    let p = "0001-KVM-Document-the-STARTING-section-callback.patch";
    let script = d.join("checkpatch.pl");
    let script = script.display();
    // A script that cannot check is an error (exit 2), never a clean patch.
    for (body, why) in [
        ("exit 3;\n", format!("failed (exit status 3) on {p}")),
        ("exit 1;\n", format!("exited with status 1 without reporting an error or a warning on {p}")),
        ("kill 'KILL', $$;\n", format!("was killed by a signal on {p}")),
    ] {
        let o = run(body);
        assert_eq!(o.status.code(), Some(2), "{body}: {}{}", stdout(&o), stderr(&o));
        assert!(stderr(&o).contains(&format!("kvmtk: error: --checkpatch `{script}` {why}")), "{body}: {}", stderr(&o));
        assert_eq!(stdout(&o), "", "{body}: no verdict printed");
    }
    // A script that dies (perl's exit status then depends on errno).
    let o = run("die \"cannot read spelling.txt\\n\";\n");
    assert_eq!(o.status.code(), Some(2), "{}{}", stdout(&o), stderr(&o));
    assert!(
        stderr(&o).contains(&format!("kvmtk: error: --checkpatch `{script}` failed (exit status ")),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).ends_with(&format!(") on {p}:\ncannot read spelling.txt\n")), "{}", stderr(&o));
    // Its reports: an error fails the patch (exit 1), a warning is shown.
    let o = run("print \"ERROR: trailing whitespace\\n\"; exit 1;\n");
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("checkpatch: 1 error(s): ERROR: trailing whitespace"), "{}", stdout(&o));
    let o = run("print \"WARNING: long line\\n\"; exit 1;\n");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0E 1W"), "{}", stdout(&o));
    let o = run("exit 0;\n");
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("0E 0W"), "{}", stdout(&o));
}

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache_support;

#[test]
fn real_checkpatch_passes_a_clean_patch_and_fails_a_bad_one() {
    let Some(kernel) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    let script = kernel.join("scripts/checkpatch.pl");
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let series = one_good_patch(d);
    let tree = fixture("broken-series/tree");
    let o =
        kvmtk(d).args(["series", "test"]).arg(&tree).arg(&series).arg("--checkpatch").arg(&script).output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    // Trailing whitespace in an added line: checkpatch.pl exits 1 with an ERROR.
    let p = series.join("0001-KVM-Document-the-STARTING-section-callback.patch");
    let text = std::fs::read_to_string(&p).unwrap().replace("interrupts disabled. */", "interrupts disabled. */ ");
    std::fs::write(&p, text).unwrap();
    let o =
        kvmtk(d).args(["series", "test"]).arg(&tree).arg(&series).arg("--checkpatch").arg(&script).output().unwrap();
    assert_eq!(o.status.code(), Some(1), "{}{}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("ERROR: trailing whitespace"), "{}", stdout(&o));
}

fn alive(pid: i32) -> bool {
    // SAFETY: signal 0 only checks for existence.
    unsafe { libc::kill(pid, 0) == 0 }
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < limit, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn interrupt_build(sig: i32) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let series = one_good_patch(d);
    let pids = d.join("pids");
    // The shell, and a process it started in the background: both must go.
    let build = format!("sleep 120 & echo $$ $! > {}.new && mv {0}.new {0}; wait", pids.display());
    let mut cmd = kvmtk(&tmp);
    // The test harness may run with SIGINT ignored (a background job), and
    // kvmtk rightly keeps an ignored signal ignored: give it the default.
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            libc::signal(libc::SIGTERM, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd
        .args(["series", "test"])
        .arg(fixture("broken-series/tree"))
        .arg(&series)
        .args(["--build", &build])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for("the build starting", Duration::from_secs(60), || pids.exists());
    let ids: Vec<i32> =
        std::fs::read_to_string(&pids).unwrap().split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert_eq!(ids.len(), 2);
    assert_eq!(names(&tmp).len(), 1, "one scratch copy while building");
    let started = Instant::now();
    // SAFETY: kill() on our child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, sig) }, 0);
    let o = child.wait_with_output().unwrap();
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    // kvmtk says what it did, then dies by the signal, as a shell expects.
    assert_eq!(o.status.signal(), Some(sig), "{:?}: {}", o.status, stderr(&o));
    let name = if sig == libc::SIGINT { "SIGINT" } else { "SIGTERM" };
    assert!(
        stderr(&o)
            .ends_with(&format!("kvmtk: interrupted by {name}: the build was stopped and the scratch copy removed\n")),
        "{}",
        stderr(&o)
    );
    for id in ids {
        wait_for(&format!("build process {id} gone"), Duration::from_secs(5), || !alive(id));
    }
    assert_eq!(names(&tmp), Vec::<String>::new(), "scratch copy left behind");
}

#[test]
fn sigint_during_a_build_stops_its_process_group_and_removes_the_scratch() {
    interrupt_build(libc::SIGINT);
}

#[test]
fn sigterm_during_a_build_stops_its_process_group_and_removes_the_scratch() {
    interrupt_build(libc::SIGTERM);
}

#[test]
fn sigint_while_copying_the_real_6_1_tree_removes_the_partial_scratch() {
    // The scratch copy of the whole 6.1 tree (1.5 GB) takes a while: an
    // interruption there stops the copy and removes what was copied.
    let Some(kernel) = kernel_cache_support::kernel_tree("full-6.1") else { return };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = d.join("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let series = one_good_patch(d);
    let mut cmd = kvmtk(&tmp);
    // SAFETY: signal() is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            libc::signal(libc::SIGINT, libc::SIG_DFL);
            Ok(())
        });
    }
    let child = cmd
        .args(["series", "test"])
        .arg(&kernel)
        .arg(&series)
        .args(["--build", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let scratch_started = || names(&tmp).iter().any(|n| n.starts_with("kvmtk-series-build-"));
    wait_for("the scratch copy starting", Duration::from_secs(120), scratch_started);
    std::thread::sleep(Duration::from_millis(300));
    let started = Instant::now();
    // SAFETY: kill() on our child.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGINT) }, 0);
    let o = child.wait_with_output().unwrap();
    eprintln!("stopped {:?} after SIGINT", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    assert_eq!(o.status.signal(), Some(libc::SIGINT), "{:?}: {}", o.status, stderr(&o));
    assert!(stderr(&o).contains("kvmtk: interrupted by SIGINT"), "{}", stderr(&o));
    assert_eq!(names(&tmp), Vec::<String>::new(), "partial scratch copy left behind");
}

#[test]
fn a_scratch_left_by_a_killed_run_is_removed_by_the_next_and_a_live_one_kept() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let tmp = d.join("tmp");
    // Left by a run killed with SIGKILL (unlocked), with a tree in it.
    std::fs::create_dir_all(tmp.join("kvmtk-series-build-Stale1/virt/kvm")).unwrap();
    std::fs::write(tmp.join("kvmtk-series-build-Stale1/virt/kvm/kvm_main.c"), "int x;\n").unwrap();
    // Another run's, in use: locked, kept.
    std::fs::create_dir_all(tmp.join("kvmtk-series-build-Live22")).unwrap();
    let live = std::fs::File::open(tmp.join("kvmtk-series-build-Live22")).unwrap();
    // SAFETY: flock on a descriptor we own.
    assert_eq!(unsafe { libc::flock(live.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }, 0);
    // One being created right now (not locked yet): kept.
    std::fs::create_dir_all(tmp.join("kvmtk-series-new-Young3")).unwrap();
    // Not ours by name: kept.
    std::fs::create_dir_all(tmp.join("other-dir")).unwrap();
    let series = one_good_patch(d);
    let o = kvmtk(&tmp)
        .args(["series", "test"])
        .arg(fixture("broken-series/tree"))
        .arg(&series)
        .args(["--build", "true"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}{}", stdout(&o), stderr(&o));
    assert_eq!(names(&tmp), ["kvmtk-series-build-Live22", "kvmtk-series-new-Young3", "other-dir"]);
    drop(live);
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
fn branch_names_are_checked_like_git_check_ref_format_branch() {
    // Every name git refuses, kvmtk refuses; every name it accepts, kvmtk
    // accepts, except `@`, which git reads as HEAD inside a repository.
    let names = [
        "HEAD",
        "-x",
        "a..b",
        "a b",
        "ok/name",
        "@{-1}",
        "a.lock",
        "foo.",
        ".foo",
        "a//b",
        "a/",
        "x@{y}",
        "a\\b",
        "a~1",
        "a^",
        "a:b",
        "a?",
        "a*",
        "a[",
        "kvm/series-v2",
        "FETCH_HEAD",
        "HEAD/x",
        "x/HEAD",
        "tab\tname",
        "",
    ];
    // In a fresh repository: `@{-1}` names the previously checked-out
    // branch, so in a repository with a checkout history git accepts it.
    let fresh = tempfile::tempdir().unwrap();
    assert!(Command::new("git").args(["init", "-q"]).current_dir(fresh.path()).status().unwrap().success());
    for name in names {
        let git_ok = Command::new("git")
            .args(["check-ref-format", "--branch", name])
            .current_dir(fresh.path())
            .output()
            .unwrap()
            .status
            .success();
        let ours = patchgen::series::output::check_branch_name(name);
        assert_eq!(ours.is_ok(), git_ok, "`{name}`: {ours:?}");
    }
    assert!(patchgen::series::output::check_branch_name("@").is_err());

    // End to end: `--branch HEAD` is refused before anything is written.
    let dir = tempfile::tempdir().unwrap();
    let r = dir.path().join("repo");
    let copy = |from: &Path, to: &Path| {
        let o = Command::new("cp").arg("-r").arg(from).arg(to).status().unwrap();
        assert!(o.success());
    };
    copy(&fixture("default"), &r);
    git(&r, &["init", "-q"]);
    git(&r, &["add", "-A"]);
    git(&r, &["commit", "-qm", "base"]);
    let refs_before = git(&r, &["for-each-ref"]);
    for name in ["HEAD", "@", "-x"] {
        let o = Command::new(env!("CARGO_BIN_EXE_kvmtk"))
            .current_dir(dir.path())
            .args([
                "series",
                "generate",
                "--repo",
                "repo",
                "--rev",
                "HEAD",
                "--out",
                "out",
                &format!("--branch={name}"),
            ])
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(2), "{name}: {}", stderr(&o));
        assert!(stderr(&o).starts_with(&format!("kvmtk: error: invalid branch name `{name}`: ")), "{}", stderr(&o));
        assert_eq!(git(&r, &["for-each-ref"]), refs_before);
        assert!(!dir.path().join("out").exists());
        assert!(!r.join(".git/refs/heads/HEAD").exists());
    }
}
