/* SPDX-License-Identifier: GPL-2.0 */
#ifndef ASM_KVM_HOST_H
#define ASM_KVM_HOST_H

/* Miniature of arch/s390/include/asm/kvm_host.h (Linux 6.1 shape). */

struct kvm_vcpu_arch {
	u64 sie_block;
};

struct kvm_arch {
	u64 epoch;
};

static inline void kvm_arch_hardware_disable(void) {}

#endif
