//! The parser on the real Linux 6.1 and 6.12 KVM trees: recovery numbers
//! and the facts the rules depend on.

mod parse_common;

use analyzer::facts::{Callee, LoopKind, Stmt};
use analyzer::parse::{parse_files, parse_files_with, ParseOptions};
use parse_common::*;

/// Plain vs recovered error nodes over all KVM files of a tree.
fn recovery(version: &str, max_files_after: usize, max_nodes_after: u32) {
    let Some(root) = kernel_tree(version) else {
        return;
    };
    let files = kvm_files(&root);
    let facts = parse_files_with(&files, ParseOptions { measure_plain: true });
    let (mut fp, mut fr, mut np, mut nr) = (0, 0, 0u32, 0u32);
    for f in &facts {
        let q = f.parse_quality;
        fp += usize::from(q.error_nodes_plain > 0);
        fr += usize::from(q.error_nodes_recovered > 0);
        np += q.error_nodes_plain;
        nr += q.error_nodes_recovered;
        assert_eq!(q.error_nodes_recovered > 0, !f.diagnostics.is_empty(), "{}", f.path);
        if std::env::var_os("KVMTK_DUMP_DIAGNOSTICS").is_some() {
            for d in &f.diagnostics {
                println!("{}:{}:{}: {}", f.path, d.span.line, d.span.col, d.message);
            }
        }
    }
    println!(
        "linux-{version}: {} files; plain: {fp} files with errors, {np} error nodes; \
         recovered: {fr} files, {nr} nodes",
        files.len()
    );
    assert!(fp > 100, "plain parse should struggle on the kernel ({fp} files)");
    assert!(fr <= max_files_after, "{fr} files still have errors (max {max_files_after})");
    assert!(nr <= max_nodes_after, "{nr} error nodes remain (max {max_nodes_after})");
}

#[test]
fn recovery_6_1() {
    recovery("6.1", 16, 70);
}

#[test]
fn recovery_6_12() {
    recovery("6.12", 24, 170);
}

#[test]
fn key_facts_6_1() {
    let Some(root) = kernel_tree("6.1") else {
        return;
    };
    let facts = parse_files(&kvm_files(&root));

    // hardware_enable_all() broadcasts hardware_enable_nolock.
    let f = function(&facts, "virt/kvm/kvm_main.c", "hardware_enable_all");
    let c = calls(&f.body);
    let on_each = c.iter().find(|c| c.callee == Callee::Direct("on_each_cpu".into())).expect("on_each_cpu call");
    assert_eq!(on_each.args[0].ident.as_deref(), Some("hardware_enable_nolock"));

    // x86's enable hook: static call, then the vm_list walk.
    let f = function(&facts, "arch/x86/kvm/x86.c", "kvm_arch_hardware_enable");
    assert!(calls(&f.body)
        .iter()
        .any(|c| c.callee == Callee::StaticCall { key: "kvm_x86_hardware_enable".into(), via_macro: None }));
    let mut walks = Vec::new();
    visit_stmts(&f.body, &mut |s| {
        if let Stmt::Loop { kind: LoopKind::Iterator { macro_name, args }, .. } = s {
            walks.push((macro_name.clone(), args.clone()));
        }
    });
    let (_, args) = walks.iter().find(|(m, _)| m == "list_for_each_entry").expect("list_for_each_entry loop");
    assert_eq!(args[1].ident.as_deref(), Some("vm_list"));
    assert!(args[1].address_of);

    let main = file(&facts, "virt/kvm/kvm_main.c");
    let g = main.globals.iter().find(|g| g.name == "kvm_count_lock").expect("kvm_count_lock");
    assert_eq!(g.define_macro.as_deref(), Some("DEFINE_RAW_SPINLOCK"));
    assert!(g.is_static);
    assert_eq!(
        &main_text(&root, "virt/kvm/kvm_main.c")[g.name_span.start as usize..g.name_span.end as usize],
        b"kvm_count_lock"
    );
    let g = main.globals.iter().find(|g| g.name == "cpus_hardware_enabled").expect("cpumask");
    assert_eq!(g.type_text, "cpumask_var_t");
    let g = main.globals.iter().find(|g| g.name == "kvm_lock").expect("kvm_lock");
    assert_eq!(g.define_macro.as_deref(), Some("DEFINE_MUTEX"));
    let g = main.globals.iter().find(|g| g.name == "vm_list").expect("vm_list");
    assert_eq!(g.define_macro.as_deref(), Some("LIST_HEAD"));
    let g = main.globals.iter().find(|g| g.name == "kvm_rebooting").expect("kvm_rebooting");
    assert!(g.attributes.contains(&"__visible".to_string()), "{:?}", g.attributes);
    assert!(main
        .top_level_macros
        .iter()
        .any(|m| m.name == "EXPORT_SYMBOL_GPL"
            && m.args.first().and_then(|a| a.ident.as_deref()) == Some("kvm_rebooting")));

    let si = main.initializers.iter().find(|i| i.struct_type == "syscore_ops").expect("syscore_ops initializer");
    let b = si.fields.iter().find(|b| b.field == "suspend").expect(".suspend");
    assert_eq!(b.value_ident.as_deref(), Some("kvm_suspend"));

    let vmx = file(&facts, "arch/x86/kvm/vmx/vmx.c");
    let ops = vmx.initializers.iter().find(|i| i.var_name == "vmx_x86_ops").expect("vmx_x86_ops");
    assert_eq!(ops.struct_type, "kvm_x86_ops");
    let b = ops.fields.iter().find(|b| b.field == "hardware_enable").expect(".hardware_enable");
    assert_eq!(b.value_ident.as_deref(), Some("vmx_hardware_enable"));
    assert!(vmx.top_level_macros.iter().any(|m| m.name == "module_init"));

    let f = function(&facts, "virt/kvm/kvm_main.c", "kvm_arch_post_init_vm");
    assert!(f.is_weak());

    let x86 = file(&facts, "arch/x86/kvm/x86.c");
    let g = x86.globals.iter().find(|g| g.name == "kvm_x86_ops").expect("kvm_x86_ops");
    assert_eq!(g.type_text, "struct kvm_x86_ops");
    assert!(g.attributes.contains(&"__read_mostly".to_string()));

    cpuhp(&facts, "CPUHP_AP_KVM_STARTING");
}

