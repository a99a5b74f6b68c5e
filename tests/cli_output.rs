//! What `kvmtk check` and `kvmtk lint` print, for CI logs and terminals:
//! findings before input warnings in every form, the warnings once and on
//! standard error only (a count, or the list with `--verbose`), `--quiet`,
//! the per-rule line, paths from the current directory, colour, GitLab Code
//! Quality, `--jobs`. On the real 6.1 tree: its GitHub annotations show the
//! findings within the 10 warnings GitHub displays.

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache_support;

fn kvmtk_in(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kvmtk"));
    cmd.args(args).current_dir(dir).env_remove("NO_COLOR");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("run kvmtk")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

const FIRE: &str = "kvm-fixtures/rules/hw001-unguarded-list-walk/fire";

/// A copy of the HW001 fire fixture with one file that does not parse, so
/// that the report has findings and an input warning.
fn tree_with_warning() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&root().join(FIRE), &dir.path().join("tree"));
    std::fs::write(dir.path().join("tree/arch/x86/kvm/broken.c"), "int f(void) { return ) ; }\n").unwrap();
    dir
}

#[test]
fn text_findings_on_stdout_warnings_once_on_stderr() {
    let dir = tree_with_warning();
    let o = kvmtk_in(dir.path(), &["check", "tree", "--no-cache"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let (stdout, stderr) = (out(&o), err(&o));
    assert!(!stdout.contains("broken.c"), "no input warning on stdout:\n{stdout}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert!(lines[0].starts_with("tree/arch/x86/kvm/x86.c:"), "{}", lines[0]);
    assert!(lines[0].ends_with("[HW001 unguarded-list-walk]"));
    assert_eq!(lines[lines.len() - 2], "by rule: HW001 unguarded-list-walk 1");
    assert!(lines[lines.len() - 1].ends_with("; 1 input warning"), "{}", lines[lines.len() - 1]);
    // By default, one line with the count.
    let warning_lines: Vec<&str> = stderr.lines().filter(|l| l.contains("warning")).collect();
    assert_eq!(
        warning_lines,
        ["kvmtk: warning: 1 input warning in 1 file (what they name was skipped, the rest analyzed); --verbose lists them"],
        "{stderr}"
    );
    // With --verbose, each warning once, on stderr, with the path from here.
    let o = kvmtk_in(dir.path(), &["check", "tree", "--no-cache", "--verbose"], &[]);
    let stderr = err(&o);
    assert_eq!(stderr.matches("broken.c").count(), 1, "{stderr}");
    assert!(stderr.lines().any(|l| l.starts_with("tree/arch/x86/kvm/broken.c:1: warning: ")), "{stderr}");
    assert!(!out(&o).contains("broken.c"));
}

#[test]
fn quiet_is_one_line_per_finding() {
    let dir = tree_with_warning();
    let o = kvmtk_in(dir.path(), &["check", "tree", "--no-cache", "-q"], &[]);
    assert_eq!(o.status.code(), Some(1));
    let stdout = out(&o);
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(
        stdout.starts_with("tree/arch/x86/kvm/x86.c:") && stdout.trim_end().ends_with("[HW001 unguarded-list-walk]")
    );
    assert_eq!(err(&o), "", "quiet: nothing on stderr");
}

#[test]
fn paths_from_the_current_directory() {
    // From the tree's parent, as given; from inside it, bare; absolute tree
    // outside the current directory: absolute.
    let fixture_dir = root().join("kvm-fixtures/rules/hw001-unguarded-list-walk");
    let o = kvmtk_in(&fixture_dir, &["check", "./fire", "--no-cache", "-q"], &[]);
    assert!(out(&o).starts_with("fire/arch/x86/kvm/x86.c:"), "{}", out(&o));
    let o = kvmtk_in(&fixture_dir.join("fire/arch"), &["check", "..", "--no-cache", "-q"], &[]);
    assert!(out(&o).starts_with("../arch/x86/kvm/x86.c:"), "{}", out(&o));
    let o = kvmtk_in(&fixture_dir.join("fire"), &["check", ".", "--no-cache", "-q"], &[]);
    assert!(out(&o).starts_with("arch/x86/kvm/x86.c:"), "{}", out(&o));
    let tmp = tempfile::tempdir().unwrap();
    let abs = fixture_dir.join("fire");
    let o = kvmtk_in(tmp.path(), &["check", abs.to_str().unwrap(), "--no-cache", "-q"], &[]);
    assert!(out(&o).starts_with(&format!("{}/arch/x86/kvm/x86.c:", abs.display())), "{}", out(&o));
    // The file each line names opens from there.
    let line = out(&o);
    let path = line.split(':').next().unwrap();
    assert!(Path::new(path).is_file(), "{path}");
    // GitHub and GitLab paths too; JSON and SARIF stay tree-relative.
    let o = kvmtk_in(&fixture_dir, &["check", "fire", "--no-cache", "--format", "github"], &[]);
    assert!(out(&o).starts_with("::warning file=fire/arch/x86/kvm/x86.c,"), "{}", out(&o));
    let o = kvmtk_in(&fixture_dir, &["check", "fire", "--no-cache", "--format", "json"], &[]);
    let json: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(json["findings"][0]["file"], "arch/x86/kvm/x86.c");
}

#[test]
fn colour_on_request_and_never_when_piped() {
    let o = kvmtk_in(&root(), &["check", FIRE, "--no-cache"], &[]);
    assert!(!out(&o).contains('\x1b'), "piped: no colour");
    let o = kvmtk_in(&root(), &["check", FIRE, "--no-cache", "--color=always"], &[("NO_COLOR", "1")]);
    let stdout = out(&o);
    assert!(stdout.contains("\x1b[1m\x1b[35mwarning:\x1b[0m"), "{stdout:?}");
    assert!(stdout.contains("\x1b[1m"), "bold location: {stdout:?}");
    let o = kvmtk_in(&root(), &["check", FIRE, "--no-cache", "--color=never"], &[]);
    assert!(!out(&o).contains('\x1b'));
    // JSON never.
    let o = kvmtk_in(&root(), &["check", FIRE, "--no-cache", "--color=always", "--format", "json"], &[]);
    assert!(!out(&o).contains('\x1b'));
}

#[test]
fn gitlab_code_quality() {
    let dir = tree_with_warning();
    let o = kvmtk_in(dir.path(), &["check", "tree", "--no-cache", "--format", "gitlab"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let issues: serde_json::Value = serde_json::from_str(&out(&o)).expect("a JSON array");
    let issues = issues.as_array().unwrap();
    assert_eq!(issues.len(), 2, "{issues:?}");
    let f = &issues[0];
    assert_eq!(f["check_name"], "kvmtk/HW001");
    assert_eq!(f["severity"], "major");
    assert_eq!(f["location"]["path"], "tree/arch/x86/kvm/x86.c");
    assert!(f["location"]["lines"]["begin"].as_u64().unwrap() > 0);
    assert_eq!(f["fingerprint"].as_str().unwrap().len(), 16);
    assert!(f["description"].as_str().unwrap().contains("chain: [cpuhp_online]"));
    // The input warning comes last, as one `info` issue.
    let w = &issues[1];
    assert_eq!(w["check_name"], "kvmtk/input");
    assert_eq!(w["severity"], "info");
    assert_eq!(w["location"]["path"], "tree/arch/x86/kvm/broken.c");
    assert_ne!(w["fingerprint"], f["fingerprint"]);
    for i in issues {
        let keys: BTreeSet<&str> = i.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(keys, BTreeSet::from(["check_name", "description", "fingerprint", "location", "severity"]));
    }
}

#[test]
fn jobs_do_not_change_the_report() {
    let one = kvmtk_in(&root(), &["check", FIRE, "--no-cache", "--jobs", "1", "--format", "json"], &[]);
    let two = kvmtk_in(&root(), &["check", FIRE, "--no-cache", "-j", "2", "--format", "json"], &[]);
    assert_eq!(one.status.code(), Some(1), "{}", err(&one));
    assert_eq!(out(&one), out(&two));
    let zero = kvmtk_in(&root(), &["check", FIRE, "--no-cache", "--jobs", "0"], &[]);
    assert_eq!(zero.status.code(), Some(2), "--jobs 0 is a usage error");
}

/// The acceptance test of the GitHub form: on 6.1, the findings come
/// first, so the 10 warnings GitHub shows are findings; the 15 parse
/// warnings are one notice, listing each once.
#[test]
fn github_on_6_1_shows_findings_first() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    let o = kvmtk_in(&root(), &["check", tree.to_str().unwrap(), "--no-cache", "--format", "github"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let stdout = out(&o);
    let warnings: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::warning ")).collect();
    assert!(warnings.len() >= 10, "{stdout}");
    for w in &warnings[..10] {
        assert!(w.contains(",title=HW0"), "a finding among the first 10 warnings: {w}");
    }
    let errors: Vec<&str> = stdout.lines().filter(|l| l.starts_with("::error ")).collect();
    assert!(!errors.is_empty() && errors.iter().all(|e| e.contains(",title=HW0")));
    let input: Vec<&str> = stdout.lines().filter(|l| l.contains("title=kvmtk input::")).collect();
    assert_eq!(input.len(), 1, "one annotation for the input warnings");
    assert!(input[0].starts_with("::notice "), "{}", input[0]);
    // Every finding precedes it.
    let at = stdout.find("title=kvmtk input::").unwrap();
    assert!(!stdout[at..].contains(",title=HW0"));
    // It lists each parse warning once (as the text's --verbose does).
    let verbose = kvmtk_in(&root(), &["check", tree.to_str().unwrap(), "--no-cache", "--verbose"], &[]);
    let listed: Vec<String> = err(&verbose).lines().filter(|l| l.contains(": warning: ")).map(String::from).collect();
    assert!(listed.len() >= 10, "{}", err(&verbose));
    for l in &listed {
        let (at, _) = l.split_once(": warning: ").unwrap();
        let rel = at.strip_prefix(&format!("{}/", tree.display())).unwrap_or(at);
        assert_eq!(input[0].matches(&format!("{rel}: warning: ")).count(), 1, "{rel} in {}", input[0]);
    }
}

/// The acceptance test of the text form: on 6.1 each parse warning is
/// printed once (with --verbose; without, one line with the count), and
/// only on standard error.
#[test]
fn text_on_6_1_prints_each_parse_warning_once() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    let t = tree.to_str().unwrap();
    let o = kvmtk_in(&root(), &["check", t, "--no-cache", "--verbose"], &[]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    let (stdout, stderr) = (out(&o), err(&o));
    let verbose_stderr = stderr.clone();
    let warnings: Vec<&str> = stderr.lines().filter(|l| l.contains(": warning: ")).collect();
    assert!(warnings.len() >= 10, "{stderr}");
    let both = format!("{stdout}{stderr}");
    for w in &warnings {
        let (at, _) = w.split_once(": warning: ").unwrap();
        assert_eq!(both.matches(&format!("{at}: ")).count(), 1, "{at} printed once");
    }
    let summary = stdout.lines().last().unwrap();
    assert!(summary.ends_with(&format!("; {} input warnings", warnings.len())), "{summary}");
    let o = kvmtk_in(&root(), &["check", t, "--no-cache"], &[]);
    let stderr = err(&o);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with(&format!("kvmtk: warning: {} input warnings in ", warnings.len())), "{stderr}");
    // Short mode: one line per finding.
    let o = kvmtk_in(&root(), &["check", t, "--no-cache", "--quiet", "--format", "text"], &[]);
    let n = out(&o).lines().count();
    let json = kvmtk_in(&root(), &["check", t, "--no-cache", "--format", "json"], &[]);
    let v: serde_json::Value = serde_json::from_str(&out(&json)).unwrap();
    assert_eq!(n, v["findings"].as_array().unwrap().len());
    // What the lock-order graph could not model: per arch, in JSON and
    // (with --verbose) on standard error, never counted as input warnings.
    let stats = v["statistics"].as_array().unwrap();
    let arches: Vec<&str> = v["arches"].as_array().unwrap().iter().map(|a| a.as_str().unwrap()).collect();
    assert_eq!(stats.iter().map(|s| s["arch"].as_str().unwrap()).collect::<Vec<_>>(), arches);
    for s in stats {
        let l = &s["lock_order"];
        assert!(l["edges"].as_u64().unwrap() > 0 && l["classes"].as_u64() >= l["unknown_classes"].as_u64(), "{s}");
        assert_eq!(l["cycle_search_cut"], false, "{s}");
    }
    // Each arch with an unknown class or an unresolved wait says so once.
    for s in stats {
        let l = &s["lock_order"];
        let unresolved: u64 =
            ["unknown_classes", "unresolved_completion_waits", "unresolved_work_waits", "unresolved_thread_waits"]
                .iter()
                .map(|k| l[*k].as_u64().unwrap())
                .sum();
        let prefix = format!("kvmtk: lock order, {}: ", s["arch"].as_str().unwrap());
        let lines = verbose_stderr.lines().filter(|l| l.starts_with(&prefix)).count();
        assert_eq!(lines, usize::from(unresolved > 0), "{s}\n{verbose_stderr}");
    }
    // 6.1's x86: the NX recovery thread is handed back through an
    // out-parameter, so its kthread_stop() has no known thread function.
    let x86 = stats.iter().find(|s| s["arch"] == "x86").unwrap();
    assert_eq!(x86["lock_order"]["unresolved_thread_waits"], 1, "{x86}");
}
