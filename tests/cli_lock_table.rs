//! `kvmtk refs TREE --verify-lock-table` end to end: exit 0 with every
//! entry confirmed on the whole Debian 6.1 tree (under `CI` it must exist),
//! exit 1 with the verdict per entry in JSON when an entry is wrong.

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache;

use std::process::Command;

fn kvmtk(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_kvmtk")).args(args).output().expect("run kvmtk")
}

#[test]
fn the_embedded_table_is_confirmed_on_full_6_1() {
    let Some(tree) = kernel_cache::kernel_tree("full-6.1") else { return };
    let out = kvmtk(&["refs", tree.to_str().unwrap(), "--verify-lock-table"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    assert!(text.contains(" entries, 9 confirmed\n"), "{text}");
    assert!(
        text.contains("\nconfirmed: stop_machine takes cpu_hotplug_lock (read)\n  taken at kernel/stop_machine.c:"),
        "{text}"
    );
}

#[test]
fn a_wrong_entry_fails_with_its_verdict_in_json() {
    let tree = kernel_cache::workspace_root().join("kvm-fixtures/lock-table");
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model.toml");
    let text = format!(
        "{}\n[[lock_order.takes]]\nfunctions = [\"widget_key_enable\"]\nlock = \"cpu_hotplug_lock\"\nmode = \"read\"\n\
         file = \"kernel/widget_label.c\"\nfunction = \"widget_key_enable\"\nacquire = \"cpus_read_lock\"\n",
        analyzer::api::DEFAULT_API_MODEL
    );
    std::fs::write(&model, text).unwrap();
    let out = kvmtk(&[
        "refs",
        tree.to_str().unwrap(),
        "--verify-lock-table",
        "--api-model",
        model.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let entries = json["entries"].as_array().unwrap();
    let widget = entries.iter().find(|e| e["function"] == "widget_key_enable").expect("the added entry");
    assert_eq!(widget["verdict"], "contradicted");
    assert!(widget["reason"].as_str().unwrap().contains("widget_mutex (write) by mutex_lock()"), "{widget}");
    // The embedded entries name files this small tree does not have.
    let slow_inc = entries.iter().find(|e| e["function"] == "static_key_slow_inc").unwrap();
    assert_eq!(slow_inc["verdict"], "not-found");
}
