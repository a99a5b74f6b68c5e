//! `kvmtk lint` end to end: a range and a patch introducing HW001 fail with
//! exit 1 in every format; a baseline accepts them; bad input exits 2 with
//! one clear message and writes nothing.

use std::path::Path;
use std::process::{Command, Output};

fn kvmtk(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).current_dir(dir).output().expect("run kvmtk")
}

#[path = "../test-support/hw001_repo.rs"]
mod hw001_repo;
use hw001_repo::{fixture, git};

fn setup() -> tempfile::TempDir {
    hw001_repo::setup().0
}

fn out(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn err(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn range_and_patches_fail_on_a_new_finding_in_every_format() {
    let dir = setup();
    let d = dir.path();
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    insta::with_settings!({snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/snapshots"), prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("lint_fixture_range_text", out(&o));
    });
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--format", "json"]);
    assert_eq!(o.status.code(), Some(1));
    let v: serde_json::Value = serde_json::from_str(&out(&o)).unwrap();
    assert_eq!(v["mode"], "range");
    assert_eq!(v["steps"][0]["introduced"][0]["rule"], "HW001");
    assert_eq!(v["report"]["findings"][0]["function"], "foo_clock_cpu_online");
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--format", "sarif", "-o", "lint.sarif"]);
    assert_eq!(o.status.code(), Some(1));
    let sarif: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(d.join("lint.sarif")).unwrap()).unwrap();
    assert_eq!(sarif["runs"][0]["results"][0]["ruleId"], "HW001");
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--format", "github"]);
    assert!(out(&o).starts_with("::warning file=arch/x86/kvm/x86.c,line=73,"), "{}", out(&o));
    // Error-only failing: exit 0.
    assert_eq!(kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--fail-on", "error"]).status.code(), Some(0));
    // The same commit as a patch, on the directory and on the revision.
    let patch = "0001-x86-Resync-the-clock-of-every-guest-on-CPU-online.patch";
    let quiet = fixture("rules/hw001-unguarded-list-walk/quiet");
    let o = kvmtk(d, &["lint", "--tree", quiet.to_str().unwrap(), patch]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(out(&o).contains(&format!("[1/1] {patch} x86: Resync the clock")), "{}", out(&o));
    let o = kvmtk(d, &["lint", "--repo", "repo", "--base", "base", patch, "--cache-dir", "cache"]);
    assert_eq!(o.status.code(), Some(1), "{}", err(&o));
    assert!(d.join("cache").is_dir());
    // A revert only fixes: exit 0.
    let repo = d.join("repo");
    let before = git(&repo, &["rev-parse", "HEAD"]);
    git(&repo, &["revert", "--no-edit", "HEAD"]);
    let o = kvmtk(d, &["lint", "--repo", "repo", &format!("{}..topic", before.trim())]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("  fixes HW001 warning x86 foo_clock_cpu_online"), "{}", out(&o));
}

#[test]
fn baseline_accepts_known_findings() {
    let dir = setup();
    let d = dir.path();
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--baseline", "b.json", "--write-baseline"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    let b: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(d.join("b.json")).unwrap()).unwrap();
    assert_eq!(b["version"], 1);
    assert_eq!(b["findings"][0]["rule"], "HW001");
    assert_eq!(b["findings"][0]["function"], "foo_clock_cpu_online");
    assert_eq!(b["findings"][0]["file"], "arch/x86/kvm/x86.c");
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--baseline", "b.json"]);
    assert_eq!(o.status.code(), Some(0), "{}", err(&o));
    assert!(out(&o).contains("introduces (accepted by the baseline) HW001"), "{}", out(&o));
    std::fs::write(d.join("bad.json"), "{\"findings\": 3}").unwrap();
    let o = kvmtk(d, &["lint", "--repo", "repo", "base..topic", "--baseline", "bad.json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(err(&o).contains("baseline `bad.json` is not a kvmtk baseline"), "{}", err(&o));
}

#[test]
fn bad_input_exits_2_with_one_message_and_writes_nothing() {
    let dir = setup();
    let d = dir.path();
    std::fs::write(d.join("notes.txt"), "not a patch\n").unwrap();
    let patch = "0001-x86-Resync-the-clock-of-every-guest-on-CPU-online.patch";
    let text = std::fs::read_to_string(d.join(patch)).unwrap();
    std::fs::write(d.join("corrupt.mbox"), text.replacen("\n+", "\n*", 2)).unwrap();
    let default = fixture("default");
    let cases: [(&[&str], &str); 6] = [
        (&["lint", "--repo", "repo", "base..nope"], "range `base..nope` does not resolve"),
        (&["lint", "--repo", "repo", "base"], "`base` is not a commit range; expected BASE..HEAD"),
        (&["lint", "--repo", "repo", "--base", "base", "notes.txt"], "`notes.txt` is not a patch"),
        (&["lint", "--repo", "repo", "--base", "base", "corrupt.mbox"], "`corrupt.mbox` is not a valid patch"),
        (&["lint", "--tree", default.to_str().unwrap(), patch], "does not apply to"),
        (&["lint", "--repo", "repo", "--base", "nope", patch], "unknown revision `nope`"),
    ];
    for (args, expected) in cases {
        let mut args = args.to_vec();
        args.extend(["-o", "report.txt", "--baseline", "b.json", "--write-baseline"]);
        let o = kvmtk(d, &args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", err(&o));
        let e = err(&o);
        assert!(e.contains(expected), "{args:?}: {e}");
        assert_eq!(e.lines().count(), e.lines().filter(|l| !l.starts_with("kvmtk: error")).count() + 1, "{e}");
        assert!(!d.join("report.txt").exists() && !d.join("b.json").exists(), "{args:?} wrote output");
    }
}
