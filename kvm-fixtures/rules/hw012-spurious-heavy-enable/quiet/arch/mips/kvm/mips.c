// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW012, quiet tree: mips-like arch code.  The per-CPU hooks
 * forward to a callbacks table installed by the VZ backend at setup.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/foo_vz.h>

struct foo_mips_callbacks *foo_mips_callbacks;

int foo_arch_cpu_up(void)
{
	return foo_mips_callbacks->cpu_enable();
}

void foo_arch_cpu_down(void)
{
	foo_mips_callbacks->cpu_disable();
}

int foo_arch_check_cpu(void)
{
	return foo_mips_callbacks->check_cpu();
}

int foo_arch_setup(void)
{
	if (foo_mips_callbacks)
		return -EEXIST;

	return foo_vz_install(&foo_mips_callbacks);
}

void foo_arch_teardown(void)
{
	foo_mips_callbacks = NULL;
}

int foo_arch_guest_init(struct kvm *kvm, unsigned long type)
{
	return 0;
}

void foo_arch_guest_destroy(struct kvm *kvm)
{
}

static int __init mips_foo_init(void)
{
	return foo_core_init(sizeof(struct kvm_vcpu), THIS_MODULE);
}
module_init(mips_foo_init);
