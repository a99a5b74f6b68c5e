/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H

/*
 * Miniature kvm_host.h for the wait-under-lock series fixture.  Same structure as the
 * kernel's (common code calls per-arch hooks declared here), but every
 * KVM-specific name is different, so that a rule matching on names rather
 * than on mechanisms misses.
 */

#include <linux/types.h>
#include <linux/list.h>
#include <linux/mutex.h>
#include <linux/refcount.h>
#include <linux/slab.h>

#define FOO_MAX_VCPUS		8
#define FOO_CREATE_GUEST	0xae01
#define FOO_RESYNC		0xae02

struct kvm_vcpu {
	struct kvm *kvm;
	int cpu;
	unsigned long requests;
	u64 last_host_tsc;
};

struct kvm {
	struct list_head link;
	refcount_t users;
	int nr_vcpus;
	struct kvm_vcpu *vcpus[FOO_MAX_VCPUS];
	unsigned long arch_id;
	bool clock_dirty;
	struct task_struct *worker;
};

#define foo_for_each_vcpu(idx, vcpup, kvm)				\
	for (idx = 0; idx < (kvm)->nr_vcpus && ((vcpup) = (kvm)->vcpus[idx]); \
	     idx++)

extern struct mutex guest_list_lock;
extern struct list_head guest_list;

int foo_core_init(unsigned int vcpu_size, struct module *module);
void foo_core_exit(void);

/* Per-arch hooks; the common code has __weak defaults for the optional ones. */
int foo_arch_setup(void);
void foo_arch_teardown(void);
int foo_arch_cpu_up(void);
void foo_arch_cpu_down(void);
int foo_arch_guest_init(struct kvm *kvm, unsigned long type);
void foo_arch_guest_destroy(struct kvm *kvm);
int foo_arch_guest_added(struct kvm *kvm);
void foo_arch_guest_removing(struct kvm *kvm);

#endif
