// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/x86/kvm/x86.c (Linux 6.1 shape).  The hardware-enable
 * hook does three unrelated things: it snapshots the host values of the
 * user-return MSRs into per-CPU data, enables VMX/SVM through the vendor
 * static call, and compensates unstable/backwards TSCs of every existing VM
 * by walking vm_list without kvm_lock.
 */

#include <linux/kvm_host.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/smp.h>
#include <linux/user-return-notifier.h>
#include <asm/msr.h>

#define KVM_MAX_NR_USER_RETURN_MSRS 16

struct kvm_user_return_msrs {
	struct user_return_notifier urn;
	bool registered;
	struct kvm_user_return_msr_values {
		u64 host;
		u64 curr;
	} values[KVM_MAX_NR_USER_RETURN_MSRS];
};

u32 __read_mostly kvm_nr_uret_msrs;
static u32 __read_mostly kvm_uret_msrs_list[KVM_MAX_NR_USER_RETURN_MSRS];
static struct kvm_user_return_msrs __percpu *user_return_msrs;

struct kvm_x86_ops kvm_x86_ops __read_mostly;

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

static void kvm_user_return_msr_cpu_online(void)
{
	unsigned int cpu = smp_processor_id();
	struct kvm_user_return_msrs *msrs = per_cpu_ptr(user_return_msrs, cpu);
	u64 value;
	int i;

	for (i = 0; i < kvm_nr_uret_msrs; ++i) {
		rdmsrl_safe(kvm_uret_msrs_list[i], &value);
		msrs->values[i].host = value;
		msrs->values[i].curr = value;
	}
}

int kvm_set_user_return_msr(unsigned int slot, u64 value, u64 mask)
{
	unsigned int cpu = smp_processor_id();
	struct kvm_user_return_msrs *msrs = per_cpu_ptr(user_return_msrs, cpu);
	int err;

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

int kvm_arch_hardware_enable(void)
{
	struct kvm *kvm;
	struct kvm_vcpu *vcpu;
	unsigned long i;
	int ret;
	u64 local_tsc, delta;
	u64 max_tsc = 0;
	bool stable;

	kvm_user_return_msr_cpu_online();
	ret = static_call(kvm_x86_hardware_enable)();
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

void kvm_arch_hardware_disable(void)
{
	static_call(kvm_x86_hardware_disable)();
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

int kvm_arch_hardware_setup(void *opaque)
{
	struct kvm_x86_init_ops *ops = opaque;
	int r;

	r = ops->hardware_setup();
	if (r != 0)
		return r;

	kvm_ops_update(ops);
	return 0;
}

void kvm_arch_hardware_unsetup(void)
{
	static_call(kvm_x86_hardware_unsetup)();
}

int kvm_arch_check_processor_compat(void *opaque)
{
	struct kvm_x86_init_ops *ops = opaque;

	WARN_ON(!irqs_disabled());

	return ops->check_processor_compatibility();
}

int kvm_arch_init(void *opaque)
{
	struct kvm_x86_init_ops *ops = opaque;

	if (kvm_x86_ops.hardware_enable) {
		pr_err("kvm: already loaded vendor module '%s'\n",
		       kvm_x86_ops.name);
		return -EEXIST;
	}

	if (!ops->cpu_has_kvm_support()) {
		pr_err_ratelimited("kvm: no hardware support\n");
		return -EOPNOTSUPP;
	}
	if (ops->disabled_by_bios()) {
		pr_err_ratelimited("kvm: support disabled by bios\n");
		return -EOPNOTSUPP;
	}

	user_return_msrs = alloc_percpu(struct kvm_user_return_msrs);
	if (!user_return_msrs)
		return -ENOMEM;

	return 0;
}

void kvm_arch_exit(void)
{
	kvm_x86_ops.hardware_enable = NULL;
	free_percpu(user_return_msrs);
}

int kvm_arch_init_vm(struct kvm *kvm, unsigned long type)
{
	if (type)
		return -EINVAL;

	return static_call(kvm_x86_vm_init)(kvm);
}

void kvm_arch_destroy_vm(struct kvm *kvm)
{
	static_call_cond(kvm_x86_vm_destroy)(kvm);
}
