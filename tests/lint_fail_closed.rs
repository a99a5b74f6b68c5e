//! `kvmtk lint` and `kvmtk check` fail closed (issue 16, item 4): a verdict
//! covers what was analyzed. Each class of incomplete input is run end to
//! end through the binary, on the bundled fixture and on the real 6.1 tree
//! (git repositories built with the `git` command, and real shallow and
//! blobless clones of them over `file://`):
//!
//! | class | before | now |
//! |---|---|---|
//! | unparseable bytes appended to `kvm_main.c` with a new HW007 bug | HW007 hidden, old findings "fixed", `--fail-on error` exit 0 | step NOT ANALYZED, old findings "unknown", exit 1 in every format |
//! | missing tree object (`arch/x86`) | the arch silently dropped, exit 0 | exit 2 naming the tree |
//! | missing blob | a warning per blob, a silent lint | exit 2 naming the blob |
//! | shallow clone, range reaching its boundary | compared against an empty tree, every finding new | exit 2, `git fetch --unshallow`; after it, the real verdict |
//! | blobless clone (`--filter=blob:none`) | `check`: 0 findings, exit 0; `lint`: "no change" | exit 2, how to complete the clone; after it, the real verdict |
//!
//! Each test also runs the control (the same change without the defect, or
//! the clone completed as the message says), so that it cannot pass by
//! failing everything.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache_support;

const KVM_MAIN: &str = "virt/kvm/kvm_main.c";

/// The enabling step of `hardware_enable_nolock()` (same shape in the
/// fixture and in 6.1), and the same with a sleep added: HW007 in IPI context.
const ENABLE: &str = "\tcpumask_set_cpu(cpu, cpus_hardware_enabled);\n\n\tr = kvm_arch_hardware_enable();";
const ENABLE_SLEEPING: &str =
    "\tcpumask_set_cpu(cpu, cpus_hardware_enabled);\n\tmsleep(1);\n\n\tr = kvm_arch_hardware_enable();";

/// Bytes on which tree-sitter's error recovery never finishes (see
/// `analyzer/tests/bounds_fuzz_regressions.rs`): the file is not parsed.
fn hostile_tail() -> String {
    format!("D|0(|F((()){};\n", "\n".repeat(50))
}

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join("default")
}

fn kvmtk(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).current_dir(dir).output().expect("run kvmtk")
}

