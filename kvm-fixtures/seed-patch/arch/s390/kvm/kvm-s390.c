// SPDX-License-Identifier: GPL-2.0
/*
 * Miniature of arch/s390/kvm/kvm-s390.c (Linux 6.1 shape): SIE needs no
 * per-CPU enabling.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>

int kvm_arch_hardware_enable(void)
{
	/* SIE is always available: nothing to turn on. */
	return 0;
}

int kvm_arch_check_processor_compat(void *opaque)
{
	return 0;
}

int kvm_arch_hardware_setup(void *opaque)
{
	return 0;
}

void kvm_arch_hardware_unsetup(void)
{
}

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	kvm->arch.epoch = 0;
	return 0;
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
}

int kvm_arch_init(void *opaque)
{
	return 0;
}

void kvm_arch_exit(void)
{
}

static int __init kvm_s390_init(void)
{
	return kvm_init(NULL, sizeof(struct kvm_vcpu), 0, THIS_MODULE);
}

static void __exit kvm_s390_exit(void)
{
	kvm_exit();
}

module_init(kvm_s390_init);
module_exit(kvm_s390_exit);
