/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_X86_KVM_HOST_H
#define _ASM_X86_KVM_HOST_H

struct kvm_x86_ops {
	int (*enable_virtualization_cpu)(void);
	void (*disable_virtualization_cpu)(void);
	void (*flush_tlb_all)(void);
	void (*sync_state)(void);
};

extern struct kvm_x86_ops kvm_x86_ops;

#define KVM_X86_OP(func) \
	DECLARE_STATIC_CALL(kvm_x86_##func, kvm_x86_ops.func);
KVM_X86_OP(enable_virtualization_cpu)
KVM_X86_OP(disable_virtualization_cpu)
KVM_X86_OP(flush_tlb_all)
#undef KVM_X86_OP

#define kvm_x86_call(func) static_call(kvm_x86_##func)

#endif
