/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __POWERPC_KVM_PPC_H__
#define __POWERPC_KVM_PPC_H__

/* Miniature of arch/powerpc/include/asm/kvm_ppc.h (Linux 6.1 shape). */

#include <linux/kvm_host.h>

struct kvmppc_ops {
	struct module *owner;
	int (*init_vm)(struct kvm *kvm);
	void (*destroy_vm)(struct kvm *kvm);
};

extern struct kvmppc_ops *kvmppc_hv_ops;

int kvmppc_core_init_vm(struct kvm *kvm);
void kvmppc_core_destroy_vm(struct kvm *kvm);

#ifdef CONFIG_KVM_BOOK3S_HV_POSSIBLE
void kvm_hv_vm_activated(void);
void kvm_hv_vm_deactivated(void);
bool kvm_hv_mode_active(void);
#else
static inline void kvm_hv_vm_activated(void)
{
}

static inline void kvm_hv_vm_deactivated(void)
{
}

static inline bool kvm_hv_mode_active(void)
{
	return false;
}
#endif

#endif /* __POWERPC_KVM_PPC_H__ */
