//! `kvmtk lint` over commit ranges (library level), on git repositories
//! built with git2: the generated 6.1 series reports only fixes; commits
//! re-introducing warts (HW001, HW005) are reported as new, with evidence,
//! and fail; a baseline accepts them; per-commit timings with and without
//! the facts cache are printed (never asserted).

mod lint_common;

use std::time::{Duration, Instant};

use analyzer::api::ApiModel;
use analyzer::cache::FactsCache;
use analyzer::check::check;
use analyzer::lint::{lint_range, render_report, Baseline, LintFormat, LintOptions, Linter};
use analyzer::pipeline::ParsedTree;
use analyzer::rules::{RuleSelection, Severity};
use analyzer::source::{SourceOptions, SourceSpec};
use lint_common::*;
use patchgen::series::format::{Author, MailDate};
use patchgen::series::output::{write_series, BranchTarget, WriteOptions};
use patchgen::series::{self, GenerateOptions};
use patchgen::transform::SERIES;

const KVM_MAIN: &str = "virt/kvm/kvm_main.c";

/// `kvm_online_cpu()` walking `vm_list` without `kvm_lock` (HW001).
fn with_unlocked_walk(src: &str) -> String {
    let from = "static int kvm_online_cpu(unsigned int cpu)\n{\n\tint ret = 0;\n";
    assert!(src.contains(from), "the series' kvm_online_cpu() changed shape");
    src.replacen(
        from,
        "static int kvm_online_cpu(unsigned int cpu)\n{\n\tstruct kvm *kvm;\n\tint ret = 0;\n\n\
         \tlist_for_each_entry(kvm, &vm_list, vm_list)\n\t\tkvm_make_all_cpus_request(kvm, KVM_REQ_CLOCK_UPDATE);\n",
        1,
    )
}

