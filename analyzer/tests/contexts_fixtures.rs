//! The contexts analysis on the fixture trees written for it. Each fixture
//! states its expectations in the code itself: `ctx_leaf("<context>")` names
//! the context its caller runs in, `lk_probe("must: a, b; may: c")` the lock
//! set at that call. The tests read those strings and compare them with what
//! the analysis derived, so every probe is checked.

use std::collections::BTreeSet;
use std::path::PathBuf;

use analyzer::api::ApiModel;
use analyzer::contexts::Analysis;
use analyzer::facts::Callee;
use analyzer::locks::OccurrenceKind;
use analyzer::pipeline::ParsedTree;
use analyzer::source::{SourceOptions, SourceSpec};

fn load(dir: &str) -> ParsedTree {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../kvm-fixtures").join(dir);
    ParsedTree::load(&SourceSpec::Dir(path), &SourceOptions::default()).expect("fixture loads")
}

/// One probe call: (function, text, lock state at the call, the must-held
/// sets on entry of each reach state, the contexts of those states).
type Probe = (String, String, analyzer::locks::LockState, Vec<BTreeSet<String>>, Vec<String>);

/// Every call `probe("text")` in the program.
fn probes<'a>(a: &'a Analysis<'a>, probe: &str) -> Vec<Probe> {
    let mut out = Vec::new();
    for (&id, locks) in &a.locks {
        for o in &locks.occurrences {
            let OccurrenceKind::Call(c) = o.kind else { continue };
            if c.callee != Callee::Direct(probe.to_string()) {
                continue;
            }
            let text = c.args.first().map(|a| a.text.trim().trim_matches('"').to_string()).unwrap_or_default();
            let reach_must =
                a.reaches(id).iter().map(|r| r.key.held_must.names().iter().map(|s| s.to_string()).collect()).collect();
            let contexts = a.reaches(id).iter().map(|r| r.key.context.clone()).collect();
            out.push((a.program.func(id).name.clone(), text, o.state.clone(), reach_must, contexts));
        }
    }
    out.sort_by(|x, y| x.1.cmp(&y.1));
    out
}

/// The context key a `ctx_leaf()` description names.
fn expected_context(desc: &str) -> &'static str {
    let table: &[(&str, &str)] = &[
        ("ipi", "ipi"),
        ("VZ enable", "ipi"),
        ("vendor enable", "ipi"),
        ("vendor flush", "ipi"),
        ("VZ disable", "cpuhp_starting"),
        ("vendor disable", "cpuhp_starting"),
        ("vendor sync", "ioctl"),
        ("cpuhp PREPARE", "cpuhp_prepare"),
        ("cpuhp STARTING", "cpuhp_starting"),
        ("cpuhp ONLINE", "cpuhp_online"),
        ("syscore", "syscore"),
        // syscore_shutdown() runs on the restart path with other CPUs online.
        ("syscore shutdown", "reboot"),
        // A reboot notifier runs before migrate_to_reboot_cpu(): CPU hotplug
        // is still enabled there, unlike syscore shutdown.
        ("reboot notifier", "reboot_notifier"),
        ("module param setter", "module_param"),
        ("PM notifier", "pm"),
        ("CPU PM notifier", "cpu_pm"),
        ("stop_machine", "stop_machine"),
        ("ioctl", "ioctl"),
        ("cycle: module init", "module_init"),
        ("module init", "module_init"),
        ("module exit", "module_init"),
    ];
    // Longest matching prefix.
    table
        .iter()
        .filter(|(p, _)| desc.starts_with(p))
        .max_by_key(|(p, _)| p.len())
        .map(|(_, c)| *c)
        .unwrap_or_else(|| panic!("no expected context for `{desc}`"))
}

