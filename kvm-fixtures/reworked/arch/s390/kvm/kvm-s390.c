// SPDX-License-Identifier: GPL-2.0
/*
 * Miniature of arch/s390/kvm/kvm-s390.c (Linux 6.12 shape): SIE needs no
 * per-CPU enabling, and s390 opted out of the generic enabling.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	kvm->arch.epoch = 0;
	return 0;
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
}

static int __init kvm_s390_init(void)
{
	return kvm_init(sizeof(struct kvm_vcpu), 0, THIS_MODULE);
}

static void __exit kvm_s390_exit(void)
{
	kvm_exit();
}

module_init(kvm_s390_init);
module_exit(kvm_s390_exit);