/// A global cpumask set for the current CPU in `hardware_enable_nolock()` (HW005).
fn with_current_cpu_mask(src: &str) -> String {
    let (decl, set) =
        ("static DEFINE_PER_CPU(bool, hardware_enabled);\n", "\t__this_cpu_write(hardware_enabled, true);\n");
    assert!(src.contains(decl) && src.contains(set), "the series' hardware_enable_nolock() changed shape");
    src.replacen(decl, &format!("{decl}static cpumask_var_t cpus_virt_enabled;\n"), 1).replacen(
        set,
        &format!("{set}\tcpumask_set_cpu(cpu, cpus_virt_enabled);\n"),
        1,
    )
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

#[test]
fn linux_6_1_series_reports_only_fixes_and_reintroduced_warts_fail() {
    let Some(kernel) = kernel_cache("linux-6.1") else { return };
    let (dir, repo, _) = repo_from_dir(&kernel, "v6.1");
    let r = dir.path();
    let api = ApiModel::default();
    let spec = SourceSpec::Git { repo: r.into(), rev: "v6.1".into() };
    let tree = ParsedTree::load(&spec, &SourceOptions::default()).unwrap();
    let opts = GenerateOptions::new(
        Author::parse("Test Author <test@example.org>").unwrap(),
        MailDate::parse("Mon, 3 Jun 2024 10:00:00 +0000").unwrap(),
    );
    let s = series::generate(tree, &api, SERIES, &opts).unwrap();
    let out = tempfile::tempdir().unwrap();
    let target = BranchTarget { repo: r.into(), rev: "v6.1".into(), name: "kvmtk-series".into() };
    let w = write_series(&s, &WriteOptions { out: out.path().join("s"), force: false, branch: Some(target) }).unwrap();
    // Five commits: step 6 is refused on 6.1 (it would close a lock-order
    // cycle, HW014).
    assert_eq!(w.commits.len(), 5);

    // The series: fixes only, exit 0.
    let cache = FactsCache::in_memory();
    let mut linter = Linter::new(&api, &cache, LintOptions::default());
    let t0 = Instant::now();
    let report = lint_range(&mut linter, r, "v6.1..kvmtk-series").unwrap().finish(None);
    let total = t0.elapsed();
    assert_eq!(report.steps.len(), 5);
    assert_eq!(report.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), w.commits);
    for st in &report.steps {
        assert!(st.introduced.is_empty(), "{} introduces {:?}", st.subject, st.introduced);
    }
    let fixed: Vec<String> =
        report.steps.iter().flat_map(|s| s.fixed.iter().map(|f| format!("{} {}", f.rule, f.function))).collect();
    for expected in ["HW001 kvm_arch_hardware_enable", "HW004 hardware_enable_all", "HW005 hardware_enable_nolock"] {
        assert!(fixed.iter().any(|f| f == expected), "{expected} not fixed: {fixed:?}");
    }
    assert!(report.new.findings.is_empty());
    assert_eq!(report.exit_code(Severity::Note), 0);
    let stats = cache.stats();
    eprintln!("lint v6.1..kvmtk-series (with the blob cache): {:.0} ms in all, cache {stats:?}", ms(total));
    for st in &report.steps {
        eprintln!("  {:.0} ms  {}", ms(st.elapsed.unwrap_or_default()), st.subject);
    }
    // Each commit touches a few files: only those were parsed again.
    let files =
        linter.load(&spec).unwrap().files.iter().filter(|f| f.path.ends_with(".c") || f.path.ends_with(".h")).count();
    assert!(stats.parsed < files + 20, "parsed {} files for a base of {files}", stats.parsed);

    // The same commits without the cache and memo: load, parse, check each.
    eprintln!("without the cache (load + parse + check per commit):");
    for (id, st) in w.commits.iter().zip(&report.steps) {
        let t = Instant::now();
        let parsed =
            ParsedTree::load(&SourceSpec::Git { repo: r.into(), rev: id.clone() }, &SourceOptions::default()).unwrap();
        let full = check(&parsed, &api, &RuleSelection::default());
        eprintln!("  {:.0} ms  {} ({} findings)", ms(t.elapsed()), st.subject, full.findings.len());
    }

    // Re-introduced warts on top of the series.
    let tip = repo.revparse_single("kvmtk-series").unwrap().id();
    let src = String::from_utf8(read_at(&repo, "kvmtk-series", KVM_MAIN)).unwrap();
    let walk = with_unlocked_walk(&src);
    let c1 = commit_file(&repo, "wart", tip, KVM_MAIN, walk.as_bytes(), "KVM: Walk vm_list when a CPU comes online\n");
    let c2 = commit_file(
        &repo,
        "wart",
        c1,
        KVM_MAIN,
        with_current_cpu_mask(&walk).as_bytes(),
        "KVM: Track the CPUs with virtualization enabled in a cpumask\n",
    );
    let builder = lint_range(&mut linter, r, "kvmtk-series..wart").unwrap();
    let introduced = builder.introduced();
    let report = builder.finish(None);
    assert_eq!(report.steps.len(), 2);
    assert_eq!(report.steps[0].id, c1.to_string());
    assert_eq!(report.steps[1].id, c2.to_string());
    let hw001: Vec<_> = report.steps[0].introduced.iter().map(|f| (f.rule.as_str(), f.function.as_str())).collect();
    assert_eq!(hw001, [("HW001", "kvm_online_cpu")]);
    let hw005: Vec<_> = report.steps[1].introduced.iter().map(|f| (f.rule.as_str(), f.function.as_str())).collect();
    assert_eq!(hw005, [("HW005", "hardware_enable_nolock")]);
    let walk_finding = report.new.findings.iter().find(|f| f.rule == "HW001").unwrap();
    assert_eq!(walk_finding.evidence[0].context, "cpuhp_online", "{walk_finding:?}");
    assert!(walk_finding.related.iter().any(|r| r.message.contains("list_add()")), "{walk_finding:?}");
    assert_eq!(report.exit_code(Severity::Warning), 1);
    let text = render_report(&report, LintFormat::Text);
    assert!(text.contains("introduces HW001 warning common kvm_online_cpu (vm_list, list_for_each_entry)"), "{text}");
    assert!(text.contains("note: root: [cpuhp_online] kvm_online_cpu"), "{text}");
    // HW005 alone is a note: it fails only with --fail-on note.
    let report = lint_range(&mut linter, r, "wart~1..wart").unwrap().finish(None);
    assert_eq!(report.new.findings.iter().map(|f| f.rule).collect::<Vec<_>>(), ["HW005"]);
    assert_eq!(report.exit_code(Severity::Warning), 0);
    assert_eq!(report.exit_code(Severity::Note), 1);

    // A baseline holding both accepts them: exit 0, listed as accepted.
    let baseline = Baseline::empty().with(&introduced);
    let report = lint_range(&mut linter, r, "kvmtk-series..wart").unwrap().finish(Some(&baseline));
    assert!(report.new.findings.is_empty());
    assert_eq!(report.steps[0].accepted.len(), 1);
    assert_eq!(report.exit_code(Severity::Note), 0);
}

