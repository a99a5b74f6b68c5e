//! The `kvmtk` command end to end: exit codes, messages, formats, outputs.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn kvmtk(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).output().expect("run kvmtk")
}

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name).display().to_string()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn explain_lists_and_documents_every_rule() {
    let o = kvmtk(&["explain"]);
    assert_eq!(o.status.code(), Some(0));
    let list = stdout(&o);
    for i in 1..=13 {
        assert!(list.contains(&format!("HW{i:03}")), "HW{i:03} missing from:\n{list}");
    }
    let o = kvmtk(&["explain", "hw005"]);
    assert_eq!(o.status.code(), Some(0));
    let doc = stdout(&o);
    assert!(doc.starts_with("# HW005 current-cpu-cpumask"), "{doc}");
    for section in ["## What it finds", "## Why is this bad?", "## Example", "## Fix"] {
        assert!(doc.contains(section), "HW005 doc lacks {section}:\n{doc}");
    }
    let o = kvmtk(&["explain", "unguarded-list-walk"]);
    assert!(stdout(&o).starts_with("# HW001 unguarded-list-walk"));
}

#[test]
fn bad_arguments_exit_2_with_a_clear_message() {
    let o = kvmtk(&["explain", "HW999"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown rule `HW999`; known rules: HW001"), "{}", stderr(&o));

    let def = fixture("default");
    let o = kvmtk(&["check", &def, "--rule", "HW42"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown rule `HW42`"), "{}", stderr(&o));

    let o = kvmtk(&["check", &def, "--arch", "sparc"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("unknown architecture `sparc`"), "{}", stderr(&o));
    assert!(stderr(&o).contains("x86"), "{}", stderr(&o));

    let o = kvmtk(&["check", &def, "--format", "xml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("invalid value 'xml'"), "{}", stderr(&o));

    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("README"), "not a kernel").unwrap();
    let o = kvmtk(&["check", &tmp.path().display().to_string()]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("is not a kernel source tree: missing virt/kvm/kvm_main.c and include/linux/kvm_host.h"),
        "{}",
        stderr(&o)
    );

    let o = kvmtk(&["check"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("no kernel tree given"), "{}", stderr(&o));
}

#[test]
fn check_on_the_default_fixture_reports_and_fails() {
    let def = fixture("default");
    let o = kvmtk(&["check", &def]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains(": warning: ") && text.contains("[HW001 unguarded-list-walk]"), "{text}");
    assert!(text.contains(": note: "), "{text}");

    // Nothing at or above error: exit 0 with --fail-on error, unless an error-level rule fired.
    let o = kvmtk(&["check", &def, "--rule", "HW005", "--fail-on", "error"]);
    assert_eq!(o.status.code(), Some(0), "{}", stdout(&o));

    let o = kvmtk(&["check", &def, "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["version"], 1);
    assert!(v["findings"].as_array().is_some_and(|f| !f.is_empty()));

    let o = kvmtk(&["check", &def, "--format", "sarif"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("sarif");
    assert_eq!(v["version"], "2.1.0");

    let o = kvmtk(&["check", &def, "--format", "github"]);
    assert!(stdout(&o).lines().any(|l| l.starts_with("::warning file=")), "{}", stdout(&o));

    let o = kvmtk(&[
        "check",
        &def,
        "--ignore",
        "HW001,HW002,HW003,HW004,HW005,HW006,HW007,HW008,HW009,HW010,HW011,HW012,HW013",
    ]);
    assert_eq!(o.status.code(), Some(0));
}

#[test]
fn outputs_are_written_to_the_named_file() {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("report.json");
    let o = kvmtk(&["check", &fixture("default"), "--format", "json", "-o", &out.display().to_string()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(o.stdout.is_empty());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["tool"], "kvmtk");
    // No temporary file is left beside it.
    let names: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let o = kvmtk(&["check", &fixture("default"), "-o", "/nonexistent-dir/x.txt"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("/nonexistent-dir"), "{}", stderr(&o));

    // `-o LINK` writes the link's target and keeps the link; a FIFO (as
    // `-o /dev/null`, a device) is written in place, not renamed over.
    let link = tmp.path().join("latest.json");
    std::os::unix::fs::symlink("report.json", &link).unwrap();
    std::fs::write(&out, "old").unwrap();
    let o = kvmtk(&["check", &fixture("default"), "--format", "json", "-o", &link.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["tool"], "kvmtk");
    let fifo = tmp.path().join("pipe");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let reader = {
        let fifo = fifo.clone();
        std::thread::spawn(move || std::fs::read(fifo).unwrap())
    };
    let o = kvmtk(&["check", &fixture("default"), "--format", "json", "-o", &fifo.display().to_string()]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Checked before joining: a replaced FIFO would leave the reader waiting.
    use std::os::unix::fs::FileTypeExt as _;
    assert!(std::fs::symlink_metadata(&fifo).unwrap().file_type().is_fifo(), "the FIFO was replaced");
    let v: serde_json::Value = serde_json::from_slice(&reader.join().unwrap()).unwrap();
    assert_eq!(v["tool"], "kvmtk");
}

#[test]
fn graph_formats() {
    let def = fixture("default");
    let o = kvmtk(&["graph", &def, "--arch", "x86"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("enable hooks: kvm_arch_hardware_enable"), "{text}");
    assert!(text.contains("cpuhp_starting"), "{text}");

    let o = kvmtk(&["graph", &def, "--arch", "x86", "--format", "json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json");
    assert_eq!(v["arches"][0]["arch"], "x86");
    assert!(v["locking_doc"]["locks"].as_array().is_some_and(|l| !l.is_empty()), "locking.rst is exposed");

    let o = kvmtk(&["graph", &def, "--arch", "x86", "--format", "dot"]);
    let dot = stdout(&o);
    assert!(dot.starts_with("digraph kvmtk {") && dot.contains("fillcolor"), "{dot}");

    let o = kvmtk(&["graph", &def, "--arch", "x86", "--format", "svg"]);
    if Path::new("/usr/bin/dot").exists() {
        assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
        assert!(stdout(&o).contains("<svg"));
    } else {
        assert_eq!(o.status.code(), Some(2));
        assert!(stderr(&o).contains("needs Graphviz's `dot` program"), "{}", stderr(&o));
    }
}

/// `check` keeps facts and per-arch results in the cache directory (given,
/// or `$KVMTK_CACHE_DIR`), prints the same report from it, and writes
/// nothing with `--no-cache`.
#[test]
fn check_reuses_its_cache_and_reports_the_same() {
    let d = tempfile::tempdir().unwrap();
    let cache = d.path().join("cache");
    let run = |extra: &[&str], env_dir: Option<&Path>| {
        let mut c = Command::new(env!("CARGO_BIN_EXE_kvmtk"));
        c.args(["check", &fixture("default")]).args(extra).env("KVMTK_TIMINGS", "1");
        match env_dir {
            Some(p) => c.env("KVMTK_CACHE_DIR", p),
            None => c.env_remove("KVMTK_CACHE_DIR"),
        };
        c.output().expect("run kvmtk")
    };
    let without_timings =
        |o: &Output| stderr(o).lines().filter(|l| !l.contains("timings:")).collect::<Vec<_>>().join("\n");

    let plain = run(&["--no-cache"], Some(&cache));
    assert_eq!(plain.status.code(), Some(1), "{}", stderr(&plain));
    assert!(!cache.exists(), "--no-cache wrote {}", cache.display());

    let first = run(&[], Some(&cache));
    let second = run(&[], Some(&cache));
    for o in [&first, &second] {
        assert_eq!(o.status.code(), Some(1));
        assert_eq!(stdout(o), stdout(&plain));
        assert_eq!(without_timings(o), without_timings(&plain));
    }
    assert!(stderr(&first).contains("parsed_tree: true"), "{}", stderr(&first));
    assert!(
        stderr(&second).contains("analyzed: 0") && stderr(&second).contains("parsed_tree: false"),
        "{}",
        stderr(&second)
    );
    let names: Vec<String> =
        std::fs::read_dir(&cache).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    assert!(names.iter().any(|n| n.contains("-facts")) && names.iter().any(|n| n.contains("-analysis-")), "{names:?}");

    // --cache-dir wins over the environment.
    let other = d.path().join("other");
    let o = run(&["--cache-dir", other.to_str().unwrap()], Some(&cache));
    assert_eq!(stdout(&o), stdout(&plain));
    assert!(other.is_dir());

    // A cache directory that is a file: an error before any work.
    let file = d.path().join("file");
    std::fs::write(&file, "x").unwrap();
    let o = run(&["--cache-dir", file.to_str().unwrap()], None);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("cannot use cache directory") && stderr(&o).contains("not a directory"),
        "{}",
        stderr(&o)
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "x");
}
