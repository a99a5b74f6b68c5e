// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/powerpc/kvm/book3s_hv_builtin.c (Linux 6.12 shape):
 * the built-in "is HV KVM active" counter that SMP bringup and split-core
 * code consult.  It mirrors what the common kvm_usage_count already knows.
 */

#include <linux/atomic.h>
#include <linux/cpu.h>
#include <linux/kvm_host.h>
#include <asm/kvm_ppc.h>

static atomic_t hv_vm_count;

void kvm_hv_vm_activated(void)
{
	cpus_read_lock();
	atomic_inc(&hv_vm_count);
	cpus_read_unlock();
}
EXPORT_SYMBOL_GPL(kvm_hv_vm_activated);

void kvm_hv_vm_deactivated(void)
{
	cpus_read_lock();
	atomic_dec(&hv_vm_count);
	cpus_read_unlock();
}
EXPORT_SYMBOL_GPL(kvm_hv_vm_deactivated);

bool kvm_hv_mode_active(void)
{
	return atomic_read(&hv_vm_count) != 0;
}
