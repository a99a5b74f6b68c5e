//! What HW014's lock-order graph cannot model is counted, never guessed: a
//! lock reached through an untyped pointer is a class of its own (never
//! merged with another), a wait for a completion or a work item that
//! cannot be resolved gives no edge. The counts reach the report
//! (`statistics`: JSON, and `--verbose` on standard error).

#[path = "../../test-support/copy_tree.rs"]
mod copy_tree;
use copy_tree::copy_tree;

use std::path::{Path, PathBuf};

use analyzer::api::ApiModel;
use analyzer::check::{check, CheckReport};
use analyzer::lock_order::LockOrderStats;
use analyzer::pipeline::ParsedTree;
use analyzer::rules::RuleSelection;
use analyzer::source::{SourceOptions, SourceSpec};

const FIRE: &str = "kvm-fixtures/rules/hw014-lock-order-cycle/fire";

fn fire() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(FIRE)
}

fn run(dir: &Path) -> CheckReport {
    let parsed = ParsedTree::load(&SourceSpec::Dir(dir.to_path_buf()), &SourceOptions::default()).expect("load");
    check(&parsed, &ApiModel::default(), &RuleSelection::default())
}

fn lock_order(r: &CheckReport) -> &LockOrderStats {
    assert_eq!(r.statistics.len(), 1, "{:?}", r.statistics);
    assert_eq!(r.statistics[0].arch, "common");
    &r.statistics[0].lock_order
}

/// Two helpers reached from the ioctl, each taking a lock through a bare
/// pointer under one global mutex, and waiting for a completion, a work
/// item and a thread passed in: two unknown classes (one per expression,
/// not one for both), one unresolved wait of each kind, and no finding
/// added.
const OPAQUE: &str = r#"
static DEFINE_MUTEX(opaque_outer_lock);

static void opaque_waits(spinlock_t *lock, struct completion *done,
			 struct work_struct *work, struct task_struct *task)
{
	mutex_lock(&opaque_outer_lock);
	spin_lock(lock);
	spin_unlock(lock);
	wait_for_completion(done);
	flush_work(work);
	kthread_stop(task);
	mutex_unlock(&opaque_outer_lock);
}

static void opaque_other(spinlock_t *other)
{
	mutex_lock(&opaque_outer_lock);
	spin_lock(other);
	spin_unlock(other);
	mutex_unlock(&opaque_outer_lock);
}

"#;

#[test]
fn unresolved_locks_and_waits_are_counted_not_guessed() {
    let base = run(&fire());
    let b = lock_order(&base).clone();
    assert!(b.edges >= 24 && b.classes >= 22, "twelve two-class cycles (three share cpu_hotplug_lock): {b:?}");
    assert!(!b.cycle_search_cut);

    let dir = tempfile::tempdir().unwrap();
    let tree = dir.path().join("tree");
    copy_tree(&fire(), &tree);
    let main = tree.join("virt/kvm/kvm_main.c");
    let src = std::fs::read_to_string(&main).unwrap();
    let ioctl = "static long foo_dev_ioctl(";
    let case = "\tcase 15:\n";
    assert!(src.contains(ioctl) && src.contains(case));
    let src = src.replacen(ioctl, &format!("{OPAQUE}{ioctl}"), 1).replacen(
        case,
        "\tcase 16:\n\t\topaque_waits(NULL, NULL, NULL, NULL);\n\t\topaque_other(NULL);\n\t\tbreak;\n\tcase 15:\n",
        1,
    );
    std::fs::write(&main, src).unwrap();
    let with = run(&tree);
    let w = lock_order(&with);

    assert_eq!(w.unknown_classes, b.unknown_classes + 2, "{b:?} -> {w:?}");
    assert_eq!(w.classes, b.classes + 3, "opaque_outer_lock and two unknown classes: {b:?} -> {w:?}");
    assert_eq!(w.edges, b.edges + 2, "outer -> each unknown class, nothing for the waits: {b:?} -> {w:?}");
    assert_eq!(w.unresolved_completion_waits, b.unresolved_completion_waits + 1);
    assert_eq!(w.unresolved_work_waits, b.unresolved_work_waits + 1);
    assert_eq!(w.unresolved_thread_waits, b.unresolved_thread_waits + 1);
    let fps = |r: &CheckReport| r.findings.iter().map(|f| f.fingerprint.clone()).collect::<Vec<_>>();
    assert_eq!(fps(&with), fps(&base), "no finding from what could not be resolved");
}
