//! Input files have size limits and are read only when they are regular
//! files: `--api-model` (4 MiB), `--baseline` (16 MiB) and the C files of a
//! directory tree (64 MiB; over 8 MiB they are read but not parsed). A
//! device (`/dev/zero`), a FIFO or a file over the limit gives an error (or,
//! for a tree's file, a warning) naming the file and the limit, at once:
//! nothing blocks and nothing is read whole.

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

/// Run kvmtk, failing the test if it takes over a minute (a blocked read).
fn kvmtk(dir: &Path, args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmtk"))
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run kvmtk");
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("kvmtk {args:?} did not finish in a minute: blocked on an input?");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

/// The findings of a `check --format json` output.
fn findings(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("JSON report");
    v["findings"].clone()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn mkfifo(p: &Path) {
    assert!(Command::new("mkfifo").arg(p).status().unwrap().success());
}

/// A sparse file of `len` bytes (costs no disk).
fn sparse(p: &Path, len: u64) {
    std::fs::File::create(p).unwrap().set_len(len).unwrap();
}

#[test]
fn an_api_model_that_is_a_device_a_fifo_or_too_large_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("model.fifo");
    mkfifo(&fifo);
    let big = dir.path().join("big.toml");
    sparse(&big, analyzer::api::MAX_API_MODEL_BYTES + 1);
    let tree = fixture("default");
    let tree = tree.to_str().unwrap();
    for (model, what) in [
        ("/dev/zero", "it is a character device, not a regular file".to_string()),
        (fifo.to_str().unwrap(), "it is a FIFO, not a regular file".to_string()),
        (big.to_str().unwrap(), format!("it is 4.0 MiB ({} bytes), over the limit of 4 MiB", (4 << 20) + 1)),
    ] {
        for command in [vec!["check", tree, "--no-cache"], vec!["graph", tree]] {
            let mut args = command.clone();
            args.extend(["--api-model", model]);
            let o = kvmtk(dir.path(), &args);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
            assert_eq!(
                stderr(&o),
                format!(
                    "kvmtk: error: {model}: cannot read the API model: {what} (an API model is a TOML file of at most 4 MiB)\n"
                ),
                "{args:?}"
            );
        }
    }
}

#[test]
fn a_baseline_that_is_a_device_a_fifo_or_too_large_is_refused_naming_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("baseline.fifo");
    mkfifo(&fifo);
    let big = dir.path().join("big.json");
    sparse(&big, analyzer::lint::MAX_BASELINE_BYTES + 1);
    let tree = fixture("broken-series/tree");
    let patch = fixture("broken-series/no-compile/0001-KVM-Count-users.patch");
    for (baseline, what) in [
        ("/dev/zero", "it is a character device, not a regular file".to_string()),
        (fifo.to_str().unwrap(), "it is a FIFO, not a regular file".to_string()),
        (big.to_str().unwrap(), format!("it is 16.0 MiB ({} bytes), over the limit of 16 MiB", (16 << 20) + 1)),
    ] {
        let args =
            ["lint", "--tree", tree.to_str().unwrap(), patch.to_str().unwrap(), "--no-cache", "--baseline", baseline];
        let o = kvmtk(dir.path(), &args);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert_eq!(
            stderr(&o),
            format!(
                "kvmtk: error: cannot read baseline `{baseline}`: {what} (a baseline is a JSON file of at most 16 MiB)\n"
            )
        );
    }
}

#[test]
fn a_c_file_over_the_read_limit_is_skipped_unread_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    copy_tree(&fixture("default"), &tree);
    let size = analyzer::source::MAX_SOURCE_FILE_BYTES + 1;
    sparse(&tree.join("virt/kvm/huge.c"), size);
    let clean = kvmtk(dir.path(), &["check", fixture("default").to_str().unwrap(), "--no-cache", "--format", "json"]);
    let detail = format!("not read: 64.0 MiB ({size} bytes) is over the 64 MiB limit for a source file; skipped");
    for command in
        [vec!["check", "tree", "--no-cache", "--format", "json", "--verbose"], vec!["refs", "tree", "--scope", "all"]]
    {
        let o = kvmtk(dir.path(), &command);
        let err = stderr(&o);
        // `check --verbose` warns on standard error (paths from the current
        // directory), `refs` lists it in its report (paths in the tree).
        let (said, warning) = if command[0] == "check" {
            (err.clone(), format!("tree/virt/kvm/huge.c: warning: {detail}"))
        } else {
            (String::from_utf8_lossy(&o.stdout).into_owned(), format!("virt/kvm/huge.c: {detail}"))
        };
        assert!(said.contains(&warning), "{command:?}: {said}");
        if command[0] == "check" {
            // The rest of the tree is analyzed as without the file.
            assert_eq!(o.status.code(), clean.status.code());
            assert_eq!(findings(&o), findings(&clean));
        } else {
            assert_eq!(o.status.code(), Some(0), "{err}");
        }
    }
}

#[test]
fn a_fifo_or_a_device_in_a_tree_does_not_block_the_load() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    copy_tree(&fixture("default"), &tree);
    // A link inside the tree to a FIFO (a FIFO itself is not listed as a
    // C file; through a link it is planned and must not block the read).
    mkfifo(&tree.join("fifo"));
    std::os::unix::fs::symlink("../../fifo", tree.join("virt/kvm/pipe.c")).unwrap();
    // A link out of the tree to an endless device.
    std::os::unix::fs::symlink("/dev/zero", tree.join("virt/kvm/zero.c")).unwrap();
    let clean = kvmtk(dir.path(), &["check", fixture("default").to_str().unwrap(), "--no-cache", "--format", "json"]);
    let o = kvmtk(dir.path(), &["check", "tree", "--no-cache", "--format", "json", "--verbose"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), clean.status.code(), "{err}");
    assert_eq!(findings(&o), findings(&clean), "{err}");
    assert!(err.contains("tree/virt/kvm/pipe.c: warning: cannot read: it is a FIFO, not a regular file\n"), "{err}");
    assert!(err.contains("tree/virt/kvm/zero.c: warning: symbolic link points outside the tree"), "{err}");
}
