//! Execution contexts and lock sets on the real kernels (Debian 6.1 and
//! 6.12): the acceptance of the contexts analysis, plus reviewed snapshots
//! of the x86 and arm64 graphs.

#[path = "source_common/mod.rs"]
mod source_common;

use analyzer::api::ApiModel;
use analyzer::contexts::Analysis;
use analyzer::pipeline::ParsedTree;
use analyzer::report::graph::{arch_graph, contexts_of, render_text, GraphReport};
use analyzer::rules::queries::{excluded_by, list_walks};
use analyzer::source::{SourceOptions, SourceSpec};

fn load(version: &str, arch: &str) -> Option<ParsedTree> {
    let dir = source_common::real_kernel(version)?;
    let opts = SourceOptions { arches: Some(vec![arch.to_string()]), ..Default::default() };
    Some(ParsedTree::load(&SourceSpec::Dir(dir), &opts).expect("real tree loads"))
}

/// (context, held, serialized_by, root function) of every reach state.
fn states(a: &Analysis<'_>, name: &str) -> Vec<(String, Vec<String>, Vec<String>, String)> {
    let id = a.function_named(name).unwrap_or_else(|| panic!("{name} not found"));
    a.reaches(id)
        .iter()
        .map(|r| {
            (
                r.key.context.clone(),
                r.key.held_must.names().iter().map(|s| s.to_string()).collect(),
                r.key.serialized_by.names().iter().map(|s| s.to_string()).collect(),
                a.program.func(a.roots[r.key.root].function).name.clone(),
            )
        })
        .collect()
}

fn snapshot_graph(name: &str, parsed: &ParsedTree, a: &Analysis<'_>, focus: &[&str]) {
    let focus: Vec<String> = focus.iter().map(|s| s.to_string()).collect();
    let report = GraphReport {
        tree: format!("linux-{}", name.rsplit_once('_').map(|(v, _)| v.replace('_', ".")).unwrap_or_default()),
        arches: vec![arch_graph(a, &focus)],
        locking_doc: None,
    };
    let _ = parsed;
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_snapshot!(format!("graph_real_{name}"), render_text(&report));
    });
}

#[test]
fn linux_6_1_x86_enable_hook_contexts() {
    let Some(parsed) = load("6.1", "x86") else { return };
    let api = ApiModel::default();
    let a = parsed.analyze(Some("x86"), &api);
    let st = states(&a, "kvm_arch_hardware_enable");
    // (a) IPI from hardware_enable_all while the initiator holds kvm_count_lock.
    assert!(
        st.iter().any(|(c, h, s, _)| c == "ipi" && h.is_empty() && s.contains(&"kvm_count_lock".to_string())),
        "{st:?}"
    );
    // (b) the STARTING-section hotplug callback, with kvm_count_lock held.
    assert!(
        st.iter().any(|(c, h, s, r)| c == "cpuhp_starting"
            && h == &["kvm_count_lock".to_string()]
            && s.contains(&"cpu_hotplug_lock".to_string())
            && r == "kvm_starting_cpu"),
        "{st:?}"
    );
    // (c) syscore resume.
    assert!(st.iter().any(|(c, _, _, r)| c == "syscore" && r == "kvm_resume"), "{st:?}");

    // The vm_list walk inside it: kvm_lock neither held nor serializing in (b) and (c).
    let id = a.function_named("kvm_arch_hardware_enable").unwrap();
    let walks: Vec<_> = list_walks(&a).into_iter().filter(|w| w.function == id && w.head == "vm_list").collect();
    assert!(!walks.is_empty(), "the TSC fix-up walks vm_list");
    for r in a.reaches(id).iter().filter(|r| r.key.context == "cpuhp_starting" || r.key.context == "syscore") {
        for w in &walks {
            assert!(!excluded_by(r, &w.state, "kvm_lock"), "kvm_lock must not guard the walk in {}", r.key.context);
        }
    }
    let ctx = contexts_of(&a, id);
    assert_eq!(ctx.iter().map(|c| c.context.as_str()).collect::<Vec<_>>(), vec!["cpuhp_starting", "ipi", "syscore"]);
    snapshot_graph("6_1_x86", &parsed, &a, &[]);
}

