//! `scripts/ci-lint.sh`, the steps docs/ci-lint.yml (GitHub Actions) and
//! docs/ci-lint.gitlab-ci.yml (GitLab CI) run, end to end on a local
//! "origin" repository and a depth-1 clone of a pull request's branch, as a
//! CI checkout makes: the script fetches the base and deepens the clone to
//! the merge base (not to the whole history), lints the branch's commits,
//! fails with 1 on the commit adding a finding, passes on a clean range,
//! writes SARIF that passes the SARIF 2.1.0 schema and a GitLab Code
//! Quality report, and fails with 2, saying why, on a base it cannot fetch.

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../test-support/sarif_schema.rs"]
mod sarif_schema;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn git_env(cmd: &mut Command) -> &mut Command {
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_AUTHOR_DATE", "Mon, 3 Jun 2024 10:00:00 +0000")
        .env("GIT_COMMITTER_DATE", "Mon, 3 Jun 2024 10:00:00 +0000")
}

fn git(dir: &Path, args: &[&str]) -> String {
    let o = git_env(&mut Command::new("git")).args(args).current_dir(dir).output().expect("run git");
    assert!(o.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).trim().to_string()
}

fn commit(repo: &Path, message: &str) -> String {
    git(repo, &["add", "-A"]);
    git(repo, &["commit", "-q", "-m", message]);
    git(repo, &["rev-parse", "HEAD"])
}

/// The origin: `main` is three commits of history, the HW001 quiet tree
/// and three later commits;
/// `topic` forks from the quiet tree, adds the commit introducing HW001
/// (the fire tree), then a clean commit. Returns (base = main's tip, the
/// finding's commit, head = topic's tip).
struct Origin {
    dir: tempfile::TempDir,
    base: String,
    finding: String,
    head: String,
}

fn origin() -> Origin {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("origin");
    let rules = root().join("kvm-fixtures/rules/hw001-unguarded-list-walk");
    std::fs::create_dir_all(&repo).unwrap();
    git(&repo, &["init", "-q", "-b", "main"]);
    for i in 1..=3 {
        std::fs::write(repo.join("HISTORY"), format!("before {i}\n")).unwrap();
        commit(&repo, &format!("history {i}"));
    }
    copy_tree(&rules.join("quiet"), &repo);
    commit(&repo, "base: the quiet tree");
    git(&repo, &["branch", "topic"]);
    for i in 1..=3 {
        std::fs::write(repo.join("NOTES"), format!("main {i}\n")).unwrap();
        commit(&repo, &format!("main {i}"));
    }
    let base = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["checkout", "-q", "topic"]);
    std::fs::remove_dir_all(repo.join("arch")).unwrap();
    std::fs::remove_dir_all(repo.join("virt")).unwrap();
    copy_tree(&rules.join("fire"), &repo);
    let finding = commit(&repo, "x86: Resync the clock of every guest on CPU online");
    std::fs::write(repo.join("README.topic"), "clean\n").unwrap();
    let head = commit(&repo, "Document the topic");
    git(&repo, &["checkout", "-q", "main"]);
    Origin { dir, base, finding, head }
}

/// A depth-1 clone of `topic`, as `actions/checkout` and GitLab's
/// `GIT_DEPTH: 1` make.
fn shallow_clone(o: &Origin, name: &str) -> PathBuf {
    let url = format!("file://{}", o.dir.path().join("origin").display());
    let to = o.dir.path().join(name);
    git(o.dir.path(), &["clone", "-q", "--depth", "1", "--branch", "topic", &url, to.to_str().unwrap()]);
    assert_eq!(git(&to, &["rev-parse", "--is-shallow-repository"]), "true");
    to
}

