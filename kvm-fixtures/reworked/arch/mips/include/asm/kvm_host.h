/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __MIPS_KVM_HOST_H__
#define __MIPS_KVM_HOST_H__

/* Miniature of arch/mips/include/asm/kvm_host.h (Linux 6.12 shape). */

struct kvm;
struct kvm_vcpu;

struct kvm_vcpu_arch {
	unsigned long pc;
};

struct kvm_arch {
	struct mm_struct gpa_mm;
};

struct kvm_mips_callbacks {
	int (*enable_virtualization_cpu)(void);
	void (*disable_virtualization_cpu)(void);
	int (*check_extension)(struct kvm *kvm, long ext);
	int (*vcpu_init)(struct kvm_vcpu *vcpu);
};

extern const struct kvm_mips_callbacks * const kvm_mips_callbacks;
int kvm_mips_emulation_init(void);

/* TLB maintenance, arch/mips/kvm/tlb.c */
void kvm_vz_local_flush_roottlb_all_guests(void);
void kvm_vz_local_flush_guesttlb_all(void);


#endif /* __MIPS_KVM_HOST_H__ */
