// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/x86/kvm/x86.c (Linux 6.12 shape), plus the seed's
 * step 1: the user-return MSRs are snapshotted on first use, from the MSR
 * write path, instead of in the per-CPU enable hook.  The enable hook still
 * checks compatibility, enables VMX/SVM through kvm_x86_call() and walks
 * vm_list for the TSC fix-up without kvm_lock, as 6.12 does.
 */

#include <linux/kvm_host.h>
#include <linux/cpu.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/smp.h>
#include <linux/user-return-notifier.h>
#include <asm/msr.h>
#include <asm/reboot.h>

#define KVM_MAX_NR_USER_RETURN_MSRS 16

struct kvm_user_return_msrs {
	struct user_return_notifier urn;
	bool registered;
	bool initialized;
	struct kvm_user_return_msr_values {
		u64 host;
		u64 curr;
	} values[KVM_MAX_NR_USER_RETURN_MSRS];
};

u32 __read_mostly kvm_nr_uret_msrs;
static u32 __read_mostly kvm_uret_msrs_list[KVM_MAX_NR_USER_RETURN_MSRS];
static struct kvm_user_return_msrs __percpu *user_return_msrs;

struct kvm_x86_ops kvm_x86_ops __read_mostly;

/* Serializes vendor module (kvm_intel/kvm_amd) initialization. */
static DEFINE_MUTEX(vendor_module_lock);

