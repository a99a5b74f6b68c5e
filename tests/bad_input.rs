//! The bad-input table: every hostile or broken input, end to end through
//! the `kvmtk` binary, with the exact user-facing message and exit code,
//! and nothing written.
//!
//! | input                                   | command          | exit | outcome                                  |
//! |-----------------------------------------|------------------|------|------------------------------------------|
//! | path that does not exist                | check            | 2    | error, "does not exist"                  |
//! | a regular file as the tree              | check            | 2    | error, "is not a directory"              |
//! | directory that is not a kernel tree     | check            | 2    | error, "missing ... and ..."             |
//! | empty directory                         | check            | 2    | error, "is an empty directory"           |
//! | --repo that is not a repository         | check            | 2    | error, "is not a git repository"         |
//! | revision that does not exist            | check            | 2    | error, "unknown revision"                |
//! | bare repository                         | check            | 1    | analyzed: same findings as the directory |
//! | non-UTF-8 C file in the tree            | check            | 1    | analyzed, warning naming file and line   |
//! | binary file named .c in the tree        | check            | 1    | analyzed, warning naming the file        |
//! | CRLF line endings                       | check            | 1    | analyzed, same findings as LF            |
//! | 50 MB generated C file                  | check            | 1    | skipped with a warning, bounded time/RSS |
//! | deeply nested macros                    | check            | 1    | analyzed, no warning                     |
//! | truncated function                      | check            | 1    | analyzed, warning with file and line     |
//! | --out exists and is not empty           | series generate  | 2    | refused (--force: unless kvmtk wrote it) |
//! | --out / -o under a regular file         | generate/check/graph | 2 | error, "is not a directory", fast     |
//! | --cache-dir that is a regular file      | check, lint      | 2    | error, "cannot use cache directory" (tests/cli.rs; the library: lint_cache.rs) |
//! | patch that does not apply               | series test      | 1    | reported as a failing patch              |
//! | corrupt mbox (hunk cut short)           | series test      | 1    | reported as a patch that does not parse  |
//! | binary garbage as an mbox               | series test      | 1    | reported: "no diff in this patch"        |
//! | series directory with a numbering gap   | series test      | 2    | error naming the missing patch           |
//!
//! Exit 1 rows are on the default fixture, which has findings: the input is
//! legitimately analyzable and the warning goes to standard error (with
//! `--verbose` each warning as `path:line: warning: ...`, the path from
//! the current directory; without, one line with their count).

#[path = "../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn kvmtk_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).current_dir(dir).output().expect("run kvmtk")
}

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("kvm-fixtures").join(name)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// All entries under `dir`, relative, sorted (to assert nothing was written).
fn listing(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            }
        }
    }
    let mut v = Vec::new();
    walk(dir, dir, &mut v);
    v.sort();
    v
}

/// A scratch directory holding a copy of the default fixture as `tree`.
fn scratch_tree() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::Builder::new().prefix("kvmtk-bad-input-").tempdir().unwrap();
    let tree = dir.path().join("tree");
    copy_tree(&fixture("default"), &tree);
    (dir, tree)
}

/// Run `check` on `tree` (relative to `dir`), assert the exit code, stderr
/// exactly, and that nothing was written under `dir`.
fn check_exact(dir: &Path, args: &[&str], code: i32, err: &str) -> Output {
    let before = listing(dir);
    let o = kvmtk_in(dir, args);
    assert_eq!(o.status.code(), Some(code), "{args:?}: {}", stderr(&o));
    assert_eq!(stderr(&o), err, "{args:?}");
    assert_eq!(listing(dir), before, "{args:?} wrote something");
    o
}

/// The findings of `check --format json` (paths are relative to the tree).
fn findings(o: &Output) -> serde_json::Value {
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("json output");
    v["findings"].clone()
}

fn git(dir: &Path, args: &[&str]) {
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
}

