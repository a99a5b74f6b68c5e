//! Resource bounds of the analysis: a 10,000-function call chain and a
//! 2,000-function call cycle reached from several roots with different
//! lock sets. Propagation must terminate, keep at most
//! `MAX_STATES_PER_FUNCTION` reach states per function, give witnesses
//! (bounded at 10,000 steps), and stay in reasonable time and memory.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use analyzer::api::ApiModel;
use analyzer::contexts::{MAX_STATES_PER_FUNCTION, MAX_WITNESS_STEPS};
use analyzer::pipeline::ParsedTree;
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec};

const CHAIN: usize = 10_000;
const CYCLE: usize = 2_000;

fn generated_tree() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("kvmtk-bounds-").tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("virt/kvm")).unwrap();
    std::fs::create_dir_all(root.join("include/linux")).unwrap();
    std::fs::write(root.join("include/linux/kvm_host.h"), "struct kvm;\nint kvm_init(void);\n").unwrap();
    let mut c = String::from("#include <linux/kvm_host.h>\n\nstatic DEFINE_MUTEX(la);\nstatic DEFINE_MUTEX(lb);\nstatic DEFINE_RAW_SPINLOCK(lc);\nLIST_HEAD(vm_list);\n\n");
    // The chain: chain_k calls chain_k+1; every 7th takes a lock around it.
    for k in 0..CHAIN {
        let next = if k + 1 < CHAIN { format!("chain_{}()", k + 1) } else { "cyc_0()".to_string() };
        if k % 7 == 3 {
            writeln!(c, "static int chain_{k}(void)\n{{\n\tint r;\n\n\tmutex_lock(&la);\n\tr = {next};\n\tmutex_unlock(&la);\n\treturn r;\n}}\n").unwrap();
        } else {
            writeln!(c, "static int chain_{k}(void)\n{{\n\treturn {next};\n}}\n").unwrap();
        }
    }
    // The cycle: cyc_k calls cyc_k+1 (mod CYCLE) and, every 100th, a walk of vm_list.
    for k in 0..CYCLE {
        let next = (k + 1) % CYCLE;
        if k % 100 == 0 {
            writeln!(c, "static int cyc_{k}(void)\n{{\n\tstruct kvm *kvm;\n\n\tlist_for_each_entry(kvm, &vm_list, vm_list)\n\t\tcyc_{next}();\n\treturn 0;\n}}\n").unwrap();
        } else {
            writeln!(c, "static int cyc_{k}(void)\n{{\n\treturn cyc_{next}();\n}}\n").unwrap();
        }
    }
    // Roots entering the chain and the cycle under different locks and contexts.
    c.push_str("static int __init chain_init(void)\n{\n\treturn chain_0();\n}\nmodule_init(chain_init);\n\n");
    c.push_str("static void cyc_ipi(void *unused)\n{\n\tcyc_500();\n}\n\n");
    c.push_str("int kvm_init(void)\n{\n\tmutex_lock(&lb);\n\ton_each_cpu(cyc_ipi, NULL, 1);\n\tmutex_unlock(&lb);\n\traw_spin_lock(&lc);\n\tcyc_1000();\n\traw_spin_unlock(&lc);\n\treturn 0;\n}\n");
    c.push_str("static int __init other_init(void)\n{\n\treturn kvm_init();\n}\nmodule_init(other_init);\n");
    std::fs::write(root.join("virt/kvm/kvm_main.c"), c).unwrap();
    dir
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .map(|v| v.trim().trim_end_matches(" kB").trim().parse().unwrap_or(0))
        })
        .unwrap_or(0)
}

#[test]
fn a_long_chain_and_a_big_cycle_terminate_within_bounds() {
    let dir = generated_tree();
    let started = Instant::now();
    let parsed = ParsedTree::load(&SourceSpec::Dir(dir.path().into()), &SourceOptions::default()).expect("load");
    // Only the missing documentation files are warned about.
    let parse_warnings: Vec<_> = parsed.warnings.iter().filter(|w| !w.message.starts_with("not found")).collect();
    assert_eq!(parse_warnings, Vec::<&analyzer::pipeline::InputWarning>::new(), "the generated tree parses cleanly");
    let api = ApiModel::default();
    let analyses = parsed.analyze_all(&api);
    assert_eq!(analyses.len(), 1, "common code only");
    let a = &analyses[0];
    let prog = &a.program;
    let id = |name: &str| *prog.lookup_any(name).first().unwrap_or_else(|| panic!("{name} not linked"));
    // Everything on the chain and the cycle is reached, within the bound.
    let mut total_states = 0;
    for name in (0..CHAIN).map(|k| format!("chain_{k}")).chain((0..CYCLE).map(|k| format!("cyc_{k}"))) {
        let n = a.reaches(id(&name)).len();
        assert!(n >= 1, "{name} not reached");
        assert!(n <= MAX_STATES_PER_FUNCTION, "{name}: {n} states");
        total_states += n;
    }
    // The cycle is entered from module init (through the chain, with `la`
    // not held at its end), from an IPI and under a raw spinlock.
    let cyc = a.reaches(id("cyc_0"));
    let contexts: std::collections::BTreeSet<&str> = cyc.iter().map(|r| r.key.context.as_str()).collect();
    assert!(contexts.contains("module_init") && contexts.contains("ipi"), "{contexts:?}");
    // Witnesses are rebuilt from parents and stop at 10,000 steps, saying so.
    let last = id(&format!("chain_{}", CHAIN - 1));
    let w = a.witness(last, 0, None);
    // chain_init -> chain_0 -> ... -> chain_9999 is 10,001 steps: the last
    // 10,000 are kept (chain_init is not), after a step marking the cut.
    assert_eq!(w.len(), MAX_WITNESS_STEPS + 1);
    assert_eq!(w[0].function, "...");
    assert!(w[0].via.as_deref().is_some_and(|v| v.contains("witness cut")), "{:?}", w[0]);
    assert_eq!(w[1].function, "chain_0");
    assert!(w.iter().all(|s| s.function != "chain_init") && w.last().unwrap().function == "chain_9999");
    let w = a.witness(id("chain_5000"), 0, None);
    assert_eq!(w.len(), 5_002, "chain_init -> chain_0 -> ... -> chain_5000");
    assert_eq!(w[0].function, "chain_init");
    let w = a.witness(id("cyc_1999"), 0, None);
    assert!(!w.is_empty() && w.len() <= MAX_WITNESS_STEPS + 1, "{}", w.len());
    // The rules run on it too.
    let report = analyzer::check::check(&parsed, &api, &RuleSelection::default());
    assert_eq!(report.warnings.len(), parsed.warnings.len());
    let took = started.elapsed();
    let rss = peak_rss_kib();
    eprintln!("bounds: {total_states} reach states, {took:?}, peak RSS {rss} KiB");
    assert!(took < Duration::from_secs(120), "took {took:?}");
    assert!(rss < 1024 * 1024, "peak RSS {rss} KiB");
}
