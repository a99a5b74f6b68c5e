//! A reviewable snapshot of the full facts of a kernel-style snippet: a
//! change to the parser's output shows up as a diff (`cargo insta review`).

use analyzer::parse::parse_file;

const SRC: &str = "\
// SPDX-License-Identifier: GPL-2.0-only
static DEFINE_RAW_SPINLOCK(usage_lock);
static DEFINE_PER_CPU(bool, hw_on);
static int usage_count;

static void enable_one(void *unused)
{
	int cpu = raw_smp_processor_id();

	if (this_cpu_read(hw_on))
		return;
	this_cpu_write(hw_on, true);
	static_call(arch_enable)();
}

int __weak arch_post_init(struct vm *vm)
{
	return 0;
}

static int enable_all(void)
{
	struct vm *vm;
	int r = 0;

	raw_spin_lock(&usage_lock);
	usage_count++;
	if (usage_count == 1) {
		on_each_cpu(enable_one, NULL, 1);
		list_for_each_entry(vm, &vm_list, node)
			arch_fixup(vm);
	}
	raw_spin_unlock(&usage_lock);
#ifdef CONFIG_GUARDS
	scoped_guard(mutex, &vm_lock) {
		r = arch_post_init(NULL);
	}
#endif
	return r;
}

static struct syscore_ops ops = {
	.suspend = enable_all,
};
module_init(enable_all);
";

#[test]
fn parse_snapshot_kernel_style() {
    let facts = parse_file("virt/vm/main.c", None, SRC.as_bytes());
    insta::with_settings!({
        snapshot_path => concat!(env!("CARGO_MANIFEST_DIR"), "/../snapshots"),
        prepend_module_to_snapshot => false,
    }, {
        insta::assert_json_snapshot!("parse_kernel_style", facts);
    });
}
