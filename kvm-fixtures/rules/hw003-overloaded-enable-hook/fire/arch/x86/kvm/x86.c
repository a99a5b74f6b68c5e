// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW003, fire tree: x86-like arch code.  The vendor's per-CPU
 * enable/disable sit behind an ops table, as VMX/SVM do behind kvm_x86_ops.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <asm/msr.h>

struct foo_host_msrs {
	bool initialized;
	u64 star;
	u64 lstar;
};

static DEFINE_PER_CPU(struct foo_host_msrs, host_msr_cache);

struct foo_vendor_ops {
	int (*cpu_enable)(void);
	void (*cpu_disable)(void);
};

static int vendor_cpu_enable(void)
{
	if (cr4_read_shadow() & X86_CR4_VMXE)
		return -EBUSY;

	cr4_set_bits(X86_CR4_VMXE);
	return 0;
}

static void vendor_cpu_disable(void)
{
	cr4_clear_bits(X86_CR4_VMXE);
}

static struct foo_vendor_ops vendor_ops = {
	.cpu_enable = vendor_cpu_enable,
	.cpu_disable = vendor_cpu_disable,
};

static void foo_snapshot_host_msrs(void)
{
	struct foo_host_msrs *m = this_cpu_ptr(&host_msr_cache);

	rdmsrl_safe(MSR_STAR, &m->star);
	rdmsrl_safe(MSR_LSTAR, &m->lstar);
}

/*
 * Enables the CPU, snapshots host state while at it, and marks the clocks
 * of existing guests for an update.
 */
int foo_arch_cpu_up(void)
{
	struct kvm *kvm;
	int r;

	foo_snapshot_host_msrs();

	r = vendor_ops.cpu_enable();
	if (r)
		return r;

	mutex_lock(&guest_list_lock);
	list_for_each_entry(kvm, &guest_list, link)
		kvm->clock_dirty = true;
	mutex_unlock(&guest_list_lock);
	return 0;
}

void foo_arch_cpu_down(void)
{
	vendor_ops.cpu_disable();
}

int foo_arch_guest_init(struct kvm *kvm, unsigned long type)
{
	if (type)
		return -EINVAL;
	return 0;
}

void foo_arch_guest_destroy(struct kvm *kvm)
{
}

static int __init x86_foo_init(void)
{
	return foo_core_init(sizeof(struct kvm_vcpu), THIS_MODULE);
}
module_init(x86_foo_init);

static void __exit x86_foo_exit(void)
{
	foo_core_exit();
}
module_exit(x86_foo_exit);
