// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/mips/kvm/mips.c (Linux 6.12 shape): the arch hooks
 * forward to the VZ callbacks, now fixed at build time.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/kvm_host.h>

int kvm_arch_enable_virtualization_cpu(void)
{
	return kvm_mips_callbacks->enable_virtualization_cpu();
}

void kvm_arch_disable_virtualization_cpu(void)
{
	kvm_mips_callbacks->disable_virtualization_cpu();
}

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	kvm->arch.gpa_mm.pgd = kvm_pgd_alloc();
	if (!kvm->arch.gpa_mm.pgd)
		return -ENOMEM;

	return 0;
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
	kvm_mips_free_gpa_pt(kvm);
}

static int __init kvm_mips_init(void)
{
	int ret;

	if (WARN(!cpu_has_vz, "kvm: no VZ support\n"))
		return -ENODEV;

	ret = kvm_mips_entry_setup();
	if (ret)
		return ret;

	ret = kvm_mips_emulation_init();
	if (ret)
		return ret;

	return kvm_init(sizeof(struct kvm_vcpu), 0, THIS_MODULE);
}

static void __exit kvm_mips_exit(void)
{
	kvm_exit();
}

module_init(kvm_mips_init);
module_exit(kvm_mips_exit);
