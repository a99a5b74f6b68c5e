// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/powerpc/kvm/book3s.c (Linux 6.1 shape): dispatch of
 * the VM hooks to the HV backend, and the module init calling kvm_init().
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/kvm_ppc.h>

struct kvmppc_ops *kvmppc_hv_ops;
EXPORT_SYMBOL_GPL(kvmppc_hv_ops);

int kvmppc_core_init_vm(struct kvm *kvm)
{
	return kvm->arch.kvm_ops->init_vm(kvm);
}

void kvmppc_core_destroy_vm(struct kvm *kvm)
{
	kvm->arch.kvm_ops->destroy_vm(kvm);
}

static int kvmppc_book3s_init(void)
{
	return kvm_init(NULL, sizeof(struct kvm_vcpu), 0, THIS_MODULE);
}

static void kvmppc_book3s_exit(void)
{
	kvm_exit();
}

module_init(kvmppc_book3s_init);
module_exit(kvmppc_book3s_exit);
