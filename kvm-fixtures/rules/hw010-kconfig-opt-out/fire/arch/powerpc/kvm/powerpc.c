// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW010 (Kconfig opt-out), fire tree: powerpc-like arch code.  Nothing to enable
 * per CPU (the common __weak hooks are kept), but the arch counts running
 * guests itself, for SMP and split-core code outside KVM to consult.
 */

#include <linux/atomic.h>
#include <linux/cpu.h>
#include <linux/kvm_host.h>
#include <linux/module.h>

static atomic_t hv_guest_count;

static void hv_guest_activated(void)
{
	cpus_read_lock();
	atomic_inc(&hv_guest_count);
	cpus_read_unlock();
}

static void hv_guest_deactivated(void)
{
	cpus_read_lock();
	atomic_dec(&hv_guest_count);
	cpus_read_unlock();
}

bool hv_mode_busy(void)
{
	return atomic_read(&hv_guest_count) != 0;
}
EXPORT_SYMBOL_GPL(hv_mode_busy);

int foo_arch_guest_init(struct kvm *kvm, unsigned long type)
{
	kvm->arch_id = foo_alloc_lpid();
	if ((long)kvm->arch_id < 0)
		return -ENOMEM;

	if (!cpu_has_feature(CPU_FTR_ARCH_300))
		hv_guest_activated();

	return 0;
}

void foo_arch_guest_destroy(struct kvm *kvm)
{
	if (!cpu_has_feature(CPU_FTR_ARCH_300))
		hv_guest_deactivated();

	foo_free_lpid(kvm->arch_id);
}

static int ppc_foo_init(void)
{
	return foo_core_init(sizeof(struct kvm_vcpu), THIS_MODULE);
}

static void ppc_foo_exit(void)
{
	foo_core_exit();
}

module_init(ppc_foo_init);
module_exit(ppc_foo_exit);
