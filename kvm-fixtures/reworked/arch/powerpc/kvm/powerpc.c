// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/powerpc/kvm/powerpc.c (Linux 6.12 shape): PPC opted
 * out of the generic enabling (no CONFIG_KVM_GENERIC_HARDWARE_ENABLING), the
 * VM hooks go through the HV/PR ops table.
 */

#include <linux/kvm_host.h>
#include <asm/kvm_ppc.h>

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	if (!kvmppc_hv_ops)
		return -EINVAL;

	kvm->arch.kvm_ops = kvmppc_hv_ops;
	return kvmppc_core_init_vm(kvm);
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
	kvmppc_core_destroy_vm(kvm);
}