#[test]
fn linux_6_12_x86_enable_hook_contexts() {
    let Some(parsed) = load("6.12", "x86") else { return };
    let api = ApiModel::default();
    let a = parsed.analyze(Some("x86"), &api);
    let st = states(&a, "kvm_arch_enable_virtualization_cpu");
    assert!(st.iter().any(|(c, _, _, r)| c == "cpuhp_online" && r == "kvm_online_cpu"), "{st:?}");
    assert!(st.iter().any(|(c, _, _, r)| c == "syscore" && r == "kvm_resume"), "{st:?}");
    // No IPI path into the enable hook any more.
    assert!(!st.iter().any(|(c, _, _, _)| c == "ipi"), "{st:?}");
    // cpuhp_setup_state() runs the online callback for the CPUs already up
    // while kvm_enable_virtualization() holds kvm_usage_lock through
    // `guard(mutex)(&kvm_usage_lock)`.
    assert!(
        st.iter().any(|(c, _, s, r)| c == "cpuhp_online"
            && s.contains(&"kvm_usage_lock".to_string())
            && r == "kvm_dev_ioctl"),
        "{st:?}"
    );
    // Debian's 6.12 also declares an inline stub in kvm_host.h; take the definition.
    let enable = a
        .program
        .lookup_any("kvm_enable_virtualization")
        .into_iter()
        .find(|&id| a.program.file(id).path == "virt/kvm/kvm_main.c")
        .expect("kvm_enable_virtualization in kvm_main.c");
    let locks = &a.locks[&enable];
    let at_cpuhp = locks
        .occurrences
        .iter()
        .find_map(|o| match o.kind {
            analyzer::locks::OccurrenceKind::Call(c) if c.callee.display() == "cpuhp_setup_state" => Some(&o.state),
            _ => None,
        })
        .expect("cpuhp_setup_state call");
    assert!(at_cpuhp.must.contains_name("kvm_usage_lock"), "guard(mutex) holds kvm_usage_lock: {at_cpuhp:?}");
    snapshot_graph("6_12_x86", &parsed, &a, &[]);
}

#[test]
fn linux_6_1_arm64_init_and_cpu_pm_paths() {
    let Some(parsed) = load("6.1", "arm64") else { return };
    let api = ApiModel::default();
    let a = parsed.analyze(Some("arm64"), &api);
    // init_subsystems() enables on every CPU by IPI at module init.
    let st = states(&a, "_kvm_arch_hardware_enable");
    assert!(st.iter().any(|(c, _, _, r)| c == "ipi" && r == "arm_init"), "{st:?}");
    // The CPU-PM notifier re-inits hyp on low-power exit.
    let st = states(&a, "cpu_hyp_reinit");
    assert!(st.iter().any(|(c, _, _, r)| c == "cpu_pm" && r == "hyp_init_cpu_pm_notifier"), "{st:?}");
    let st = states(&a, "cpu_hyp_reset");
    assert!(st.iter().any(|(c, _, _, _)| c == "cpu_pm"), "{st:?}");
    snapshot_graph("6_1_arm64", &parsed, &a, &["_kvm_arch_hardware_enable", "cpu_hyp_reset"]);
}

#[test]
fn linux_6_12_arm64_init_and_cpu_pm_paths() {
    let Some(parsed) = load("6.12", "arm64") else { return };
    let api = ApiModel::default();
    let a = parsed.analyze(Some("arm64"), &api);
    let st = states(&a, "cpu_hyp_init");
    assert!(st.iter().any(|(c, _, _, r)| c == "ipi" && r == "kvm_arm_init"), "{st:?}");
    assert!(st.iter().any(|(c, _, _, _)| c == "cpuhp_online"), "{st:?}");
    let st = states(&a, "cpu_hyp_reinit");
    assert!(st.iter().any(|(c, _, _, r)| c == "cpu_pm" && r == "hyp_init_cpu_pm_notifier"), "{st:?}");
    snapshot_graph("6_12_arm64", &parsed, &a, &["cpu_hyp_init", "cpu_hyp_reinit"]);
}
