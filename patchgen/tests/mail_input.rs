//! Patch input the way `git am` and b4 take it, on upstream's real 50-patch
//! series (`../shared/data/upstream-v2/original`, read in place): the
//! numbered files one by one, as a glob with the cover letter, as one
//! mbox, one patch of the series alone; base64 and quoted-printable
//! re-encodings of its messages; a thread with a reply and an older
//! revision. Also the input bounds: a 10,000-message mbox, an input over
//! the size limit, a device as input; and malformed hunks judged as
//! `git apply --check` judges them.

mod lint_common;

use std::path::{Path, PathBuf};
use std::process::Command;

use patchgen::series::apply::mail::{collect_series, load_inputs, read_input, InputFile};
use patchgen::series::apply::{apply_file, parse_mail, FilePatch, MailPatch, MAX_INPUT_BYTES};

/// `../shared/data/upstream-v2/original`, or `None` (with a notice) when
/// missing outside CI.
fn upstream() -> Option<PathBuf> {
    let dir = lint_common::workspace().join("../shared/data/upstream-v2/original");
    if dir.join("0001.patch").is_file() {
        return Some(dir);
    }
    let msg = format!("{} is missing (the shared test data)", dir.display());
    if std::env::var_os("CI").is_some() {
        panic!("{msg}");
    }
    eprintln!("notice: skipping: {msg}");
    None
}

fn numbered(dir: &Path) -> Vec<PathBuf> {
    (1..=50).map(|n| dir.join(format!("{n:04}.patch"))).collect()
}

/// What must be equal however the series is given: number, subject and
/// the parsed diff (paths and hunk lines, not the line numbers in the input).
type FileShape = (Option<String>, Option<String>, Vec<String>);

fn shape(p: &MailPatch) -> (Option<(usize, usize)>, String, Vec<FileShape>) {
    let files = p.files.as_ref().unwrap_or_else(|e| panic!("{}: {e}", p.name));
    let files = files
        .iter()
        .map(|f| {
            let hunks = f
                .hunks
                .iter()
                .flat_map(|h| h.lines.iter().map(|l| format!("{}{}", l.kind, String::from_utf8_lossy(&l.text))))
                .collect();
            (f.old_path.clone(), f.new_path.clone(), hunks)
        })
        .collect();
    (p.number, p.subject.clone(), files)
}

#[test]
fn upstream_series_one_by_one_glob_mbox_and_single() {
    let Some(dir) = upstream() else { return };
    // One by one, given in reverse: ordered by [PATCH n/50].
    let mut files = numbered(&dir);
    files.reverse();
    let one_by_one = load_inputs(&files).unwrap();
    assert_eq!(one_by_one.patches.len(), 50);
    let nums: Vec<usize> = one_by_one.patches.iter().map(|p| p.number.unwrap().0).collect();
    assert_eq!(nums, (1..=50).collect::<Vec<_>>());
    assert!(one_by_one.patches.iter().all(|p| p.version == 2 && p.number.unwrap().1 == 50));
    assert_eq!(one_by_one.patches[0].subject, "KVM: Register /dev/kvm as the _very_ last thing during initialization");
    assert_eq!(one_by_one.patches[0].name, "0001.patch");
    assert!(one_by_one.notes.is_empty(), "{:?}", one_by_one.notes);
    let expected: Vec<_> = one_by_one.patches.iter().map(shape).collect();

    // A glob with the cover letter: the cover is skipped.
    let mut glob: Vec<PathBuf> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).collect();
    glob.sort();
    assert!(glob[0].ends_with("0000-cover-letter.patch"));
    let globbed = load_inputs(&glob).unwrap();
    assert_eq!(globbed.patches.iter().map(shape).collect::<Vec<_>>(), expected);
    assert!(globbed.notes.is_empty(), "{:?}", globbed.notes);
    // The directory itself.
    let as_dir = load_inputs(std::slice::from_ref(&dir)).unwrap();
    assert_eq!(as_dir.patches.iter().map(shape).collect::<Vec<_>>(), expected);

    // One mbox, as a list archive gives it (concatenated here).
    let tmp = tempfile::tempdir().unwrap();
    let mbox = tmp.path().join("series.mbox");
    let mut all = Vec::new();
    for p in &glob {
        all.extend(std::fs::read(p).unwrap());
        all.push(b'\n');
    }
    std::fs::write(&mbox, &all).unwrap();
    let from_mbox = load_inputs(std::slice::from_ref(&mbox)).unwrap();
    assert_eq!(from_mbox.patches.iter().map(shape).collect::<Vec<_>>(), expected);
    assert_eq!(from_mbox.patches[41].name, "series.mbox#42");
    assert!(from_mbox.notes.is_empty(), "{:?}", from_mbox.notes);
    // Hunk lines keep the mbox's line numbers.
    let first_hunk = &from_mbox.patches[0].files.as_ref().unwrap()[0].hunks[0];
    let text = String::from_utf8_lossy(&all);
    assert_eq!(text.lines().nth(first_hunk.line - 1).unwrap(), first_hunk.header);

    // One patch of a numbered series alone: a subset, said so.
    let single = load_inputs(&[dir.join("0042.patch")]).unwrap();
    assert_eq!(single.patches.len(), 1);
    assert_eq!(single.patches[0].number, Some((42, 50)));
    assert_eq!(single.notes, ["a subset of the series: patch 42 of 50"]);
    assert_eq!(shape(&single.patches[0]), expected[41]);
}