fn main_text(root: &std::path::Path, rel: &str) -> Vec<u8> {
    std::fs::read(root.join(rel)).unwrap()
}

fn cpuhp(facts: &[analyzer::facts::FileFacts], kvm_state: &str) {
    let h = file(facts, "include/linux/cpuhotplug.h");
    let e = h.enums.iter().find(|e| e.name == "cpuhp_state").expect("enum cpuhp_state");
    let pos = |n: &str| e.enumerators.iter().position(|x| x.name == n);
    let online = pos("CPUHP_AP_ONLINE").expect("CPUHP_AP_ONLINE");
    let kvm = pos(kvm_state).expect("KVM state");
    assert!(pos("CPUHP_OFFLINE") < Some(online));
    assert!(pos("CPUHP_AP_ONLINE_DYN") > Some(online));
    if kvm_state.ends_with("STARTING") {
        assert!(kvm < online);
    } else {
        assert!(kvm > online);
    }
    let dyn_end = &e.enumerators[pos("CPUHP_AP_ONLINE_DYN_END").unwrap()];
    assert!(dyn_end.value_text.as_deref().is_some_and(|v| v.starts_with("CPUHP_AP_ONLINE_DYN + ")));
}

#[test]
fn key_facts_6_12() {
    let Some(root) = kernel_tree("6.12") else {
        return;
    };
    let facts = parse_files(&kvm_files(&root));

    let f = function(&facts, "virt/kvm/kvm_main.c", "kvm_enable_virtualization");
    let g = calls(&f.body)
        .into_iter()
        .find(|c| c.callee == Callee::Direct("guard".into()))
        .expect("guard(mutex)(&kvm_usage_lock)");
    assert_eq!(g.args[0].text, "mutex");
    assert_eq!(g.args[1].ident.as_deref(), Some("kvm_usage_lock"));
    assert!(g.args[1].address_of);

    let f = function(&facts, "virt/kvm/kvm_main.c", "kvm_arch_post_init_vm");
    assert!(f.is_weak());

    let main = file(&facts, "virt/kvm/kvm_main.c");
    let g = main.globals.iter().find(|g| g.name == "virtualization_enabled").expect("per-cpu");
    assert!(g.define_macro.as_deref().is_some_and(|m| m.starts_with("DEFINE_PER_CPU")));
    assert_eq!(g.type_text, "bool");

    let x86 = file(&facts, "arch/x86/kvm/x86.c");
    let any_x86_call = x86.functions.iter().any(|f| {
        calls(&f.body)
            .iter()
            .any(|c| matches!(&c.callee, Callee::StaticCall { via_macro: Some(m), .. } if m == "kvm_x86_call"))
    });
    assert!(any_x86_call);

    cpuhp(&facts, "CPUHP_AP_KVM_ONLINE");
}

/// Prints the parse time of all 6.1 KVM files (meaningful with
/// `cargo test --release`); asserts nothing about speed.
#[test]
fn timing_6_1() {
    let Some(root) = kernel_tree("6.1") else {
        return;
    };
    let files = kvm_files(&root);
    let bytes: usize = files.iter().map(|f| f.2.len()).sum();
    // Best of three: the first run pays for thread start-up and page faults.
    let mut el = std::time::Duration::MAX;
    let mut facts = Vec::new();
    for _ in 0..3 {
        let t = std::time::Instant::now();
        facts = parse_files(&files);
        el = el.min(t.elapsed());
    }
    let t2 = std::time::Instant::now();
    for f in &files {
        let _ = analyzer::parse::recover_idioms(&f.2);
    }
    let mask = t2.elapsed();
    println!(
        "timing: {} files, {:.1} MB parsed in {:.3} s on {} threads (masking alone, 1 thread: {:.3} s); {} functions",
        files.len(),
        bytes as f64 / 1e6,
        el.as_secs_f64(),
        rayon::current_num_threads(),
        mask.as_secs_f64(),
        facts.iter().map(|f| f.functions.len()).sum::<usize>()
    );
}
