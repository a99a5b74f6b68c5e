//! Shared helpers of the series tests: test-only transformations (the
//! engine takes the list as a parameter), fixture loading, git plumbing.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use analyzer::api::ApiModel;
use analyzer::pipeline::ParsedTree;
use analyzer::source::{SourceOptions, SourceSpec};
use patchgen::edit::Edit;
use patchgen::series::format::{Author, MailDate};
use patchgen::series::{self, GenerateOptions, Series};
use patchgen::transform::{Change, Refusal, TransformInfo, TransformInput};

pub fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn fixture(name: &str) -> PathBuf {
    workspace().join("kvm-fixtures").join(name)
}

#[path = "../../../test-support/kernel_cache.rs"]
mod kernel_cache_support;

/// The real-kernel tree `name` of the cache, or `None` (with a notice) when
/// missing and not under CI.
pub fn kernel_cache(name: &str) -> Option<PathBuf> {
    kernel_cache_support::kernel_tree(name)
}

pub fn load(spec: &SourceSpec) -> ParsedTree {
    ParsedTree::load(spec, &SourceOptions::default()).expect("load tree")
}

pub fn load_dir(dir: &Path) -> ParsedTree {
    load(&SourceSpec::Dir(dir.to_path_buf()))
}

pub const AUTHOR: &str = "Test Author <test@example.org>";
pub const DATE: &str = "Mon, 3 Jun 2024 10:00:00 +0000";

pub fn opts() -> GenerateOptions {
    GenerateOptions::new(Author::parse(AUTHOR).unwrap(), MailDate::parse(DATE).unwrap())
}

pub fn generate(tree: ParsedTree, transforms: &[TransformInfo]) -> Series {
    series::generate(tree, &ApiModel::default(), transforms, &opts()).expect("generate")
}