fn base64(data: &[u8]) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for (k, c) in data.chunks(3).enumerate() {
        let n = (c[0] as u32) << 16 | (*c.get(1).unwrap_or(&0) as u32) << 8 | *c.get(2).unwrap_or(&0) as u32;
        for i in 0..4 {
            out.push(if i <= c.len() { A[(n >> (18 - 6 * i) & 63) as usize] as char } else { '=' });
        }
        if k % 19 == 18 {
            out.push('\n');
        }
    }
    out.push('\n');
    out
}

/// Quoted-printable (RFC 2045): `=XX` for `=`, non-ASCII and trailing
/// blanks, soft line breaks under 76 columns.
fn quoted_printable(data: &[u8]) -> String {
    let mut out = String::new();
    for line in data.split(|&b| b == b'\n') {
        let mut col = 0;
        for (i, &b) in line.iter().enumerate() {
            let last = i + 1 == line.len();
            let enc = if b == b'=' || b >= 127 || (b < 32 && b != b'\t') || (last && (b == b' ' || b == b'\t')) {
                format!("={b:02X}")
            } else {
                (b as char).to_string()
            };
            if col + enc.len() > 72 {
                out.push_str("=\n");
                col = 0;
            }
            col += enc.len();
            out.push_str(&enc);
        }
        out.push('\n');
    }
    out.pop();
    out
}

/// The mail `text` with its body re-encoded: headers kept, a
/// Content-Transfer-Encoding set.
fn reencode(text: &[u8], encoding: &str, charset: &str, encode: fn(&[u8]) -> String) -> Vec<u8> {
    let split = text.windows(2).position(|w| w == b"\n\n").unwrap() + 2;
    let headers = String::from_utf8_lossy(&text[..split - 1]);
    let mut out = String::new();
    for l in headers.split_inclusive('\n') {
        let key = l.split(':').next().unwrap().to_ascii_lowercase();
        if key != "content-transfer-encoding" && key != "content-type" && key != "mime-version" {
            out.push_str(l);
        }
    }
    out.push_str(&format!(
        "MIME-Version: 1.0\nContent-Type: text/plain; charset=\"{charset}\"\nContent-Transfer-Encoding: {encoding}\n\n"
    ));
    out.push_str(&encode(&text[split..]));
    out.into_bytes()
}

