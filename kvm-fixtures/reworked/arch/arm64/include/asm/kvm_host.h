/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __ARM64_KVM_HOST_H__
#define __ARM64_KVM_HOST_H__

/* Miniature of arch/arm64/include/asm/kvm_host.h (Linux 6.12 shape). */

struct kvm_vcpu_arch {
	u64 hcr_el2;
};

struct kvm_arch {
	u64 vmid;
};


#endif /* __ARM64_KVM_HOST_H__ */