#[test]
fn every_context_kind_is_derived() {
    let parsed = load("contexts/all-kinds");
    let api = ApiModel::default();
    let mut checked = 0;
    let mut kinds = BTreeSet::new();
    for arch in parsed.arches() {
        let a = parsed.analyze(arch.as_deref(), &api);
        for (func, desc, _, _, contexts) in probes(&a, "ctx_leaf") {
            if func == "ctx_leaf" {
                continue;
            }
            let want = expected_context(&desc);
            assert!(contexts.iter().any(|c| c == want), "{func}: `{desc}` expects {want}, got {contexts:?}");
            kinds.insert(want);
            checked += 1;
        }
    }
    assert!(checked >= 25, "only {checked} probes checked");
    for k in [
        "ipi",
        "cpuhp_prepare",
        "cpuhp_starting",
        "cpuhp_online",
        "syscore",
        "reboot",
        "reboot_notifier",
        "module_param",
        "pm",
        "cpu_pm",
        "stop_machine",
        "ioctl",
        "module_init",
    ] {
        assert!(kinds.contains(k), "context {k} not covered");
    }
}

#[test]
fn ipi_initiator_locks_serialize_but_are_not_held() {
    let parsed = load("contexts/all-kinds");
    let api = ApiModel::default();
    let a = parsed.analyze(None, &api);
    let id = a.function_named("ctx_ipi_under_lock").expect("ctx_ipi_under_lock");
    let r = a.reaches(id).iter().find(|r| r.key.context == "ipi").expect("ipi reach");
    assert!(r.key.serialized_by.contains_name("ctx_lock"), "{r:?}");
    assert!(!r.key.held_must.contains_name("ctx_lock"), "{r:?}");
}

fn parse_set(spec: &str) -> BTreeSet<String> {
    let spec = spec.split('(').next().unwrap_or("").trim();
    if spec == "none" || spec.is_empty() {
        return BTreeSet::new();
    }
    spec.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect()
}

#[test]
fn every_lock_probe_matches() {
    let parsed = load("contexts/locks");
    let api = ApiModel::default();
    let a = parsed.analyze(None, &api);
    let all = probes(&a, "lk_probe");
    assert!(all.len() >= 25, "only {} lock probes found", all.len());
    for (func, text, state, reach_must, _) in all {
        if func == "lk_probe" {
            continue;
        }
        let mut must_spec = "";
        let mut may_spec = "";
        for part in text.split(';') {
            let part = part.trim();
            if let Some(m) = part.strip_prefix("must:") {
                must_spec = m;
            } else if let Some(m) = part.strip_prefix("may:") {
                may_spec = m;
            }
        }
        let want_must = parse_set(must_spec);
        // Held on entry along every path that reaches the function, plus
        // what the function itself holds at the probe.
        let entry: BTreeSet<String> =
            reach_must.iter().cloned().reduce(|x, y| x.intersection(&y).cloned().collect()).unwrap_or_default();
        let got_must: BTreeSet<String> = state.must.names().iter().map(|s| s.to_string()).chain(entry).collect();
        assert_eq!(got_must, want_must, "{func}: probe `{text}`");
        let want_may = parse_set(may_spec);
        let got_may: BTreeSet<String> =
            state.may.iter().filter(|l| !state.must.contains_name(&l.name)).map(|l| l.name.clone()).collect();
        assert_eq!(got_may, want_may, "{func}: probe `{text}` (may-held)");
    }
}

#[test]
fn unbalanced_locking_is_a_reported_fact() {
    let parsed = load("contexts/locks");
    let api = ApiModel::default();
    let a = parsed.analyze(None, &api);
    let anomalies = |name: &str| {
        let id = a.function_named(name).unwrap_or_else(|| panic!("{name}"));
        a.locks[&id].anomalies.clone()
    };
    let leak = anomalies("lk_leak");
    assert!(
        leak.iter().any(|x| x.kind == analyzer::locks::AnomalyKind::ReturnHolding),
        "lk_leak returns holding a lock: {leak:?}"
    );
    let unb = anomalies("lk_unbalanced_unlock");
    assert!(
        unb.iter().any(|x| x.kind == analyzer::locks::AnomalyKind::ReleaseNotHeld && x.span.line > 0),
        "lk_unbalanced_unlock releases a lock it does not hold: {unb:?}"
    );
}
