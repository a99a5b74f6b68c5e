// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW004 (reboot path), fire tree: x86-like arch code.  The vendor's per-CPU
 * enable/disable sit behind an ops table, as VMX/SVM do behind kvm_x86_ops.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <asm/msr.h>

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

int foo_arch_cpu_up(void)
{
	return vendor_ops.cpu_enable();
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