#[test]
fn base64_and_quoted_printable_mails_decode_to_the_same_patch() {
    let Some(dir) = upstream() else { return };
    // Patch 22 was one of those the list re-encoded as base64.
    for n in [22, 24, 32] {
        let raw = std::fs::read(dir.join(format!("{n:04}.patch"))).unwrap();
        let plain = parse_mail("plain.patch", &raw, 1);
        let b64 = parse_mail("b64.patch", &reencode(&raw, "base64", "utf-8", base64), 1);
        let qp = parse_mail("qp.patch", &reencode(&raw, "quoted-printable", "utf-8", quoted_printable), 1);
        assert!(String::from_utf8_lossy(&reencode(&raw, "base64", "utf-8", base64)).lines().count() > 10);
        assert_eq!(shape(&b64), shape(&plain), "base64 of {n}");
        assert_eq!(shape(&qp), shape(&plain), "quoted-printable of {n}");
        assert_eq!(b64.body, plain.body);
        assert_eq!(b64.author, plain.author);
        // checkpatch gets the decoded text.
        assert!(b64.text.contains("\ndiff --git a/"), "{}", &b64.text[..200.min(b64.text.len())]);
    }
    // A Latin-1 body and an RFC 2047 subject: decoded to UTF-8.
    let mail = b"From: =?iso-8859-1?q?J=F6rg_R=F6del?= <j@example.org>\nSubject: =?UTF-8?q?=5BPATCH_1/1=5D_KVM:_fix_caf=C3=A9?=\nContent-Type: text/plain; charset=iso-8859-1\nContent-Transfer-Encoding: quoted-printable\n\nSigned-off-by: J=F6rg\n---\ndiff --git a/f.c b/f.c\n--- a/f.c\n+++ b/f.c\n@@ -1,2 +1,2 @@\n a\n-b\n+c\n";
    let m = parse_mail("latin1.patch", mail, 1);
    assert_eq!(m.subject, "KVM: fix caf\u{e9}");
    assert_eq!(m.author.as_deref(), Some("J\u{f6}rg R\u{f6}del <j@example.org>"));
    assert!(m.body.contains("Signed-off-by: J\u{f6}rg"), "{}", m.body);
    assert_eq!(m.files.unwrap()[0].hunks[0].lines.len(), 3);
}

#[test]
fn thread_with_a_reply_and_an_older_revision() {
    let Some(dir) = upstream() else { return };
    let read = |n: usize| {
        let name = if n == 0 { "0000-cover-letter.patch".to_string() } else { format!("{n:04}.patch") };
        String::from_utf8(std::fs::read(dir.join(name)).unwrap()).unwrap()
    };
    let reply = "From reply@example.org Thu Dec  1 10:00:00 2022\nFrom: Reviewer <r@example.org>\nSubject: Re: [PATCH v2 02/50] KVM: Initialize IRQ FD after arch hardware setup\nIn-Reply-To: <20221130230934.1014142-3-seanjc@google.com>\n\n> diff --git a/virt/kvm/kvm_main.c b/virt/kvm/kvm_main.c\nLooks good.\n\nReviewed-by: Reviewer <r@example.org>\n";
    // v1 of patch 3, as an older revision would sit in the same folder.
    let v1 = read(3).replace("[PATCH v2 03/50]", "[PATCH 03/49]");
    let thread = format!("{}\n{}\n{reply}\n{}\n{v1}\n{}\n", read(0), read(1), read(2), read(3));
    let loaded = collect_series(&[InputFile { name: "thread.mbox".into(), bytes: thread.into_bytes() }]).unwrap();
    let nums: Vec<_> = loaded.patches.iter().map(|p| (p.number.unwrap().0, p.version)).collect();
    assert_eq!(nums, [(1, 2), (2, 2), (3, 2)]);
    assert_eq!(
        loaded.notes,
        [
            "skipped thread.mbox#2: a reply (Re: [PATCH v2 2/50] KVM: Initialize IRQ FD after arch hardware setup)",
            "several revisions of the series: took v2, the newest; left out v1 (1 mail)",
            "a subset of the series: patches 1-3 of 50",
        ]
    );
    // The same patch twice in one revision cannot apply twice: an error naming both.
    let twice = format!("{}\n{}\n", read(5), read(5));
    let e = collect_series(&[InputFile { name: "twice.mbox".into(), bytes: twice.into_bytes() }]).unwrap_err();
    assert_eq!(e.message, "`twice.mbox#5` and `twice.mbox#5` are both [PATCH v2 5/50]; give each patch once");
}

