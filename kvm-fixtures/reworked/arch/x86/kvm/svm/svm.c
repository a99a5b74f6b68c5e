// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/x86/kvm/svm/svm.c (Linux 6.12 shape): EFER.SVME as the
 * vendor {en,dis}able_virtualization_cpu ops.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <asm/msr.h>

MODULE_LICENSE("GPL");

struct vcpu_svm {
	struct kvm_vcpu vcpu;
	u64 asid_generation;
};

struct kvm_svm {
	struct kvm kvm;
	unsigned int asid;
};

struct svm_cpu_data {
	u64 asid_generation;
	u32 max_asid;
	u32 next_asid;
	u32 min_asid;
	struct page *save_area;
};

DEFINE_PER_CPU(struct svm_cpu_data *, svm_data);

static int svm_enable_virtualization_cpu(void)
{
	struct svm_cpu_data *sd;
	uint64_t efer;
	int me = raw_smp_processor_id();

	rdmsrl(MSR_EFER, efer);
	if (efer & EFER_SVME)
		return -EBUSY;

	sd = per_cpu(svm_data, me);
	if (!sd) {
		pr_err("%s: svm_data is NULL on %d\n", __func__, me);
		return -EINVAL;
	}

	sd->asid_generation = 1;
	sd->next_asid = sd->max_asid + 1;
	sd->min_asid = 1;

	wrmsrl(MSR_EFER, efer | EFER_SVME);
	wrmsrl(MSR_VM_HSAVE_PA, __sme_page_pa(sd->save_area));

	return 0;
}

static void svm_disable_virtualization_cpu(void)
{
	cpu_svm_disable();
	amd_pmu_disable_virt();
}

static void svm_hardware_unsetup(void)
{
}

static int svm_vm_init(struct kvm *kvm)
{
	return 0;
}

static int svm_check_processor_compat(void)
{
	return 0;
}

static bool kvm_is_svm_supported(void)
{
	u64 vm_cr;

	if (!boot_cpu_has(X86_FEATURE_SVM))
		return false;

	rdmsrl(MSR_VM_CR, vm_cr);
	return !(vm_cr & (1 << SVM_VM_CR_SVM_DISABLE));
}

static __init int svm_hardware_setup(void)
{
	return 0;
}

static struct kvm_x86_ops svm_x86_ops __initdata = {
	.name = KBUILD_MODNAME,

	.check_processor_compatibility = svm_check_processor_compat,

	.hardware_unsetup = svm_hardware_unsetup,
	.enable_virtualization_cpu = svm_enable_virtualization_cpu,
	.disable_virtualization_cpu = svm_disable_virtualization_cpu,

	.vm_size = sizeof(struct kvm_svm),
	.vm_init = svm_vm_init,
};

static struct kvm_x86_init_ops svm_init_ops __initdata = {
	.hardware_setup = svm_hardware_setup,

	.runtime_ops = &svm_x86_ops,
};

static void __exit svm_exit(void)
{
	kvm_exit();
	kvm_x86_vendor_exit();
}

static int __init svm_init(void)
{
	int r;

	if (!kvm_is_svm_supported())
		return -EOPNOTSUPP;

	r = kvm_x86_vendor_init(&svm_init_ops);
	if (r)
		return r;

	r = kvm_init(sizeof(struct vcpu_svm), __alignof__(struct vcpu_svm),
		     THIS_MODULE);
	if (r)
		goto err_kvm_init;

	return 0;

err_kvm_init:
	kvm_x86_vendor_exit();
	return r;
}

module_init(svm_init)
module_exit(svm_exit)
