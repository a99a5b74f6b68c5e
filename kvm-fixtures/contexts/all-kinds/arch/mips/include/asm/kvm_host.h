/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __MIPS_KVM_HOST_H__
#define __MIPS_KVM_HOST_H__

struct kvm_mips_callbacks {
	int (*enable_virtualization_cpu)(void);
	void (*disable_virtualization_cpu)(void);
};

extern struct kvm_mips_callbacks *kvm_mips_callbacks;

#endif