/* One static call per member listed in kvm-x86-ops.h. */
#define KVM_X86_OP(func) \
	DEFINE_STATIC_CALL_NULL(kvm_x86_##func, kvm_x86_ops.func);
#define KVM_X86_OP_OPTIONAL KVM_X86_OP
#include <asm/kvm-x86-ops.h>

static void kvm_on_user_return(struct user_return_notifier *urn)
{
	struct kvm_user_return_msrs *msrs =
		container_of(urn, struct kvm_user_return_msrs, urn);
	unsigned int slot;

	if (msrs->registered) {
		msrs->registered = false;
		user_return_notifier_unregister(urn);
	}
	for (slot = 0; slot < kvm_nr_uret_msrs; ++slot) {
		if (msrs->values[slot].host != msrs->values[slot].curr) {
			u64 host = msrs->values[slot].host;

			wrmsrl(kvm_uret_msrs_list[slot], host);
			msrs->values[slot].curr = host;
		}
	}
}

static void kvm_user_return_msr_init_cpu(struct kvm_user_return_msrs *msrs)
{
	u64 value;
	int i;

	for (i = 0; i < kvm_nr_uret_msrs; ++i) {
		rdmsrl_safe(kvm_uret_msrs_list[i], &value);
		msrs->values[i].host = value;
		msrs->values[i].curr = value;
	}

	msrs->initialized = true;
}

int kvm_set_user_return_msr(unsigned int slot, u64 value, u64 mask)
{
	unsigned int cpu = smp_processor_id();
	struct kvm_user_return_msrs *msrs = per_cpu_ptr(user_return_msrs, cpu);
	int err;

	/* Called with preemption disabled, from vCPU load/run. */
	if (!msrs->initialized)
		kvm_user_return_msr_init_cpu(msrs);

	value = (value & mask) | (msrs->values[slot].host & ~mask);
	if (value == msrs->values[slot].curr)
		return 0;
	err = wrmsrl_safe(kvm_uret_msrs_list[slot], value);
	if (err)
		return 1;

	msrs->values[slot].curr = value;
	if (!msrs->registered) {
		msrs->urn.on_user_return = kvm_on_user_return;
		user_return_notifier_register(&msrs->urn);
		msrs->registered = true;
	}
	return 0;
}
EXPORT_SYMBOL_GPL(kvm_set_user_return_msr);

static void drop_user_return_notifiers(void)
{
	unsigned int cpu = smp_processor_id();
	struct kvm_user_return_msrs *msrs = per_cpu_ptr(user_return_msrs, cpu);

	if (msrs->registered)
		kvm_on_user_return(&msrs->urn);
}

static inline bool kvm_check_tsc_unstable(void)
{
	return check_tsc_unstable();
}

static int kvm_x86_check_processor_compatibility(void)
{
	int cpu = smp_processor_id();

	WARN_ON(!cpu_online(cpu));

	return kvm_x86_call(check_processor_compatibility)();
}

static void kvm_x86_check_cpu_compat(void *ret)
{
	*(int *)ret = kvm_x86_check_processor_compatibility();
}

/* Called from the reboot/crash path, possibly from NMI context. */
static void kvm_x86_emergency_disable(void)
{
	kvm_x86_ops.disable_virtualization_cpu();
}

void kvm_arch_enable_virtualization(void)
{
	cpu_emergency_register_virt_callback(kvm_x86_emergency_disable);
}

void kvm_arch_disable_virtualization(void)
{
	cpu_emergency_unregister_virt_callback(kvm_x86_emergency_disable);
}

int kvm_arch_enable_virtualization_cpu(void)
{
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long i;
	int ret;
	u64 local_tsc, delta;
	u64 max_tsc = 0;
	bool stable;

	ret = kvm_x86_check_processor_compatibility();
	if (ret)
		return ret;

	ret = kvm_x86_call(enable_virtualization_cpu)();
	if (ret != 0)
		return ret;

	/* Has the TSC gone backwards since a vCPU last ran on this CPU? */
	local_tsc = rdtsc();
	stable = !kvm_check_tsc_unstable();
	list_for_each_entry(kvm, &vm_list, vm_list) {
		kvm_for_each_vcpu(i, vcpu, kvm) {
			if (!stable) {
				if (vcpu->cpu == smp_processor_id())
					kvm_make_request(KVM_REQ_CLOCK_UPDATE,
							 vcpu);
				continue;
			}
			max_tsc = max(max_tsc, vcpu->arch.last_host_tsc);
		}
	}

	if (max_tsc <= local_tsc)
		return 0;

	/* It has: move every vCPU's offset forward by the difference. */
	delta = max_tsc - local_tsc;
	list_for_each_entry(kvm, &vm_list, vm_list) {
		kvm->arch.backwards_tsc_observed = true;
		kvm_for_each_vcpu(i, vcpu, kvm) {
			vcpu->arch.tsc_offset_adjustment += delta;
			kvm_make_request(KVM_REQ_MASTERCLOCK_UPDATE, vcpu);
		}
	}
	return 0;
}

void kvm_arch_disable_virtualization_cpu(void)
{
	kvm_x86_call(disable_virtualization_cpu)();
	drop_user_return_notifiers();
}

/* Install the vendor's ops and point every static call at them. */
static void kvm_ops_update(struct kvm_x86_init_ops *ops)
{
	memcpy(&kvm_x86_ops, ops->runtime_ops, sizeof(kvm_x86_ops));

#define KVM_X86_OP(func) \
	static_call_update(kvm_x86_##func, kvm_x86_ops.func);
#define KVM_X86_OP_OPTIONAL KVM_X86_OP
#include <asm/kvm-x86-ops.h>
}

static int __kvm_x86_vendor_init(struct kvm_x86_init_ops *ops)
{
	int r, cpu;

	if (kvm_x86_ops.enable_virtualization_cpu) {
		pr_err("already loaded vendor module '%s'\n", kvm_x86_ops.name);
		return -EEXIST;
	}

	user_return_msrs = alloc_percpu(struct kvm_user_return_msrs);
	if (!user_return_msrs)
		return -ENOMEM;

	r = ops->hardware_setup();
	if (r != 0)
		goto out_free_percpu;

	kvm_ops_update(ops);

	for_each_online_cpu(cpu) {
		smp_call_function_single(cpu, kvm_x86_check_cpu_compat, &r, 1);
		if (r < 0)
			goto out_unwind_ops;
	}

	return 0;

out_unwind_ops:
	kvm_x86_ops.enable_virtualization_cpu = NULL;
	kvm_x86_call(hardware_unsetup)();
out_free_percpu:
	free_percpu(user_return_msrs);
	return r;
}

int kvm_x86_vendor_init(struct kvm_x86_init_ops *ops)
{
	int r;

	mutex_lock(&vendor_module_lock);
	r = __kvm_x86_vendor_init(ops);
	mutex_unlock(&vendor_module_lock);

	return r;
}
EXPORT_SYMBOL_GPL(kvm_x86_vendor_init);

void kvm_x86_vendor_exit(void)
{
	kvm_x86_call(hardware_unsetup)();
	free_percpu(user_return_msrs);

	mutex_lock(&vendor_module_lock);
	kvm_x86_ops.enable_virtualization_cpu = NULL;
	mutex_unlock(&vendor_module_lock);
}
EXPORT_SYMBOL_GPL(kvm_x86_vendor_exit);

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	if (type)
		return -EINVAL;

	return kvm_x86_call(vm_init)(kvm);
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
	static_call_cond(kvm_x86_vm_destroy)(kvm);
}