#[test]
fn trees_that_cannot_be_read_are_errors() {
    let dir = tempfile::Builder::new().prefix("kvmtk-bad-input-").tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("empty")).unwrap();
    std::fs::create_dir(d.join("notkernel")).unwrap();
    std::fs::write(d.join("notkernel/Makefile"), "all:\n").unwrap();
    std::fs::write(d.join("file.c"), "int x;\n").unwrap();
    check_exact(
        d,
        &["check", "nope"],
        2,
        "kvmtk: error: `nope` does not exist; expected a kernel source tree or git repository\n",
    );
    check_exact(
        d,
        &["check", "file.c"],
        2,
        "kvmtk: error: `file.c` is not a directory; expected the top directory of a kernel source tree\n",
    );
    check_exact(
        d,
        &["check", "notkernel"],
        2,
        "kvmtk: error: `notkernel` is not a kernel source tree: missing virt/kvm/kvm_main.c and include/linux/kvm_host.h\n",
    );
    check_exact(
        d,
        &["graph", "empty"],
        2,
        "kvmtk: error: `empty` is an empty directory; expected a kernel source tree (with virt/kvm/kvm_main.c and include/linux/kvm_host.h)\n",
    );
    check_exact(
        d,
        &["check", "--repo", "empty", "--rev", "HEAD"],
        2,
        "kvmtk: error: `empty` is not a git repository; expected a repository (or bare repository) holding a kernel tree\n",
    );
}

#[test]
fn revisions_and_bare_repositories() {
    let (dir, tree) = scratch_tree();
    let d = dir.path();
    git(&tree, &["init", "-q"]);
    git(&tree, &["add", "-A"]);
    git(&tree, &["commit", "-q", "-m", "base"]);
    git(d, &["clone", "-q", "--bare", "tree", "bare.git"]);
    check_exact(
        d,
        &["check", "--repo", "tree", "--rev", "v9.9"],
        2,
        "kvmtk: error: unknown revision `v9.9` in git repository `tree`\n",
    );
    check_exact(
        d,
        &["check", "--repo", "bare.git", "--rev", "no/such/branch"],
        2,
        "kvmtk: error: unknown revision `no/such/branch` in git repository `bare.git`\n",
    );
    // A bare repository is analyzed like the directory it came from.
    let from_dir = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    let from_bare = check_exact(d, &["check", "--repo", "bare.git", "--rev", "HEAD", "--format", "json"], 1, "");
    assert_eq!(findings(&from_bare), findings(&from_dir));
    assert_eq!(findings(&from_bare).as_array().map(Vec::len), Some(13));
    let text = check_exact(d, &["check", "--repo", "bare.git", "--rev", "HEAD"], 1, "");
    assert!(
        stdout(&text)
            .ends_with("13 findings (0 errors, 8 warnings, 5 notes) in arches arm64, mips, powerpc, s390, x86\n"),
        "{}",
        stdout(&text)
    );
}

#[test]
fn odd_files_inside_the_tree_are_analyzed_with_a_warning() {
    let (dir, tree) = scratch_tree();
    let d = dir.path();
    let clean = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    // Latin-1 in a comment on line 2, and an ELF-like binary named .c.
    std::fs::write(tree.join("virt/kvm/latin1.c"), b"/* Copyright */\n/* J\xf6rg caf\xe9 */\nint latin1_x;\n").unwrap();
    let mut bin = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0".to_vec();
    bin.extend((0..4000u32).map(|i| (i.wrapping_mul(2654435761) >> 13) as u8));
    std::fs::write(tree.join("arch/x86/kvm/blob.c"), &bin).unwrap();
    let o = kvmtk_in(d, &["check", "tree", "--format", "json", "--verbose"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let err = stderr(&o);
    let lines: Vec<&str> = err.lines().collect();
    assert!(
        lines.contains(
            &"tree/virt/kvm/latin1.c:2: warning: not valid UTF-8; analyzed as bytes, invalid sequences shown as U+FFFD"
        ),
        "{err}"
    );
    assert!(
        lines.contains(&"tree/arch/x86/kvm/blob.c:1: warning: binary file (NUL byte); analyzed as C anyway"),
        "{err}"
    );
    assert!(lines.iter().all(|l| l.starts_with("tree/") && l.contains(": warning: ")), "{err}");
    assert_eq!(findings(&o), findings(&clean), "the odd files change no finding");
}

#[test]
fn crlf_sources_give_the_same_findings_as_lf() {
    let (dir, tree) = scratch_tree();
    let d = dir.path();
    let lf = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    fn to_crlf(dir: &Path) {
        for e in std::fs::read_dir(dir).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                to_crlf(&p);
            } else {
                let s = std::fs::read_to_string(&p).unwrap();
                std::fs::write(&p, s.replace('\n', "\r\n")).unwrap();
            }
        }
    }
    to_crlf(&tree);
    let crlf = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    assert_eq!(stdout(&crlf), stdout(&lf));
    let v: serde_json::Value = serde_json::from_slice(&crlf.stdout).unwrap();
    assert_eq!(v["findings"].as_array().map(Vec::len), Some(13));
}

