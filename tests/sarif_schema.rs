//! kvmtk's SARIF passes the SARIF 2.1.0 JSON schema: `check` on a fixture
//! with findings and an input warning, on one without findings, and on the
//! real 6.1 tree. The validator catches a broken log (so that the checks
//! above can fail).

use std::path::{Path, PathBuf};
use std::process::Command;

#[path = "../test-support/kernel_cache.rs"]
mod kernel_cache_support;
#[path = "../test-support/sarif_schema.rs"]
mod sarif_schema;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn sarif_of(tree: &Path) -> String {
    let o = Command::new(env!("CARGO_BIN_EXE_kvmtk"))
        .args(["check", tree.to_str().unwrap(), "--no-cache", "--format", "sarif"])
        .output()
        .expect("run kvmtk");
    assert!(o.status.code().is_some_and(|c| c <= 1), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout).unwrap()
}

#[test]
fn fixture_sarif_validates() {
    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    let fire = root().join("kvm-fixtures/rules/hw001-unguarded-list-walk/fire");
    assert!(Command::new("cp").arg("-r").arg(&fire).arg(&tree).status().unwrap().success());
    std::fs::write(tree.join("arch/x86/kvm/broken.c"), "int f(void) { return ) ; }\n").unwrap();
    let sarif = sarif_of(&tree);
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert_eq!(log["runs"][0]["results"].as_array().unwrap().len(), 1);
    assert!(!log["runs"][0]["invocations"][0]["toolExecutionNotifications"].as_array().unwrap().is_empty());
    sarif_schema::validate(&sarif).unwrap_or_else(|e| panic!("{e}\n{sarif}"));
    let quiet = sarif_of(&root().join("kvm-fixtures/rules/hw001-unguarded-list-walk/quiet"));
    sarif_schema::validate(&quiet).unwrap_or_else(|e| panic!("{e}\n{quiet}"));
}

#[test]
fn real_6_1_sarif_validates() {
    let Some(tree) = kernel_cache_support::kernel_tree("linux-6.1") else { return };
    let sarif = sarif_of(&tree);
    let log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    assert!(log["runs"][0]["results"].as_array().unwrap().len() >= 10);
    sarif_schema::validate(&sarif).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn the_validator_rejects_what_the_schema_forbids() {
    let sarif = sarif_of(&root().join("kvm-fixtures/rules/hw001-unguarded-list-walk/fire"));
    let mut log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    log["runs"][0]["results"][0]["level"] = "fatal".into();
    assert!(sarif_schema::validate(&log.to_string()).is_err(), "an unknown level");
    let mut log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    log["version"] = "2.0.0".into();
    assert!(sarif_schema::validate(&log.to_string()).is_err(), "another version");
    let mut log: serde_json::Value = serde_json::from_str(&sarif).unwrap();
    log["runs"][0]["results"][0]["locations"][0]["physicalLocation"]["region"]["startLine"] = 0.into();
    assert!(sarif_schema::validate(&log.to_string()).is_err(), "line 0");
}
