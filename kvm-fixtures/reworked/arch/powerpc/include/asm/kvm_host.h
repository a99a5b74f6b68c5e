/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __POWERPC_KVM_HOST_H__
#define __POWERPC_KVM_HOST_H__

/* Miniature of arch/powerpc/include/asm/kvm_host.h (Linux 6.12 shape). */

struct kvm;
struct kvmppc_ops;

struct kvm_vcpu_arch {
	u64 pc;
};

struct kvm_arch {
	unsigned int lpid;
	struct kvmppc_ops *kvm_ops;
};


#endif /* __POWERPC_KVM_HOST_H__ */
