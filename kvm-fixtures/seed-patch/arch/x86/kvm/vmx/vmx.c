// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/x86/kvm/vmx/vmx.c (Linux 6.1 shape): VMXON/VMXOFF as
 * the vendor hardware_{en,dis}able ops, and the module init that hands the
 * init ops to common kvm_init().
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/virtext.h>

MODULE_LICENSE("GPL");

struct vmcs;

struct vcpu_vmx {
	struct kvm_vcpu vcpu;
	struct vmcs *loaded_vmcs;
};

struct kvm_vmx {
	struct kvm kvm;
	unsigned int tss_addr;
};

static bool __read_mostly enable_ept = 1;

static DEFINE_PER_CPU(struct vmcs *, vmxarea);

static int kvm_cpu_vmxon(u64 vmxon_pointer)
{
	int r;

	cr4_set_bits(X86_CR4_VMXE);

	/* VMXON faults if the firmware left VMX locked off. */
	r = __cpu_vmxon(vmxon_pointer);
	if (r)
		cr4_clear_bits(X86_CR4_VMXE);
	return r;
}

static int vmx_hardware_enable(void)
{
	int cpu = raw_smp_processor_id();
	u64 phys_addr = __pa(per_cpu(vmxarea, cpu));
	int r;

	if (cr4_read_shadow() & X86_CR4_VMXE)
		return -EBUSY;

	intel_pt_handle_vmx(1);

	r = kvm_cpu_vmxon(phys_addr);
	if (r) {
		intel_pt_handle_vmx(0);
		return r;
	}

	if (enable_ept)
		ept_sync_global();

	return 0;
}

static void vmx_hardware_disable(void)
{
	vmclear_local_loaded_vmcss();

	if (cpu_vmxoff())
		kvm_spurious_fault();

	intel_pt_handle_vmx(0);
}

static void vmx_hardware_unsetup(void)
{
}

static int vmx_vm_init(struct kvm *kvm)
{
	return 0;
}

static int vmx_check_processor_compat(void)
{
	return 0;
}

static int cpu_has_kvm_support(void)
{
	return cpu_has_vmx();
}

static int vmx_disabled_by_bios(void)
{
	return !boot_cpu_has(X86_FEATURE_MSR_IA32_FEAT_CTL) ||
	       !boot_cpu_has(X86_FEATURE_VMX);
}

static __init int hardware_setup(void)
{
	return 0;
}

static struct kvm_x86_ops vmx_x86_ops __initdata = {
	.name = "kvm_intel",

	.hardware_unsetup = vmx_hardware_unsetup,

	.hardware_enable = vmx_hardware_enable,
	.hardware_disable = vmx_hardware_disable,

	.vm_size = sizeof(struct kvm_vmx),
	.vm_init = vmx_vm_init,
};

static struct kvm_x86_init_ops vmx_init_ops __initdata = {
	.cpu_has_kvm_support = cpu_has_kvm_support,
	.disabled_by_bios = vmx_disabled_by_bios,
	.check_processor_compatibility = vmx_check_processor_compat,
	.hardware_setup = hardware_setup,

	.runtime_ops = &vmx_x86_ops,
};

static void __exit vmx_exit(void)
{
	kvm_exit();
}
module_exit(vmx_exit);

static int __init vmx_init(void)
{
	int r;

	r = kvm_init(&vmx_init_ops, sizeof(struct vcpu_vmx),
		     __alignof__(struct vcpu_vmx), THIS_MODULE);
	if (r)
		return r;

	return 0;
}
module_init(vmx_init);
