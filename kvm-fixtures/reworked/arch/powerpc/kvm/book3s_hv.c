// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/powerpc/kvm/book3s_hv.c (Linux 6.12 shape): the HV
 * backend's VM init/destroy tell the rest of the kernel whether KVM is in
 * use, bypassing the common usage count.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/cputable.h>
#include <asm/kvm_ppc.h>

static int kvmppc_core_init_vm_hv(struct kvm *kvm)
{
	kvm->arch.lpid = kvmppc_alloc_lpid();
	if ((long)kvm->arch.lpid < 0)
		return -ENOMEM;

	/*
	 * POWER9 and later can run guests with the secondary threads
	 * online; older CPUs need them offline while a VM exists.
	 */
	if (!cpu_has_feature(CPU_FTR_ARCH_300))
		kvm_hv_vm_activated();

	return 0;
}

static void kvmppc_core_destroy_vm_hv(struct kvm *kvm)
{
	if (!cpu_has_feature(CPU_FTR_ARCH_300))
		kvm_hv_vm_deactivated();

	kvmppc_free_lpid(kvm->arch.lpid);
}

static struct kvmppc_ops kvm_ops_hv = {
	.init_vm = kvmppc_core_init_vm_hv,
	.destroy_vm = kvmppc_core_destroy_vm_hv,
};

static int kvmppc_book3s_init_hv(void)
{
	kvm_ops_hv.owner = THIS_MODULE;
	kvmppc_hv_ops = &kvm_ops_hv;
	return 0;
}

static void kvmppc_book3s_exit_hv(void)
{
	kvmppc_hv_ops = NULL;
}

module_init(kvmppc_book3s_init_hv);
module_exit(kvmppc_book3s_exit_hv);
MODULE_LICENSE("GPL");
