// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/x86/kvm/vmx/vmx.c (Linux 6.12 shape): VMXON/VMXOFF as
 * the vendor {en,dis}able_virtualization_cpu ops, and the module init that
 * sets up the vendor ops before registering /dev/kvm through kvm_init().
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

static int vmx_enable_virtualization_cpu(void)
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

	return 0;
}

static void vmx_disable_virtualization_cpu(void)
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

static bool kvm_is_vmx_supported(void)
{
	return cpu_has_vmx() && boot_cpu_has(X86_FEATURE_MSR_IA32_FEAT_CTL) &&
	       boot_cpu_has(X86_FEATURE_VMX);
}

static __init int hardware_setup(void)
{
	return 0;
}

static struct kvm_x86_ops vmx_x86_ops __initdata = {
	.name = KBUILD_MODNAME,

	.check_processor_compatibility = vmx_check_processor_compat,

	.hardware_unsetup = vmx_hardware_unsetup,

	.enable_virtualization_cpu = vmx_enable_virtualization_cpu,
	.disable_virtualization_cpu = vmx_disable_virtualization_cpu,

	.vm_size = sizeof(struct kvm_vmx),
	.vm_init = vmx_vm_init,
};

static struct kvm_x86_init_ops vmx_init_ops __initdata = {
	.hardware_setup = hardware_setup,

	.runtime_ops = &vmx_x86_ops,
};

static void __exit vmx_exit(void)
{
	kvm_exit();
	kvm_x86_vendor_exit();
}
module_exit(vmx_exit);

static int __init vmx_init(void)
{
	int r;

	if (!kvm_is_vmx_supported())
		return -EOPNOTSUPP;

	r = kvm_x86_vendor_init(&vmx_init_ops);
	if (r)
		return r;

	/* /dev/kvm goes live here: everything must be ready. */
	r = kvm_init(sizeof(struct vcpu_vmx), __alignof__(struct vcpu_vmx),
		     THIS_MODULE);
	if (r)
		goto err_kvm_init;

	return 0;

err_kvm_init:
	kvm_x86_vendor_exit();
	return r;
}
module_init(vmx_init);