fn refuse(slug: &'static str, reason: &str) -> Refusal {
    Refusal { transformation: slug, reason: reason.to_string() }
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Word-bounded occurrences of `name` in `text`.
fn occurrences(text: &[u8], name: &str) -> Vec<usize> {
    let n = name.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i + n.len() <= text.len() {
        if &text[i..i + n.len()] == n
            && (i == 0 || !is_ident(text[i - 1]))
            && (i + n.len() == text.len() || !is_ident(text[i + n.len()]))
        {
            out.push(i);
            i += n.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Test transformation: rename the function HW005 reports (found through
/// the findings), claiming its HW005 finding: a claim a pure rename cannot
/// meet, since a finding's identity does not include function names.
fn plan_rename(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let f = input
        .findings
        .findings
        .iter()
        .find(|f| f.rule == "HW005")
        .ok_or_else(|| refuse("rename-enable-nolock", "no HW005 finding"))?;
    let name = f.function.clone();
    let new = format!("{name}_this_cpu");
    let mut edits = Vec::new();
    for file in &input.tree.source.files {
        for at in occurrences(&file.bytes, &name) {
            edits.push(Edit::replace(&file.path, at, at + name.len(), new.clone()));
        }
    }
    Ok(Change {
        subject: format!("KVM: Rename {name}() to {new}()"),
        body: format!(
            "{name}() enables virtualization on the CPU it runs on, and the\n\
             name should say so.\n\n\
             Claims HW005 in {name}() (test transformation: the\n\
             fingerprint does not name the function, so a rename keeps\n\
             the finding and this claim is not met)."
        ),
        edits,
        removes: vec![f.fingerprint.clone()],
    })
}

fn comment_above(input: &TransformInput<'_>, rule: &str, comment: &str) -> Option<Edit> {
    let f = input.findings.findings.iter().find(|f| f.rule == rule)?;
    let facts = input.tree.files.iter().find(|x| x.path == f.file)?;
    let func = facts.functions.iter().find(|x| x.name == f.function)?;
    Some(Edit::insert(&f.file, func.span.start as usize, comment.to_string()))
}

/// Test transformation: document the STARTING callback HW006 names.
fn plan_comment(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let e = comment_above(
        input,
        "HW006",
        "/*\n * Runs on the CPU coming up, in the STARTING section of CPU hotplug,\n * with interrupts disabled.\n */\n",
    )
    .ok_or_else(|| refuse("document-starting", "no HW006 finding"))?;
    Ok(Change {
        subject: "KVM: Document where the STARTING callback runs".into(),
        body: "Say where the callback runs, so that nobody takes a sleeping lock\nin it.".into(),
        edits: vec![e],
        removes: vec![],
    })
}

/// Test transformation touching two files.
fn plan_two_files(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let a = comment_above(input, "HW003", "/* Enables virtualization on this CPU; may be called in IPI context. */\n");
    let b = comment_above(input, "HW004", "/* Enables virtualization on all online CPUs. */\n");
    let edits: Vec<Edit> = [a, b].into_iter().flatten().collect();
    if edits.len() != 2 {
        return Err(refuse("document-enable-hooks", "no HW003 and HW004 findings"));
    }
    Ok(Change {
        subject: "KVM: x86: Document the hardware enable hooks and where they are called from, in a subject long enough to fold".into(),
        body: "Two files, for the diffstat.".into(),
        edits,
        removes: vec![],
    })
}

fn plan_refuse(_: &TransformInput<'_>) -> Result<Change, Refusal> {
    Err(refuse("needs-hw099", "the tree has no HW099 shape (test transformation)"))
}

fn plan_overlap(input: &TransformInput<'_>) -> Result<Change, Refusal> {
    let path = &input.tree.source.files.iter().find(|f| f.path == "virt/kvm/kvm_main.c").unwrap().path;
    Ok(Change {
        subject: "KVM: Broken".into(),
        body: String::new(),
        edits: vec![Edit::replace(path, 10, 20, "x"), Edit::replace(path, 15, 25, "y")],
        removes: vec![],
    })
}

pub static TEST_SERIES: &[TransformInfo] = &[
    TransformInfo {
        slug: "rename-enable-nolock",
        title: "rename the per-CPU enable function",
        removes_rules: &["HW005"],
        plan: plan_rename,
    },
    TransformInfo { slug: "needs-hw099", title: "always refuses", removes_rules: &["HW006"], plan: plan_refuse },
    TransformInfo { slug: "document-starting", title: "comment", removes_rules: &[], plan: plan_comment },
    TransformInfo { slug: "document-enable-hooks", title: "comments", removes_rules: &[], plan: plan_two_files },
];

pub static OVERLAP_SERIES: &[TransformInfo] =
    &[TransformInfo { slug: "overlapping", title: "bug", removes_rules: &[], plan: plan_overlap }];

/// Run git with an isolated configuration and a fixed identity and date.
pub fn git(dir: &Path, args: &[&str]) -> Output {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Test Author")
        .env("GIT_AUTHOR_EMAIL", "test@example.org")
        .env("GIT_COMMITTER_NAME", "Test Author")
        .env("GIT_COMMITTER_EMAIL", "test@example.org")
        .env("GIT_AUTHOR_DATE", DATE)
        .env("GIT_COMMITTER_DATE", DATE)
        .output()
        .expect("run git");
    out
}

pub fn git_ok(dir: &Path, args: &[&str]) -> String {
    let o = git(dir, args);
    assert!(o.status.success(), "git {args:?} failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A git repository holding a copy of `src` as its single commit (`base`
/// tag), with user.name/email configured.
pub fn make_repo(src: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    patchgen::series::tree::copy_dir(src, dir.path()).unwrap();
    git_ok(dir.path(), &["init", "-q", "-b", "master"]);
    git_ok(dir.path(), &["config", "user.name", "Repo User"]);
    git_ok(dir.path(), &["config", "user.email", "repo@example.org"]);
    git_ok(dir.path(), &["add", "-A"]);
    git_ok(dir.path(), &["commit", "-q", "-m", "base"]);
    git_ok(dir.path(), &["tag", "base"]);
    dir
}
