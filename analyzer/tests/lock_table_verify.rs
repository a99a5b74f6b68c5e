//! `kvmtk refs TREE --verify-lock-table`: the API model's
//! `[[lock_order.takes]]` entries checked against a kernel tree. Every
//! entry of the embedded model is confirmed on the whole Debian 6.1 tree
//! (`full-6.1`; under `CI` it must exist); on a fixture tree, right and
//! wrong entries get each verdict.

#[path = "../../test-support/kernel_cache.rs"]
mod kernel_cache;

use std::path::PathBuf;

use analyzer::api::{AcquireMode, ApiModel, ExternTakes};
use analyzer::lock_table::{verify_lock_table, LockTableReport, Verdict};
use analyzer::refs::NoProgress;

fn fixture() -> PathBuf {
    kernel_cache::workspace_root().join("kvm-fixtures/lock-table")
}

fn entry(functions: &[&str], lock: &str, mode: AcquireMode, file: &str, function: &str, acquire: &str) -> ExternTakes {
    ExternTakes {
        functions: functions.iter().map(|s| s.to_string()).collect(),
        lock: lock.to_string(),
        mode,
        file: file.to_string(),
        function: function.to_string(),
        acquire: acquire.to_string(),
    }
}

fn verify_fixture(entries: Vec<ExternTakes>) -> LockTableReport {
    let mut api = ApiModel::default();
    api.table.lock_order.takes = entries;
    verify_lock_table(&fixture(), &api, &NoProgress).expect("the fixture tree is checked")
}

#[test]
fn every_entry_of_the_model_is_confirmed_on_full_6_1() {
    let Some(tree) = kernel_cache::kernel_tree("full-6.1") else { return };
    let api = ApiModel::default();
    let report = verify_lock_table(&tree, &api, &NoProgress).expect("full-6.1 is checked");
    assert_eq!(report.entries.len(), api.table.lock_order.takes.len());
    for e in &report.entries {
        assert_eq!(e.verdict, Verdict::Confirmed, "{}: {}", e.function, e.reason);
        let site = e.site.as_ref().expect("a confirmed entry has its site");
        assert!(!e.chain.is_empty() && e.chain[0].function == e.function, "{e:?}");
        // Every other name of the entry reaches the function.
        assert_eq!(e.names.len(), e.functions.iter().filter(|n| **n != e.function).count(), "{e:?}");
        assert!(e.names.iter().all(|n| n.path.last().is_some_and(|s| s.call == e.function)), "{e:?}");
        assert!(site.line > 0);
    }
    // The sites are the real ones (Debian 6.1.192).
    let slow_inc = report.entry("static_key_slow_inc").unwrap();
    let site = slow_inc.site.as_ref().unwrap();
    assert_eq!((site.file.as_str(), site.call.as_str()), ("kernel/jump_label.c", "cpus_read_lock"));
    let by_macro = &slow_inc.names[0];
    assert_eq!(by_macro.name, "static_branch_inc");
    assert_eq!(by_macro.path[0].file, "include/linux/jump_label.h");
    assert!(by_macro.path[0].in_macro);
    // static_key_slow_dec() takes it in its static helper.
    let slow_dec = report.entry("static_key_slow_dec").unwrap();
    assert_eq!(slow_dec.site.as_ref().unwrap().function, "__static_key_slow_dec");
    // mmu_notifier_register() takes it in an inline of another file, on a
    // member of its parameter's type.
    let mmu = report.entry("mmu_notifier_register").unwrap();
    let site = mmu.site.as_ref().unwrap();
    assert_eq!((site.file.as_str(), site.call.as_str()), ("include/linux/mmap_lock.h", "down_write"));
    assert!(report.all_confirmed());
}