/// Commits are checked side by side, a window at a time, and recorded in
/// order: the report is the same whatever the number of threads (one
/// window or several), each step against its own parent.
#[test]
fn a_range_checked_in_parallel_reports_as_one_checked_in_order() {
    const VZ: &str = "arch/mips/kvm/vz.c";
    let (dir, repo, base) = repo_from_dir(&fixture("default"), "base");
    let vz = read_at(&repo, "base", VZ);
    let touched = ["arch/x86/kvm/x86.c", "virt/kvm/kvm_main.c", "arch/arm64/kvm/arm.c", "arch/s390/kvm/kvm-s390.c"];
    let mut commits = Vec::new();
    let mut parent = base;
    for i in 0..12 {
        parent = match i {
            // vz.c loses its heavy enable (HW012 fixed), then gets it back.
            3 => commit_file(&repo, "topic", parent, VZ, b"/* empty */\n", "KVM: MIPS: drop VZ\n"),
            7 => commit_file(&repo, "topic", parent, VZ, &vz, "KVM: MIPS: bring VZ back\n"),
            _ => {
                let path = touched[i % touched.len()];
                let mut bytes = read_at(&repo, &parent.to_string(), path);
                bytes.extend_from_slice(format!("/* edit {i} */\n").as_bytes());
                commit_file(&repo, "topic", parent, path, &bytes, &format!("KVM: edit {i}\n"))
            }
        };
        commits.push(parent.to_string());
    }
    let api = ApiModel::default();
    let lint_with = |threads: usize| {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        pool.install(|| {
            let cache = FactsCache::in_memory();
            let mut linter = Linter::new(&api, &cache, LintOptions::default());
            lint_range(&mut linter, dir.path(), "base..topic").unwrap().finish(None)
        })
    };
    // One thread: a window of 8 commits, then 4. Three: one window of 12.
    let (one, three) = (lint_with(1), lint_with(3));
    assert_eq!(render_report(&one, LintFormat::Json), render_report(&three, LintFormat::Json));
    for report in [&one, &three] {
        assert_eq!(report.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>(), commits);
        for (k, st) in report.steps.iter().enumerate() {
            let fixed: Vec<&str> = st.fixed.iter().map(|f| f.rule.as_str()).collect();
            let introduced: Vec<&str> = st.introduced.iter().map(|f| f.rule.as_str()).collect();
            match k {
                3 => assert!(fixed.contains(&"HW012") && introduced.is_empty(), "{k}: {fixed:?} {introduced:?}"),
                7 => assert!(introduced.contains(&"HW012") && fixed.is_empty(), "{k}: {fixed:?} {introduced:?}"),
                _ => assert!(fixed.is_empty() && introduced.is_empty(), "{k}: {fixed:?} {introduced:?}"),
            }
        }
        assert_eq!(report.steps[3].fixed.len(), report.steps[7].introduced.len());
    }

    // The same commits as numbered patches on the base: windows of two
    // trees (one thread) or six (three threads), the same verdicts.
    let mut files = Vec::new();
    let mut from = base;
    for (n, id) in commits.iter().enumerate() {
        let to = git2::Oid::from_str(id).unwrap();
        let mail = format_patch(&repo, from, to, &format!("edit {n}")).replacen(
            "Subject: [PATCH] ",
            &format!("Subject: [PATCH {}/{}] ", n + 1, commits.len()),
            1,
        );
        let path = dir.path().join(format!("{:04}.patch", n + 1));
        std::fs::write(&path, mail).unwrap();
        files.push(path);
        from = to;
    }
    let patches = patchgen::lint::load_patches(&files).unwrap();
    let spec = SourceSpec::Git { repo: dir.path().into(), rev: "base".into() };
    let verdicts = |r: &analyzer::lint::LintReport| -> Vec<(Vec<String>, Vec<String>)> {
        r.steps
            .iter()
            .map(|s| {
                let fps = |v: &[analyzer::lint::FindingSummary]| v.iter().map(|f| f.fingerprint.clone()).collect();
                (fps(&s.introduced), fps(&s.fixed))
            })
            .collect()
    };
    for threads in [1, 3] {
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let mailed = pool.install(|| {
            let cache = FactsCache::in_memory();
            let mut linter = Linter::new(&api, &cache, LintOptions::default());
            patchgen::lint::lint_patches(&mut linter, &spec, &patches).unwrap().finish(None)
        });
        assert_eq!(mailed.steps.len(), commits.len());
        assert_eq!(verdicts(&mailed), verdicts(&one), "{threads} threads");
    }
}
