/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H

/* Miniature kvm_host.h for the context fixture. */

#include <linux/types.h>
#include <linux/list.h>
#include <linux/mutex.h>

#include <asm/kvm_host.h>

struct kvm {
	struct mutex lock;
	struct list_head vm_list;
	int nr_vcpus;
	int vcpu_cpu[8];
};

#define ctx_for_each_vcpu_cpu(i, cpu, kvm)				\
	for (i = 0; i < (kvm)->nr_vcpus && ((cpu) = (kvm)->vcpu_cpu[i], 1); i++)

extern struct list_head vm_list;

int kvm_arch_hardware_enable(void);
void kvm_arch_hardware_disable(void);
void kvm_arch_sync(void);

/* Leaves whose context the tests look up; defined nowhere. */
void ctx_leaf(const char *what);

#endif