fn run_script(clone: &Path, base: &str, head: &str, env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new("bash");
    git_env(&mut cmd)
        .arg(root().join("scripts/ci-lint.sh"))
        .args([base, head])
        .current_dir(clone)
        .env("KVMTK", env!("CARGO_BIN_EXE_kvmtk"))
        .env("KVMTK_DEEPEN", "1")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITLAB_CI")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env_remove("KVMTK_BASELINE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run scripts/ci-lint.sh")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[test]
fn github_steps_fail_on_a_new_finding_with_valid_sarif() {
    let o = origin();
    let clone = shallow_clone(&o, "gh");
    let out = o.dir.path().join("gh-out");
    let summary = o.dir.path().join("summary.md");
    let cache = o.dir.path().join("cache");
    let r = run_script(
        &clone,
        &o.base,
        &o.head,
        &[
            ("KVMTK_CI", "github"),
            ("KVMTK_OUT", out.to_str().unwrap()),
            ("KVMTK_CACHE_DIR", cache.to_str().unwrap()),
            ("GITHUB_STEP_SUMMARY", summary.to_str().unwrap()),
        ],
    );
    let (stdout, stderr) = (text(&r.stdout), text(&r.stderr));
    assert_eq!(r.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    // The annotation of the new finding, on the line the tip has it.
    let first = stdout.lines().next().unwrap_or("");
    assert!(
        first.starts_with("::warning file=arch/x86/kvm/x86.c,line=73,col=2,title=HW001 unguarded-list-walk::"),
        "{stdout}"
    );
    assert!(stderr.contains("ci-lint: linting 2 commit(s)"), "{stderr}");
    // Deepened to the merge base, not to the whole history.
    assert_eq!(git(&clone, &["rev-parse", "--is-shallow-repository"]), "true");
    assert!(git(&clone, &["log", "--oneline", "--all"]).lines().all(|l| !l.contains("history 1")));
    assert!(git(&clone, &["cat-file", "-t", &o.base]) == "commit");
    // SARIF: the new finding, valid against the schema.
    let sarif = std::fs::read_to_string(out.join("kvmtk.sarif")).expect("kvmtk.sarif written");
    sarif_schema::validate(&sarif).unwrap_or_else(|e| panic!("{e}\n{sarif}"));
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    let results = log["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 1);
    assert_eq!(results[0]["ruleId"], "HW001");
    assert_eq!(results[0]["locations"][0]["physicalLocation"]["artifactLocation"]["uri"], "arch/x86/kvm/x86.c");
    // The job summary: the per-commit text report.
    let summary = std::fs::read_to_string(&summary).expect("job summary written");
    assert!(summary.starts_with("### kvmtk lint\n"), "{summary}");
    assert!(summary.contains(&format!("{} x86: Resync the clock", &o.finding[..12])), "{summary}");
    assert!(summary.contains("  introduces HW001 warning x86 foo_clock_cpu_online"), "{summary}");
    // The cache was filled (the YAML saves it also on failure).
    assert!(std::fs::read_dir(&cache).unwrap().next().is_some(), "cache directory filled");
}

#[test]
fn gitlab_steps_write_code_quality() {
    let o = origin();
    let clone = shallow_clone(&o, "gl");
    let out = o.dir.path().join("gl-out");
    let cache = o.dir.path().join("cache");
    let r = run_script(
        &clone,
        &o.base,
        &o.head,
        &[("GITLAB_CI", "true"), ("KVMTK_OUT", out.to_str().unwrap()), ("KVMTK_CACHE_DIR", cache.to_str().unwrap())],
    );
    let (stdout, stderr) = (text(&r.stdout), text(&r.stderr));
    assert_eq!(r.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(stdout.contains("  introduces HW001 warning x86 foo_clock_cpu_online"), "{stdout}");
    assert!(!stdout.contains('\x1b'), "no colour in a CI log");
    let report = std::fs::read_to_string(out.join("gl-code-quality-report.json")).expect("code quality written");
    let issues: serde_json::Value = serde_json::from_str(&report).unwrap();
    let issues = issues.as_array().unwrap();
    assert_eq!(issues.len(), 1, "{report}");
    assert_eq!(issues[0]["check_name"], "kvmtk/HW001");
    assert_eq!(issues[0]["location"]["path"], "arch/x86/kvm/x86.c");
    assert_eq!(issues[0]["location"]["lines"]["begin"], 73);
    let sarif = std::fs::read_to_string(out.join("kvmtk.sarif")).unwrap();
    sarif_schema::validate(&sarif).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn a_clean_range_passes() {
    let o = origin();
    let clone = shallow_clone(&o, "clean");
    let out = o.dir.path().join("clean-out");
    // From the finding's commit: only the clean commit is linted.
    let r = run_script(
        &clone,
        &o.finding,
        &o.head,
        &[("KVMTK_CI", "github"), ("KVMTK_OUT", out.to_str().unwrap()), ("KVMTK_CACHE_DIR", "../cache")],
    );
    let (stdout, stderr) = (text(&r.stdout), text(&r.stderr));
    assert_eq!(r.status.code(), Some(0), "stdout:\n{stdout}\nstderr:\n{stderr}");
    assert!(!stdout.contains("HW001"), "{stdout}");
    let sarif = std::fs::read_to_string(out.join("kvmtk.sarif")).unwrap();
    sarif_schema::validate(&sarif).unwrap_or_else(|e| panic!("{e}"));
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(log["runs"][0]["results"], serde_json::json!([]));
}

#[test]
fn a_base_that_cannot_be_fetched_fails_with_2() {
    let o = origin();
    let clone = shallow_clone(&o, "missing");
    let missing = "0123456789abcdef0123456789abcdef01234567";
    let r = run_script(&clone, missing, &o.head, &[("KVMTK_CI", "plain"), ("KVMTK_OUT", "out")]);
    let stderr = text(&r.stderr);
    assert_eq!(r.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("ci-lint: error: {missing} is not in this clone and cannot be fetched")),
        "{stderr}"
    );
    assert!(!clone.join("out/kvmtk.sarif").exists());
}

/// Both CI files run this script, from kvmtk's sources at the pinned
/// revision, on a clone that is not fetched whole, and keep the cache also
/// when the lint fails.
#[test]
fn the_ci_files_run_the_script() {
    let gh = std::fs::read_to_string(root().join("docs/ci-lint.yml")).unwrap();
    let gl = std::fs::read_to_string(root().join("docs/ci-lint.gitlab-ci.yml")).unwrap();
    for (name, f) in [("docs/ci-lint.yml", &gh), ("docs/ci-lint.gitlab-ci.yml", &gl)] {
        assert!(f.contains("/kvmtk/scripts/ci-lint.sh"), "{name} runs the script");
        assert!(f.contains("cargo install --locked --path"), "{name} installs the fetched revision");
        assert!(f.contains("KVMTK_REV"), "{name} pins kvmtk");
        assert!(!f.contains("fetch-depth: 0") && !f.contains("GIT_DEPTH: \"0\""), "{name} fetches no whole history");
    }
    assert!(gh.contains("uses: actions/cache/restore@") && gh.contains("uses: actions/cache/save@"));
    assert!(gh.contains("if: always() && steps.kvmtk-cache.outputs.cache-hit != 'true'"));
    assert!(gh.contains("from a fork"), "the fork limitation is explained");
    assert!(gl.contains("when: always") && gl.contains("codequality: kvmtk-out/gl-code-quality-report.json"));
}