/// Run a command, sampling its peak RSS (VmHWM) from /proc until it exits.
fn run_measured(dir: &Path, args: &[&str]) -> (Output, Duration, u64) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kvmtk"))
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak_kib = 0u64;
    // Drain the pipes on threads so the child never blocks on them.
    let mut so = child.stdout.take().unwrap();
    let mut se = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut so, &mut v).unwrap();
        v
    });
    let t_err = std::thread::spawn(move || {
        let mut v = Vec::new();
        std::io::Read::read_to_end(&mut se, &mut v).unwrap();
        v
    });
    let code = loop {
        if let Ok(s) = std::fs::read_to_string(&status) {
            if let Some(kib) = s.lines().find_map(|l| l.strip_prefix("VmHWM:")) {
                peak_kib = peak_kib.max(kib.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0));
            }
        }
        if let Some(c) = child.try_wait().unwrap() {
            break c;
        }
        if started.elapsed() > Duration::from_secs(300) {
            // Kill it, or a regression leaves a runaway process behind.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{args:?} runs for more than 5 minutes");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = Output { status: code, stdout: t_out.join().unwrap(), stderr: t_err.join().unwrap() };
    (out, started.elapsed(), peak_kib)
}

#[test]
fn a_50_mb_generated_file_is_skipped_in_bounded_time_and_memory() {
    let (dir, tree) = scratch_tree();
    let d = dir.path();
    let clean = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    let mut text = String::with_capacity(51 << 20);
    let mut i = 0;
    while text.len() < 50 << 20 {
        text.push_str(&format!(
            "static int huge_{i}(struct kvm *kvm)\n{{\n\tspin_lock(&kvm->lock);\n\thuge_{}(kvm);\n\tspin_unlock(&kvm->lock);\n\treturn {i};\n}}\n\n",
            i + 1
        ));
        i += 1;
    }
    std::fs::write(tree.join("virt/kvm/huge.c"), &text).unwrap();
    drop(text);
    let (o, took, peak_kib) = run_measured(d, &["check", "tree", "--format", "json", "--verbose"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "tree/virt/kvm/huge.c: warning: file too large to parse (50.0 MiB, the limit is 8 MiB); skipped\n"
    );
    assert_eq!(findings(&o), findings(&clean));
    assert!(took < Duration::from_secs(60), "took {took:?}");
    // The file is read whole (50 MiB) and hashed; parsing it would take GiBs.
    assert!(peak_kib > 0 && peak_kib < 512 * 1024, "peak RSS {peak_kib} KiB");
}

/// Bytes on which tree-sitter's error recovery never finishes (found by
/// fuzzing; see `analyzer/tests/bounds_fuzz_regressions.rs`): the file is
/// skipped at the parser's work budget with a warning, and the rest of the
/// tree is analyzed as without it.
#[test]
fn a_file_the_parser_cannot_finish_is_skipped_at_its_work_budget() {
    let (dir, tree) = scratch_tree();
    let d = dir.path();
    let clean = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    let mut b = b"D|0(|F((())".to_vec();
    b.extend([b'\n'; 50]);
    b.push(b';');
    std::fs::write(tree.join("virt/kvm/hostile.c"), &b).unwrap();
    let (o, took, _) = run_measured(d, &["check", "tree", "--format", "json", "--verbose"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "tree/virt/kvm/hostile.c: warning: not parsed: the parser's error recovery passed its work budget \
         for a file of this size; skipped\n"
    );
    assert_eq!(findings(&o), findings(&clean));
    // Without the budget this run does not end (run_measured kills it
    // after 5 minutes).
    assert!(took < Duration::from_secs(60), "took {took:?}");
}

#[test]
fn deep_macros_and_truncated_functions() {
    let (dir, tree) = scratch_tree();
    let d = dir.path();
    let clean = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    let n = 20_000;
    let mut s = String::from("#define M0(x) (x)\n");
    for k in 1..200 {
        s.push_str(&format!("#define M{k}(x) M{}(M{}(x))\n", k - 1, k - 1));
    }
    s.push_str("int deep_macros(void)\n{\n\treturn ");
    s.push_str(&"M199(".repeat(n));
    s.push('1');
    s.push_str(&")".repeat(n));
    s.push_str(";\n}\n");
    std::fs::write(tree.join("virt/kvm/deep.c"), &s).unwrap();
    let o = check_exact(d, &["check", "tree", "--format", "json"], 1, "");
    assert_eq!(findings(&o), findings(&clean));
    // A function cut in the middle: a warning with file and line, the rest analyzed.
    std::fs::write(
        tree.join("virt/kvm/trunc.c"),
        "int ok(void) { return 0; }\n\nstatic int trunc(void)\n{\n\tif (x) {\n\t\tfoo(",
    )
    .unwrap();
    let o = check_exact(
        d,
        &["check", "tree", "--format", "json", "--verbose"],
        1,
        "tree/virt/kvm/trunc.c:3: warning: unparsed `static int trunc(void) { if (x) { foo(`: expected a declaration or definition (the rest of the file is analyzed)\n",
    );
    assert_eq!(findings(&o), findings(&clean));
}

#[test]
fn outputs_that_cannot_be_written_are_refused_and_nothing_is_written() {
    let (dir, _tree) = scratch_tree();
    let d = dir.path();
    std::fs::create_dir(d.join("out")).unwrap();
    std::fs::write(d.join("out/keep.txt"), "mine").unwrap();
    std::fs::write(d.join("file.txt"), "a regular file").unwrap();
    let gen = |out: &str| -> Vec<String> {
        ["series", "generate", "tree", "--out", out, "--author", "A <a@b>", "--date", "Mon, 3 Jun 2024 10:00:00 +0000"]
            .iter()
            .map(|s| s.to_string())
            .collect()
    };
    let args = gen("out");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    check_exact(
        d,
        &args,
        2,
        "kvmtk: error: output directory `out` exists and is not empty; pass --force to replace it\n",
    );
    assert_eq!(std::fs::read_to_string(d.join("out/keep.txt")).unwrap(), "mine");
    // Not writable (as root, only a path under a regular file is): refused
    // before the analysis, so at once.
    let args = gen("file.txt/sub");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = Instant::now();
    check_exact(d, &args, 2, "kvmtk: error: cannot write `file.txt/sub`: file.txt is not a directory\n");
    assert!(started.elapsed() < Duration::from_secs(10));
    check_exact(
        d,
        &["check", "tree", "-o", "file.txt/report.txt"],
        2,
        "kvmtk: error: cannot write `file.txt/report.txt`: file.txt is not a directory\n",
    );
    check_exact(
        d,
        &["graph", "tree", "-o", "file.txt/graph.dot", "--format", "dot"],
        2,
        "kvmtk: error: cannot write `file.txt/graph.dot`: file.txt is not a directory\n",
    );
    // With --force too: `out` is the user's directory, not a series kvmtk
    // wrote (tests/confinement.rs has --force replacing kvmtk's own).
    let mut forced = gen("out");
    forced.push("--force".into());
    let forced: Vec<&str> = forced.iter().map(String::as_str).collect();
    check_exact(
        d,
        &forced,
        2,
        "kvmtk: error: --force refuses to replace `out`: it is not a series kvmtk wrote (no `.kvmtk-series` file \
         in it); remove it yourself or choose another --out; nothing was changed\n",
    );
    assert_eq!(std::fs::read_to_string(d.join("out/keep.txt")).unwrap(), "mine");
    let mut top: Vec<String> =
        std::fs::read_dir(d).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    top.sort();
    assert_eq!(top, ["file.txt", "out", "tree"]);
}

/// A generated series of the default fixture, in `dir/series`.
fn series(dir: &Path) -> PathBuf {
    let o = kvmtk_in(
        dir,
        &[
            "series",
            "generate",
            "tree",
            "--out",
            "series",
            "--author",
            "A <a@b>",
            "--date",
            "Mon, 3 Jun 2024 10:00:00 +0000",
        ],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    dir.join("series")
}

fn patch_named(series: &Path, prefix: &str) -> PathBuf {
    let mut v: Vec<PathBuf> = std::fs::read_dir(series)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(prefix))
        .collect();
    assert_eq!(v.len(), 1, "{prefix}");
    v.pop().unwrap()
}

#[test]
fn broken_patches_and_series() {
    let (dir, _tree) = scratch_tree();
    let d = dir.path();
    let s = series(d);
    let first = patch_named(&s, "0001-");
    let first_name = first.file_name().unwrap().to_string_lossy().into_owned();
    let text = std::fs::read_to_string(&first).unwrap();

    // A patch that does not apply: a context line changed.
    copy_tree(&s, &d.join("noapply"));
    let ctx = text.lines().skip_while(|l| !l.starts_with("@@")).nth(1).unwrap().to_string();
    assert!(ctx.starts_with(' '), "{ctx}");
    let broken = text.replacen(&format!("\n{ctx}\n"), &format!("\n{ctx} /* changed */\n"), 1);
    std::fs::write(d.join("noapply").join(&first_name), broken).unwrap();
    let before = listing(d);
    let o = kvmtk_in(d, &["series", "test", "tree", "noapply"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
    let out = stdout(&o);
    assert!(
        out.contains(&format!("  - does not apply: {first_name}: hunk #1 `@@ -19,6 +19,7 @@` (line 39) does not apply to `arch/x86/kvm/x86.c`: its context and removed lines")),
        "{out}"
    );
    assert!(out.ends_with("1 of 6 patches failed\n") || out.contains("patches failed"), "{out}");
    assert_eq!(listing(d), before);

    // A corrupt mbox: the series concatenated, cut inside the first hunk.
    let lines: Vec<&str> = text.lines().collect();
    let at = lines.iter().position(|l| l.starts_with("@@")).unwrap();
    let cut = lines[..at + 3].join("\n") + "\n";
    std::fs::write(d.join("cut.mbox"), &cut).unwrap();
    let o = kvmtk_in(d, &["series", "test", "tree", "cut.mbox"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    // Only [PATCH 1/6] is left in it: said so.
    assert_eq!(stderr(&o), "kvmtk: note: a subset of the series: patch 1 of 6\n");
    let out = stdout(&o);
    assert!(
        out.contains(&format!(
            "  - does not apply: malformed patch: cut.mbox:{}: hunk `@@ -19,6 +19,7 @@` (line {}) ends early: expected 3 more old and 4 more new lines, found the end of the patch\n",
            at + 5,
            at + 1
        )),
        "{out}"
    );
    // Binary garbage as an mbox.
    let garbage: Vec<u8> = (0..3000u32).map(|i| (i.wrapping_mul(2654435761) >> 11) as u8).collect();
    std::fs::write(d.join("garbage.mbox"), garbage).unwrap();
    let o = kvmtk_in(d, &["series", "test", "tree", "garbage.mbox"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stdout(&o).contains("  - does not apply: garbage.mbox#1: no diff in this patch\n"), "{}", stdout(&o));

    // A gap in the numbering of a series directory.
    let third = patch_named(&s, "0003-");
    std::fs::remove_file(&third).unwrap();
    let mut names: Vec<String> =
        std::fs::read_dir(&s).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    // The listing names the patch files, not the series marker (`.kvmtk-series`).
    names.retain(|n| n.ends_with(".patch"));
    names.sort();
    check_exact(
        d,
        &["series", "test", "tree", "series"],
        2,
        &format!("kvmtk: error: series: patch 0003 is missing (the series has {})\n", names.join(", ")),
    );
}
