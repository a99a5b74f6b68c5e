// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/mips/kvm/mips.c (Linux 6.1 shape): the arch hooks
 * forward to the callbacks installed by the VZ backend at kvm_arch_init().
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/kvm_host.h>

struct kvm_mips_callbacks *kvm_mips_callbacks;
EXPORT_SYMBOL_GPL(kvm_mips_callbacks);

int kvm_arch_hardware_enable(void)
{
	return kvm_mips_callbacks->hardware_enable();
}

void kvm_arch_hardware_disable(void)
{
	kvm_mips_callbacks->hardware_disable();
}

int kvm_arch_hardware_setup(void *opaque)
{
	return 0;
}

/* Nothing to check: in particular, no hardware enabling here. */
int kvm_arch_check_processor_compat(void *opaque)
{
	return 0;
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

int kvm_arch_init(void *opaque)
{
	if (kvm_mips_callbacks) {
		kvm_err("kvm: module already exists\n");
		return -EEXIST;
	}

	return kvm_mips_emulation_init(&kvm_mips_callbacks);
}

void kvm_arch_exit(void)
{
	kvm_mips_callbacks = NULL;
}

static int __init kvm_mips_init(void)
{
	int ret;

	if (WARN(!cpu_has_vz, "kvm: no VZ support\n"))
		return -ENODEV;

	ret = kvm_mips_entry_setup();
	if (ret)
		return ret;

	return kvm_init(NULL, sizeof(struct kvm_vcpu), 0, THIS_MODULE);
}

static void __exit kvm_mips_exit(void)
{
	kvm_exit();
}

module_init(kvm_mips_init);
module_exit(kvm_mips_exit);