fn git_in(dir: &Path, args: &[&str], stdin: Option<&[u8]>) -> String {
    use std::io::Write as _;
    let mut child = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_AUTHOR_DATE", "Mon, 3 Jun 2024 10:00:00 +0000")
        .env("GIT_COMMITTER_DATE", "Mon, 3 Jun 2024 10:00:00 +0000")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run git");
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        input.write_all(bytes).unwrap();
    }
    drop(input);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn git(dir: &Path, args: &[&str]) -> String {
    git_in(dir, args, None)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A repository (`<tmp>/src`) holding `tree` as commit `v6.1`, and two
/// branches on it changing `kvm_main.c`: `clean` adds a sleep in
/// `hardware_enable_nolock()` (HW007), `garbage` the same sleep plus
/// bytes the parser cannot finish. The source allows filtered clones.
struct Repos {
    tmp: tempfile::TempDir,
}

impl Repos {
    fn new(tree: &Path) -> Repos {
        let tmp = tempfile::tempdir().unwrap();
        let src = tmp.path().join("src");
        std::fs::create_dir(&src).unwrap();
        git(&src, &["init", "-q", "-b", "master"]);
        let work_tree = format!("--work-tree={}", tree.display());
        git(&src, &[&work_tree, "add", "-A", "."]);
        git(&src, &[&work_tree, "commit", "-q", "-m", "base"]);
        git(&src, &["tag", "v6.1"]);
        git(&src, &["config", "uploadpack.allowFilter", "true"]);
        let main = std::fs::read_to_string(tree.join(KVM_MAIN)).unwrap();
        assert!(main.contains(ENABLE), "hardware_enable_nolock() changed shape in {}", tree.display());
        let sleeping = main.replacen(ENABLE, ENABLE_SLEEPING, 1);
        let repos = Repos { tmp };
        repos.commit_file("clean", &sleeping, "KVM: Sleep while enabling");
        repos.commit_file("garbage", &(sleeping + &hostile_tail()), "KVM: Sleep while enabling, and garbage");
        repos
    }

    fn src(&self) -> PathBuf {
        self.tmp.path().join("src")
    }

    fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Commit on `branch` (from `v6.1`) the base with `kvm_main.c` replaced.
    fn commit_file(&self, branch: &str, contents: &str, message: &str) {
        let src = self.src();
        let blob = git_in(&src, &["hash-object", "-w", "--stdin"], Some(contents.as_bytes()));
        let index = self.tmp.path().join(format!("index-{branch}"));
        let env_index = |args: &[&str]| {
            let o = Command::new("git")
                .args(args)
                .current_dir(&src)
                .env("GIT_INDEX_FILE", &index)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .output()
                .unwrap();
            assert!(o.status.success(), "git {args:?}: {}", text(&o.stderr));
            text(&o.stdout).trim().to_string()
        };
        env_index(&["read-tree", "v6.1"]);
        env_index(&["update-index", "--cacheinfo", &format!("100644,{blob},{KVM_MAIN}")]);
        let tree = env_index(&["write-tree"]);
        let commit = git_in(&src, &["commit-tree", &tree, "-p", "v6.1"], Some(message.as_bytes()));
        git(&src, &["update-ref", &format!("refs/heads/{branch}"), &commit]);
    }

    /// `git clone ARGS file://<src> <name>`.
    fn clone(&self, name: &str, args: &[&str]) -> PathBuf {
        let url = format!("file://{}", self.src().display());
        let mut all = vec!["clone", "-q"];
        all.extend_from_slice(args);
        all.push(&url);
        all.push(name);
        git(self.tmp.path(), &all);
        self.path(name)
    }

    /// Run kvmtk with a cache of this test's own.
    fn kvmtk(&self, args: &[&str]) -> Output {
        let cache = self.tmp.path().join("cache");
        let mut all: Vec<&str> = args.to_vec();
        all.extend_from_slice(&["--cache-dir", cache.to_str().unwrap()]);
        kvmtk(self.tmp.path(), &all)
    }
}

/// The HW007 the `clean` branch introduces, as the text report lists it.
fn introduces_hw007(stdout: &str) -> bool {
    stdout.lines().any(|l| l.starts_with("  introduces HW007 error") && l.contains("hardware_enable_nolock"))
}

// ---------------------------------------------------------------------------
// Unparseable bytes in the same commit as a real bug

fn unparseable_tail_fails_the_lint(tree: &Path) {
    let repos = Repos::new(tree);
    let src = repos.src();
    let src = src.to_str().unwrap();

    // Control: the bug alone is found and fails `--fail-on error`.
    let o = repos.kvmtk(&["lint", "--repo", src, "v6.1..clean", "--fail-on", "error"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    assert!(introduces_hw007(&out), "{out}");
    assert!(!out.contains("NOT ANALYZED") && !out.contains("lint incomplete"), "{out}");

    // With the garbage: never "fixed", never a pass, in any format.
    let o = repos.kvmtk(&["lint", "--repo", src, "v6.1..garbage", "--fail-on", "error"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    assert!(out.contains(&format!("  NOT ANALYZED {KVM_MAIN}: not analyzed in this commit's tree")), "{out}");
    assert!(!out.lines().any(|l| l.starts_with("  fixes ")), "a finding reported fixed:\n{out}");
    assert!(out.lines().any(|l| l.starts_with("  unknown ")), "{out}");
    assert!(out.contains("lint incomplete: 1 of 1 commits not analyzed completely"), "{out}");
    assert!(text(&o.stderr).contains("kvmtk: error: lint incomplete:"), "{}", text(&o.stderr));

    let o = repos.kvmtk(&["lint", "--repo", src, "v6.1..garbage", "--fail-on", "error", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(doc["complete"], false);
    let step = &doc["steps"][0];
    assert_eq!(step["fixed"].as_array().unwrap().len(), 0, "{step}");
    assert!(!step["unknown"].as_array().unwrap().is_empty(), "{step}");
    assert_eq!(step["unanalyzed"][0]["path"], KVM_MAIN);
    assert_eq!(step["unanalyzed"][0]["side"], "after");

    let o = repos.kvmtk(&["lint", "--repo", src, "v6.1..garbage", "--fail-on", "error", "--format", "sarif"]);
    assert_eq!(o.status.code(), Some(1));
    let doc: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let invocation = &doc["runs"][0]["invocations"][0];
    assert_eq!(invocation["executionSuccessful"], false, "{invocation}");
    let notes = invocation["toolExecutionNotifications"].as_array().unwrap();
    assert!(
        notes
            .iter()
            .any(|n| n["level"] == "error"
                && n["locations"][0]["physicalLocation"]["artifactLocation"]["uri"] == KVM_MAIN),
        "{invocation}"
    );

    let o = repos.kvmtk(&["lint", "--repo", src, "v6.1..garbage", "--fail-on", "error", "--format", "github"]);
    assert_eq!(o.status.code(), Some(1));
    let out = text(&o.stdout);
    assert!(out.starts_with(&format!("::error file={KVM_MAIN},title=kvmtk lint%3A not analyzed::")), "{out}");
}

#[test]
fn fixture_unparseable_tail_fails_the_lint() {
    unparseable_tail_fails_the_lint(&fixture());
}

#[test]
fn linux_6_1_unparseable_tail_fails_the_lint() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    unparseable_tail_fails_the_lint(&tree);
}

// ---------------------------------------------------------------------------
// Missing objects in the repository

/// Remove a loose object from `repo`.
fn delete_object(repo: &Path, id: &str) {
    let path = repo.join(".git/objects").join(&id[..2]).join(&id[2..]);
    std::fs::remove_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

fn missing_objects_fail(tree: &Path) {
    for (what, rev_path, kind) in [("tree", "arch/x86", "tree `arch/x86`"), ("blob", "arch/x86/kvm/x86.c", "blob")] {
        let repos = Repos::new(tree);
        let src = repos.src();
        let s = src.to_str().unwrap();
        // Control: complete, the lint works.
        let o = repos.kvmtk(&["lint", "--repo", s, "v6.1..clean"]);
        assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
        assert!(introduces_hw007(&text(&o.stdout)));

        let id = git(&src, &["rev-parse", &format!("v6.1:{rev_path}")]);
        delete_object(&src, &id);
        let want = if what == "tree" { kind.to_string() } else { format!("blob `{rev_path}` ({id})") };
        for args in [
            vec!["lint", "--repo", s, "v6.1..clean", "--no-cache"],
            vec!["check", "--repo", s, "--rev", "clean", "--no-cache"],
            vec!["check", "--repo", s, "--rev", "v6.1", "--no-cache"],
        ] {
            let o = kvmtk(repos.tmp.path(), &args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?} ({what}): {}\n{err}", text(&o.stdout));
            assert!(o.stdout.is_empty(), "{args:?}: a report was written: {}", text(&o.stdout));
            assert!(err.contains("cannot be analyzed") && err.contains(&want), "{args:?}: {err}");
            assert!(err.contains("git -C") && err.contains("fsck"), "{err}");
        }
        // The cache of the complete run does not hide it either.
        let o = repos.kvmtk(&["lint", "--repo", s, "v6.1..clean"]);
        assert_eq!(o.status.code(), Some(2), "cached: {}", text(&o.stdout));
    }
}

#[test]
fn fixture_missing_objects_fail() {
    missing_objects_fail(&fixture());
}

#[test]
fn linux_6_1_missing_objects_fail() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    missing_objects_fail(&tree);
}

// ---------------------------------------------------------------------------
// Shallow and blobless clones

fn shallow_clone_fails_until_unshallowed(tree: &Path) {
    let repos = Repos::new(tree);
    let sh = repos.clone("shallow", &["--depth", "1", "--branch", "clean"]);
    git(&sh, &["fetch", "-q", "--depth", "1", "origin", "tag", "v6.1"]);
    assert_eq!(git(&sh, &["rev-parse", "--is-shallow-repository"]), "true");
    let s = sh.to_str().unwrap();
    let o = repos.kvmtk(&["lint", "--repo", s, "v6.1..clean"]);
    let err = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{}\n{err}", text(&o.stdout));
    assert!(o.stdout.is_empty(), "{}", text(&o.stdout));
    assert!(err.contains("boundary of the shallow clone"), "{err}");
    assert!(err.contains(&format!("git -C {s} fetch --unshallow")), "{err}");

    // As the message says: then the commit is compared with its parent.
    git(&sh, &["fetch", "-q", "--unshallow"]);
    let o = repos.kvmtk(&["lint", "--repo", s, "v6.1..clean"]);
    let out = text(&o.stdout);
    assert_eq!(o.status.code(), Some(1), "{out}\n{}", text(&o.stderr));
    assert!(introduces_hw007(&out), "{out}");
    let introduced = out.lines().filter(|l| l.starts_with("  introduces ")).count();
    assert_eq!(introduced, 1, "only the new finding is new:\n{out}");
}

#[test]
fn fixture_shallow_clone_fails_until_unshallowed() {
    shallow_clone_fails_until_unshallowed(&fixture());
}

#[test]
fn linux_6_1_shallow_clone_fails_until_unshallowed() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    shallow_clone_fails_until_unshallowed(&tree);
}

fn blobless_clone_fails_until_completed(tree: &Path) {
    let repos = Repos::new(tree);
    // As CI checks out: the head's blobs are fetched, the base's changed one is not.
    let checked_out = repos.clone("blobless", &["--filter=blob:none", "--branch", "clean"]);
    // Bare: no blob at all.
    let bare = repos.clone("blobless.git", &["--bare", "--filter=blob:none", "--branch", "clean"]);
    for repo in [&checked_out, &bare] {
        let r = repo.to_str().unwrap();
        for args in [vec!["lint", "--repo", r, "v6.1..clean"], vec!["check", "--repo", r, "--rev", "v6.1"]] {
            let o = repos.kvmtk(&args);
            let err = text(&o.stderr);
            assert_eq!(o.status.code(), Some(2), "{args:?}: {}\n{err}", text(&o.stdout));
            assert!(o.stdout.is_empty(), "{args:?}: {}", text(&o.stdout));
            assert!(err.contains("is a partial clone (promisor remote `origin`"), "{err}");
            assert!(err.contains("blob `virt/kvm/kvm_main.c`") || err.contains("more"), "{err}");
        }
    }
    // The bare clone lacks the head's blobs too: `check` of it fails as well.
    let o = repos.kvmtk(&["check", "--repo", bare.to_str().unwrap(), "--rev", "clean"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o.stdout));

    // Completed as the message says, the commit's finding is found.
    for repo in [&checked_out, &bare] {
        let r = repo.to_str().unwrap();
        let o = repos.kvmtk(&["lint", "--repo", r, "v6.1..clean"]);
        let err = text(&o.stderr);
        let command = err.rsplit_once("complete this one with `").expect(&err).1.trim_end().trim_end_matches('`');
        let sh = Command::new("sh").arg("-c").arg(command).env("GIT_CONFIG_GLOBAL", "/dev/null").output().unwrap();
        assert!(sh.status.success(), "{command}: {}", text(&sh.stderr));
        let o = repos.kvmtk(&["lint", "--repo", r, "v6.1..clean"]);
        let out = text(&o.stdout);
        assert_eq!(o.status.code(), Some(1), "{r}: {out}\n{}", text(&o.stderr));
        assert!(introduces_hw007(&out), "{out}");
    }
}

#[test]
fn fixture_blobless_clone_fails_until_completed() {
    blobless_clone_fails_until_completed(&fixture());
}

#[test]
fn linux_6_1_blobless_clone_fails_until_completed() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    blobless_clone_fails_until_completed(&tree);
}
