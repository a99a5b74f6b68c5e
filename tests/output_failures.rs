//! Output that cannot be written is an error (exit 2), never a panic
//! (exit 101): standard output or standard error on `/dev/full` (ENOSPC)
//! or on a pipe whose reader is gone (EPIPE), and `-o /dev/full`, for
//! every command that prints: check, graph, explain, lint, series test.
//! When standard error still works it says what could not be written.

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::fs::File;
use std::os::fd::{FromRawFd as _, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

/// Where a stream goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Sink {
    /// Captured by the test.
    Captured,
    /// `/dev/full`: every write fails with ENOSPC.
    Full,
    /// The write end of a pipe whose read end is already closed: every
    /// write fails with EPIPE (kvmtk, like every Rust program, ignores
    /// SIGPIPE).
    ClosedPipe,
}

/// The write end of a pipe nobody reads.
fn closed_pipe() -> File {
    let mut fds = [0; 2];
    // SAFETY: pipe(2) stores two new descriptors in the array it is given.
    assert_eq!(unsafe { libc::pipe(fds.as_mut_ptr()) }, 0, "pipe");
    // SAFETY: both descriptors were just created and nothing else owns them.
    let (read, write) = unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    drop(read);
    File::from(write)
}

fn stdio(sink: Sink) -> Stdio {
    match sink {
        Sink::Captured => Stdio::piped(),
        Sink::Full => Stdio::from(File::options().write(true).open("/dev/full").unwrap()),
        Sink::ClosedPipe => Stdio::from(closed_pipe()),
    }
}

fn kvmtk(dir: &Path, args: &[String], out: Sink, err: Sink) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(stdio(out))
        .stderr(stdio(err))
        .output()
        .expect("run kvmtk")
}

/// A copy of the broken-series tree with a C file that does not parse,
/// so that loading it prints a warning on standard error.
fn tree_with_a_warning(dir: &Path) -> PathBuf {
    let tree = dir.join("tree");
    copy_tree(&fixture("broken-series/tree"), &tree);
    std::fs::write(tree.join("virt/kvm/noise.c"), "static int noise = ;\n").unwrap();
    tree
}

/// Every command that prints, each one writing to both streams.
fn commands(dir: &Path) -> Vec<(&'static str, Vec<String>)> {
    let tree = tree_with_a_warning(dir).display().to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    let patch = fixture("broken-series/no-compile/0001-KVM-Count-users.patch").display().to_string();
    let series = fixture("broken-series/sleep-in-starting").display().to_string();
    vec![
        ("check", s(&["check", &tree, "--no-cache"])),
        ("graph", s(&["graph", &tree])),
        // Its rule list on standard output; an unknown rule's error on
        // standard error.
        ("explain", s(&["explain"])),
        ("explain unknown", s(&["explain", "HW999"])),
        // `--write-baseline` says on standard error what it wrote.
        ("lint", s(&["lint", "--tree", &tree, &patch, "--no-cache", "--baseline", "b.json", "--write-baseline"])),
        ("series test", s(&["series", "test", &tree, &series])),
    ]
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn every_command_writes_both_streams_here() {
    // The cases below are only meaningful if each command writes to the
    // stream they break.
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in commands(dir.path()) {
        let o = kvmtk(dir.path(), &args, Sink::Captured, Sink::Captured);
        assert!(matches!(o.status.code(), Some(0..=2)), "{name}: {o:?}");
        if name == "explain unknown" {
            assert!(o.stdout.is_empty() && !o.stderr.is_empty(), "{name}: {o:?}");
        } else if name == "explain" {
            assert!(!o.stdout.is_empty(), "{name}: {o:?}");
        } else {
            assert!(!o.stdout.is_empty() && !o.stderr.is_empty(), "{name}: both streams: {o:?}");
        }
    }
}

#[test]
fn standard_output_that_cannot_be_written_is_exit_2_with_a_message() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in commands(dir.path()) {
        if name == "explain unknown" {
            continue;
        }
        for sink in [Sink::Full, Sink::ClosedPipe] {
            let o = kvmtk(dir.path(), &args, sink, Sink::Captured);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{name} > {sink:?}: {err}");
            assert!(!err.contains("panicked"), "{name} > {sink:?}: {err}");
            let reason = if sink == Sink::Full { "No space left on device" } else { "Broken pipe" };
            assert!(
                err.contains(&format!("kvmtk: error: cannot write to standard output: {reason}")),
                "{name} > {sink:?}: {err}"
            );
        }
    }
}

#[test]
fn standard_error_that_cannot_be_written_is_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    for (name, args) in commands(dir.path()) {
        if name == "explain" {
            continue;
        }
        for sink in [Sink::Full, Sink::ClosedPipe] {
            let o = kvmtk(dir.path(), &args, Sink::Captured, sink);
            // Exit 101 is a panic; nothing else can say what went wrong.
            assert_eq!(o.status.code(), Some(2), "{name} 2> {sink:?}: stdout {}", text(&o.stdout));
            for out in [Sink::Full, Sink::ClosedPipe] {
                let both = kvmtk(dir.path(), &args, out, sink);
                assert_eq!(both.status.code(), Some(2), "{name} > {out:?} 2> {sink:?}");
            }
        }
    }
}

#[test]
fn an_output_file_that_cannot_be_written_is_exit_2_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let tree = tree_with_a_warning(dir.path()).display().to_string();
    let patch = fixture("broken-series/no-compile/0001-KVM-Count-users.patch").display().to_string();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    for args in [
        s(&["check", &tree, "--no-cache", "-o", "/dev/full"]),
        s(&["graph", &tree, "-o", "/dev/full"]),
        s(&["lint", "--tree", &tree, &patch, "--no-cache", "-o", "/dev/full"]),
    ] {
        for err_sink in [Sink::Captured, Sink::Full, Sink::ClosedPipe] {
            let o = kvmtk(dir.path(), &args, Sink::Captured, err_sink);
            assert_eq!(o.status.code(), Some(2), "{args:?} 2> {err_sink:?}: {}", text(&o.stderr));
            if err_sink == Sink::Captured {
                let err = text(&o.stderr);
                assert!(err.contains("kvmtk: error: cannot write `/dev/full`: No space left on device"), "{err}");
                assert!(!err.contains("panicked"), "{err}");
            }
        }
    }
}

#[test]
fn usage_and_help_that_cannot_be_written_are_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let s = |v: &[&str]| v.iter().map(|a| a.to_string()).collect::<Vec<_>>();
    // Written: the usual exit codes.
    assert_eq!(kvmtk(dir.path(), &s(&["--help"]), Sink::Captured, Sink::Captured).status.code(), Some(0));
    assert_eq!(kvmtk(dir.path(), &s(&["check", "--bogus"]), Sink::Captured, Sink::Captured).status.code(), Some(2));
    for sink in [Sink::Full, Sink::ClosedPipe] {
        assert_eq!(kvmtk(dir.path(), &s(&["--help"]), sink, Sink::Captured).status.code(), Some(2), "{sink:?}");
        let o = kvmtk(dir.path(), &s(&["check", "--bogus"]), Sink::Captured, sink);
        assert_eq!(o.status.code(), Some(2), "{sink:?}");
    }
}