#[test]
fn fixture_entries_get_each_verdict() {
    use AcquireMode::{Read, Write};
    let label = "kernel/widget_label.c";
    let report = verify_fixture(vec![
        entry(
            &["widget_key_slow_inc", "widget_branch_inc"],
            "cpu_hotplug_lock",
            Read,
            label,
            "widget_key_slow_inc",
            "cpus_read_lock",
        ),
        entry(
            &["widget_key_slow_dec", "widget_branch_dec"],
            "cpu_hotplug_lock",
            Read,
            label,
            "widget_key_slow_dec",
            "cpus_read_lock",
        ),
        entry(
            &["widget_notifier_register"],
            "struct widget_mm.map_lock",
            Write,
            "mm/widget_notifier.c",
            "widget_notifier_register",
            "widget_map_lock",
        ),
        // Wrong: widget_key_enable() takes widget_mutex, not the hotplug lock.
        entry(
            &["widget_key_enable", "widget_branch_enable"],
            "cpu_hotplug_lock",
            Read,
            label,
            "widget_key_enable",
            "cpus_read_lock",
        ),
        // Wrong mode: the slow path reads the hotplug lock.
        entry(&["widget_key_slow_inc"], "cpu_hotplug_lock", Write, label, "widget_key_slow_inc", "cpus_read_lock"),
        // Wrong name: widget_branch_enable() is a macro over widget_key_enable().
        entry(
            &["widget_key_slow_inc", "widget_branch_enable"],
            "cpu_hotplug_lock",
            Read,
            label,
            "widget_key_slow_inc",
            "cpus_read_lock",
        ),
        entry(&["widget_key_apply"], "cpu_hotplug_lock", Read, label, "widget_key_apply", "cpus_read_lock"),
        entry(
            &["widget_key_slow_inc"],
            "cpu_hotplug_lock",
            Read,
            "kernel/no_such_file.c",
            "widget_key_slow_inc",
            "cpus_read_lock",
        ),
        entry(&["widget_key_gone"], "cpu_hotplug_lock", Read, label, "widget_key_gone", "cpus_read_lock"),
        entry(
            &["widget_key_slow_inc", "widget_branch_gone"],
            "cpu_hotplug_lock",
            Read,
            label,
            "widget_key_slow_inc",
            "cpus_read_lock",
        ),
    ]);
    let verdicts: Vec<Verdict> = report.entries.iter().map(|e| e.verdict).collect();
    use Verdict::*;
    assert_eq!(
        verdicts,
        [
            Confirmed,
            Confirmed,
            Confirmed,
            Contradicted,
            Contradicted,
            Contradicted,
            Unverifiable,
            NotFound,
            NotFound,
            NotFound
        ],
        "{report:#?}"
    );
    let e = &report.entries;
    let site = e[0].site.as_ref().unwrap();
    assert_eq!((site.file.as_str(), site.line, site.call.as_str()), (label, 17, "cpus_read_lock"));
    assert_eq!(e[0].names[0].path[0].file, "include/linux/widget_label.h");
    assert_eq!(
        e[1].chain.iter().map(|s| s.function.as_str()).collect::<Vec<_>>(),
        ["widget_key_slow_dec", "__widget_key_slow_dec"]
    );
    let site = e[2].site.as_ref().unwrap();
    assert_eq!(
        (site.file.as_str(), site.function.as_str(), site.call.as_str()),
        ("include/linux/widget_label.h", "widget_map_lock", "down_write")
    );
    assert!(
        e[3].reason.contains("widget_mutex (write) by mutex_lock() at kernel/widget_label.c:42"),
        "{}",
        e[3].reason
    );
    assert!(e[4].reason.contains("cpu_hotplug_lock (read) by cpus_read_lock()"), "{}", e[4].reason);
    assert!(e[5].reason.contains("`widget_branch_enable` does not reach widget_key_slow_inc()"), "{}", e[5].reason);
    assert!(e[6].reason.contains("function pointers are not followed (kernel/widget_label.c:50"), "{}", e[6].reason);
    assert!(e[7].reason.contains("`kernel/no_such_file.c` is not a file"), "{}", e[7].reason);
    assert!(e[8].reason.contains("defines no function `widget_key_gone`"), "{}", e[8].reason);
    assert!(e[9].reason.contains("`widget_branch_gone` is defined nowhere"), "{}", e[9].reason);
    assert!(!report.all_confirmed());
    let text = analyzer::lock_table::render_text(&report);
    assert!(text.starts_with("[lock_order.takes] checked against "), "{text}");
    assert!(text.contains(": 10 entries, 3 confirmed, 3 contradicted, 3 not found, 1 unverifiable\n"), "{text}");
    assert!(
        text.contains("\ncontradicted: widget_key_enable, widget_branch_enable take cpu_hotplug_lock (read)\n"),
        "{text}"
    );
}

#[test]
fn a_missing_tree_is_an_error_not_a_report() {
    let err = verify_lock_table(&fixture().join("nope"), &ApiModel::default(), &NoProgress).unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}
