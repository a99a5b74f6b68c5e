/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef _ASM_X86_KVM_HOST_H
#define _ASM_X86_KVM_HOST_H

/*
 * Miniature of arch/x86/include/asm/kvm_host.h (Linux 6.12 shape): the
 * vendor ops table whose {en,dis}able_virtualization_cpu members VMX and SVM
 * fill in, and the static calls generated from it.
 */

#include <linux/static_call.h>

struct kvm;
struct kvm_vcpu;

struct kvm_vcpu_arch {
	u64 last_host_tsc;
	s64 tsc_offset_adjustment;
};

struct kvm_arch {
	bool backwards_tsc_observed;
	u64 last_tsc_nsec;
	u64 last_tsc_write;
};

struct kvm_x86_ops {
	const char *name;

	int (*check_processor_compatibility)(void);

	int (*enable_virtualization_cpu)(void);
	void (*disable_virtualization_cpu)(void);
	void (*hardware_unsetup)(void);

	unsigned int vm_size;
	int (*vm_init)(struct kvm *kvm);
	void (*vm_destroy)(struct kvm *kvm);
};

struct kvm_x86_init_ops {
	int (*hardware_setup)(void);

	struct kvm_x86_ops *runtime_ops;
};

extern struct kvm_x86_ops kvm_x86_ops;

#define KVM_X86_OP(func) \
	DECLARE_STATIC_CALL(kvm_x86_##func, kvm_x86_ops.func);
#define KVM_X86_OP_OPTIONAL KVM_X86_OP
#include <asm/kvm-x86-ops.h>

#define kvm_x86_call(func) static_call(kvm_x86_##func)

#define __KVM_HAVE_ARCH_VM_ALLOC
static inline struct kvm *kvm_arch_alloc_vm(void)
{
	return __vmalloc(kvm_x86_ops.vm_size, GFP_KERNEL_ACCOUNT | __GFP_ZERO);
}

static inline void kvm_arch_free_vm(struct kvm *kvm)
{
	vfree(kvm);
}

void kvm_spurious_fault(void);

int kvm_x86_vendor_init(struct kvm_x86_init_ops *ops);
void kvm_x86_vendor_exit(void);

#endif /* _ASM_X86_KVM_HOST_H */
