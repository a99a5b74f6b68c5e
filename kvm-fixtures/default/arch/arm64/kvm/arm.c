// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/arm64/kvm/arm.c (Linux 6.1 shape).  arm64 tracks the
 * per-CPU hyp state in its own per-CPU flag and goes around the common
 * enabling logic: init_subsystems() enables EL2 on every CPU from module
 * init and, under protected KVM, leaves it enabled; a CPU-PM notifier
 * resets and re-initialises EL2 across low-power states.
 */

#include <linux/kvm_host.h>
#include <linux/cpu_pm.h>
#include <linux/module.h>
#include <linux/smp.h>
#include <asm/virt.h>

static DEFINE_PER_CPU(unsigned char, kvm_arm_hardware_enabled);

static bool vgic_present;
static u32 hyp_va_bits;

int kvm_arch_hardware_setup(void *opaque)
{
	return 0;
}

int kvm_arch_check_processor_compat(void *opaque)
{
	return 0;
}

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	return kvm_init_stage2_mmu(kvm, type);
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
	kvm_free_stage2_pgd(kvm);
}

static void cpu_hyp_reset(void)
{
	if (!is_kernel_in_hyp_mode())
		__hyp_reset_vectors();
}

static void cpu_hyp_init_context(void)
{
	kvm_init_host_cpu_context(this_cpu_ptr_hyp_sym(kvm_host_data));

	if (!is_kernel_in_hyp_mode())
		cpu_init_hyp_mode();
}

static void cpu_hyp_init_features(void)
{
	cpu_set_hyp_vector();
	kvm_arm_init_debug();

	if (is_kernel_in_hyp_mode())
		kvm_timer_init_vhe();

	if (vgic_present)
		kvm_vgic_init_cpu_hardware();
}

static void cpu_hyp_reinit(void)
{
	cpu_hyp_reset();
	cpu_hyp_init_context();
	cpu_hyp_init_features();
}

static void _kvm_arch_hardware_enable(void *discard)
{
	if (!__this_cpu_read(kvm_arm_hardware_enabled)) {
		cpu_hyp_reinit();
		__this_cpu_write(kvm_arm_hardware_enabled, 1);
	}
}

int kvm_arch_hardware_enable(void)
{
	_kvm_arch_hardware_enable(NULL);
	return 0;
}

static void _kvm_arch_hardware_disable(void *discard)
{
	if (__this_cpu_read(kvm_arm_hardware_enabled)) {
		cpu_hyp_reset();
		__this_cpu_write(kvm_arm_hardware_enabled, 0);
	}
}

void kvm_arch_hardware_disable(void)
{
	if (!is_protected_kvm_enabled())
		_kvm_arch_hardware_disable(NULL);
}

#ifdef CONFIG_CPU_PM
static int hyp_init_cpu_pm_notifier(struct notifier_block *self,
				    unsigned long cmd,
				    void *v)
{
	/*
	 * The per-CPU flag keeps its value across PM_ENTER -> PM_EXIT, so
	 * that PM_EXIT knows whether EL2 has to be brought back.
	 */
	switch (cmd) {
	case CPU_PM_ENTER:
		if (__this_cpu_read(kvm_arm_hardware_enabled))
			cpu_hyp_reset();

		return NOTIFY_OK;
	case CPU_PM_ENTER_FAILED:
	case CPU_PM_EXIT:
		if (__this_cpu_read(kvm_arm_hardware_enabled))
			cpu_hyp_reinit();

		return NOTIFY_OK;

	default:
		return NOTIFY_DONE;
	}
}

static struct notifier_block hyp_init_cpu_pm_nb = {
	.notifier_call = hyp_init_cpu_pm_notifier,
};

static void hyp_cpu_pm_init(void)
{
	if (!is_protected_kvm_enabled())
		cpu_pm_register_notifier(&hyp_init_cpu_pm_nb);
}

static void hyp_cpu_pm_exit(void)
{
	if (!is_protected_kvm_enabled())
		cpu_pm_unregister_notifier(&hyp_init_cpu_pm_nb);
}
#else
static inline void hyp_cpu_pm_init(void)
{
}

static inline void hyp_cpu_pm_exit(void)
{
}
#endif

static int init_subsystems(void)
{
	int err = 0;

	/* EL2 must be up for the vgic and timer probes below. */
	on_each_cpu(_kvm_arch_hardware_enable, NULL, 1);

	hyp_cpu_pm_init();

	err = kvm_vgic_hyp_init();
	switch (err) {
	case 0:
		vgic_present = true;
		break;
	case -ENODEV:
	case -ENXIO:
		vgic_present = false;
		err = 0;
		break;
	default:
		goto out;
	}

	err = kvm_timer_hyp_init(vgic_present);
	if (err)
		goto out;

out:
	/* Under protected KVM, EL2 stays enabled from here on. */
	if (err || !is_protected_kvm_enabled())
		on_each_cpu(_kvm_arch_hardware_disable, NULL, 1);

	return err;
}

static void _kvm_host_prot_finalize(void *arg)
{
	int *err = arg;

	if (WARN_ON(kvm_call_hyp_nvhe(__pkvm_prot_finalize)))
		WRITE_ONCE(*err, -EINVAL);
}

static int do_pkvm_init(u32 hyp_va_bits)
{
	int ret;

	preempt_disable();
	cpu_hyp_init_context();
	ret = kvm_call_hyp_nvhe(__pkvm_init, hyp_va_bits);
	cpu_hyp_init_features();

	/* The hypervisor now owns EL2: stop kvm_arch_hardware_enable(). */
	__this_cpu_write(kvm_arm_hardware_enabled, 1);
	preempt_enable();

	return ret;
}

static int finalize_hyp_mode(void)
{
	int ret = 0;

	if (!is_protected_kvm_enabled())
		return 0;

	on_each_cpu(_kvm_host_prot_finalize, &ret, 1);
	return ret;
}

static int init_hyp_mode(void)
{
	if (is_protected_kvm_enabled())
		return do_pkvm_init(hyp_va_bits);

	return 0;
}

int kvm_arch_init(void *opaque)
{
	int err;

	if (!is_hyp_mode_available()) {
		kvm_info("HYP mode not available\n");
		return -ENODEV;
	}

	if (!is_kernel_in_hyp_mode()) {
		err = init_hyp_mode();
		if (err)
			goto out_err;
	}

	err = init_subsystems();
	if (err)
		goto out_hyp;

	err = finalize_hyp_mode();
	if (err) {
		kvm_err("Failed to finalize Hyp protection\n");
		goto out_hyp;
	}

	return 0;

out_hyp:
	hyp_cpu_pm_exit();
out_err:
	return err;
}

void kvm_arch_exit(void)
{
	kvm_unregister_perf_callbacks();
}

static int __init arm_init(void)
{
	return kvm_init(NULL, sizeof(struct kvm_vcpu), 0, THIS_MODULE);
}

module_init(arm_init);
