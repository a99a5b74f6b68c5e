// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW009, quiet tree: arm64-like arch code.  EL2 state is tracked
 * in an arch per-CPU flag, as arm64 does with kvm_arm_hardware_enabled.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/smp.h>
#include <asm/virt.h>

static DEFINE_PER_CPU(unsigned char, hyp_live);

static void hyp_reset(void)
{
	if (!is_kernel_in_hyp_mode())
		__hyp_reset_vectors();
}

static void hyp_install(void)
{
	hyp_reset();
	if (!is_kernel_in_hyp_mode())
		cpu_init_hyp_mode();
}

static void __foo_hyp_up(void *unused)
{
	if (!__this_cpu_read(hyp_live)) {
		hyp_install();
		__this_cpu_write(hyp_live, 1);
	}
}

static void __foo_hyp_down(void *unused)
{
	if (__this_cpu_read(hyp_live)) {
		hyp_reset();
		__this_cpu_write(hyp_live, 0);
	}
}

int foo_arch_cpu_up(void)
{
	__foo_hyp_up(NULL);
	return 0;
}

void foo_arch_cpu_down(void)
{
	if (!is_protected_kvm_enabled())
		__foo_hyp_down(NULL);
}

int foo_arch_guest_init(struct kvm *kvm, unsigned long type)
{
	kvm->arch_id = type;
	return 0;
}

void foo_arch_guest_destroy(struct kvm *kvm)
{
}

/* Probing the interrupt controller needs EL2 to be up. */
static int foo_probe_el2_features(void)
{
	return foo_vgic_hyp_probe();
}

int foo_arch_setup(void)
{
	int err;

	on_each_cpu(__foo_hyp_up, NULL, 1);

	err = foo_probe_el2_features();

	/* Always bring EL2 down again: the common code owns enabling. */
	on_each_cpu(__foo_hyp_down, NULL, 1);

	return err;
}

void foo_arch_teardown(void)
{
}

static int __init arm_foo_init(void)
{
	return foo_core_init(sizeof(struct kvm_vcpu), THIS_MODULE);
}
module_init(arm_foo_init);
