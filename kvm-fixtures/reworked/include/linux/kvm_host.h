/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H

/*
 * Miniature of include/linux/kvm_host.h (Linux 6.12 shape): the VM and vCPU
 * structures and the arch hooks used by hardware enabling and by VM
 * creation/destruction.
 */

#include <linux/types.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/refcount.h>
#include <linux/slab.h>
#include <linux/xarray.h>

#include <asm/kvm_host.h>

#define KVM_REQ_CLOCK_UPDATE		8
#define KVM_REQ_MASTERCLOCK_UPDATE	9

struct kvm_vcpu {
	struct kvm *kvm;
	int cpu;
	int vcpu_idx;
	unsigned long requests;
	struct kvm_vcpu_arch arch;
};

struct kvm {
	struct mutex lock;
	struct mm_struct *mm;
	struct xarray vcpu_array;
	atomic_t online_vcpus;
	struct list_head vm_list;
	struct kvm_arch arch;
	refcount_t users_count;
	struct mmu_notifier mmu_notifier;
};

/* Walk the online vCPUs of @kvm; @idx is an unsigned long. */
#define kvm_for_each_vcpu(idx, vcpup, kvm)				\
	for (idx = 0; idx < atomic_read(&(kvm)->online_vcpus) &&	\
		      ((vcpup) = xa_load(&(kvm)->vcpu_array, idx)); idx++)

static inline void kvm_make_request(int req, struct kvm_vcpu *vcpu)
{
	set_bit(req, &vcpu->requests);
}

extern struct mutex kvm_lock;
extern struct list_head vm_list;

int kvm_init(unsigned int vcpu_size, unsigned int vcpu_align,
	     struct module *module);
void kvm_exit(void);

int kvm_irqfd_init(void);
void kvm_irqfd_exit(void);

void kvm_get_kvm(struct kvm *kvm);
void kvm_put_kvm(struct kvm *kvm);

#ifndef __KVM_HAVE_ARCH_VM_ALLOC
static inline struct kvm *kvm_arch_alloc_vm(void)
{
	return kzalloc(sizeof(struct kvm), GFP_KERNEL_ACCOUNT);
}

static inline void kvm_arch_free_vm(struct kvm *kvm)
{
	kfree(kvm);
}
#endif

#ifdef CONFIG_KVM_GENERIC_HARDWARE_ENABLING
/*
 * kvm_arch_{enable,disable}_virtualization() run on one CPU, under
 * kvm_usage_lock, right after the 0 => 1 and right before the 1 => 0
 * transitions of kvm_usage_count.
 */
void kvm_arch_enable_virtualization(void);
void kvm_arch_disable_virtualization(void);

/*
 * kvm_arch_{enable,disable}_virtualization_cpu() run on every online CPU
 * while kvm_usage_count is non-zero, from the CPU hotplug ONLINE callbacks
 * and from syscore suspend/resume/shutdown.
 */
int kvm_arch_enable_virtualization_cpu(void);
void kvm_arch_disable_virtualization_cpu(void);

extern bool kvm_rebooting;
#endif

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type);
void kvm_arch_destroy_vm(struct kvm *kvm);
int kvm_arch_post_init_vm(struct kvm *kvm);
void kvm_arch_pre_destroy_vm(struct kvm *kvm);

#endif