#[test]
fn a_ten_thousand_message_mbox_is_read() {
    // Linear splitting and parsing: this completes (it took minutes when
    // splitting was quadratic); the time is not asserted.
    let mut mbox = String::new();
    let n = 10_000;
    for k in 1..=n {
        mbox.push_str(&format!(
            "From 0000000000000000000000000000000000000000 Mon Sep 17 00:00:00 2001\nFrom: A <a@example.org>\nSubject: [PATCH {k}/{n}] KVM: change {k}\n\nWhy {k}.\n---\ndiff --git a/f{k}.c b/f{k}.c\nindex 1111111..2222222 100644\n--- a/f{k}.c\n+++ b/f{k}.c\n@@ -1,3 +1,3 @@\n a\n-b\n+c{k}\n d\n\n"
        ));
    }
    let loaded = collect_series(&[InputFile { name: "big.mbox".into(), bytes: mbox.into_bytes() }]).unwrap();
    assert_eq!(loaded.patches.len(), n);
    assert_eq!(loaded.patches[n - 1].number, Some((n, n)));
    assert_eq!(loaded.patches[n - 1].files.as_ref().unwrap()[0].path(), format!("f{n}.c"));
    assert!(loaded.notes.is_empty(), "{:?}", loaded.notes);
}

#[test]
fn inputs_are_bounded() {
    let tmp = tempfile::tempdir().unwrap();
    // Over the limit: refused from its size, before reading (sparse file).
    let big = tmp.path().join("big.mbox");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(MAX_INPUT_BYTES + 1).unwrap();
    let e = read_input(&big).unwrap_err().message;
    assert!(e.contains("big.mbox` (67108865 bytes) is larger than 64 MiB, the limit for a patch or mbox input"), "{e}");
    // A device never ends: not read at all.
    let e = read_input(Path::new("/dev/zero")).unwrap_err().message;
    assert!(e.starts_with("`/dev/zero` is not a regular file"), "{e}");
    let e = load_inputs(&[PathBuf::from("/dev/zero")]).unwrap_err().message;
    assert!(e.contains("not a regular file"), "{e}");
}

/// (patch body after the `+++` line, whether git apply --check takes it)
const HUNKS: &[(&str, &str)] = &[
    ("empty hunk", "@@ -19,0 +19,0 @@\n"),
    ("context only", "@@ -19,3 +19,3 @@\n 19\n 20\n 21\n"),
    ("no trailing context mid-file", "@@ -19,1 +19,2 @@\n 19\n+x\n"),
    ("no trailing context at the end", "@@ -30,1 +30,2 @@\n 30\n+x\n"),
    ("no leading context mid-file", "@@ -10,2 +10,1 @@\n-10\n 11\n"),
    ("too few lines", "@@ -28,3 +28,3 @@\n 28\n-29\n+x\n"),
    ("at line 1 but not at the start", "@@ -1,2 +1,2 @@\n 5\n-6\n+x\n"),
    ("moved by 4 lines", "@@ -15,3 +15,3 @@\n 19\n-20\n+x\n 21\n"),
    ("plain", "@@ -19,3 +19,3 @@\n 19\n-20\n+x\n 21\n"),
];

#[test]
fn malformed_hunks_are_rejected_as_git_apply_rejects_them() {
    let tmp = tempfile::tempdir().unwrap();
    let d = tmp.path();
    let git = |args: &[&str]| Command::new("git").args(args).current_dir(d).output().unwrap();
    assert!(git(&["init", "-q"]).status.success());
    let file: String = (1..=30).map(|n| format!("{n}\n")).collect();
    std::fs::write(d.join("f"), &file).unwrap();
    for (what, hunk) in HUNKS {
        let patch = format!("diff --git a/f b/f\n--- a/f\n+++ b/f\n{hunk}");
        std::fs::write(d.join("p.diff"), &patch).unwrap();
        let git_ok = git(&["apply", "--check", "p.diff"]).status.success();
        let m = parse_mail("p.diff", patch.as_bytes(), 1);
        let ours = m.files.as_ref().map_err(|e| e.clone()).and_then(|files: &Vec<FilePatch>| {
            apply_file("p.diff", &files[0], Some(file.as_bytes())).map_err(|e| e.message)
        });
        assert_eq!(ours.is_ok(), git_ok, "{what}: git apply --check {git_ok}, kvmtk {ours:?}");
    }
    let e = parse_mail("p.diff", b"diff --git a/f b/f\n--- a/f\n+++ b/f\n@@ -19,0 +19,0 @@\n", 1).files.unwrap_err();
    assert_eq!(
        e,
        "p.diff:4: corrupt hunk `@@ -19,0 +19,0 @@`: it neither removes nor adds a line (git apply: corrupt patch)"
    );
}
