// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/powerpc/kvm/powerpc.c (Linux 6.1 shape): nothing to
 * enable, the VM hooks go through the HV/PR ops table.
 */

#include <linux/kvm_host.h>
#include <asm/kvm_ppc.h>

int kvm_arch_hardware_enable(void)
{
	return 0;
}

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
	if (!kvmppc_hv_ops)
		return -EINVAL;

	kvm->arch.kvm_ops = kvmppc_hv_ops;
	return kvmppc_core_init_vm(kvm);
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
	kvmppc_core_destroy_vm(kvm);
}

int kvm_arch_init(void *opaque)
{
	return 0;
}

void kvm_arch_exit(void)
{
}
