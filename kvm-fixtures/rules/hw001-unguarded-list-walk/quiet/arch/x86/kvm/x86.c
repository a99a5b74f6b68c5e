// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW001, quiet tree: x86-like arch code.  The vendor's per-CPU
 * enable/disable sit behind an ops table, as VMX/SVM do behind kvm_x86_ops.
 */

#include <linux/kvm_host.h>
#include <linux/cpuhotplug.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <asm/msr.h>

#define FOO_REQ_CLOCK_UPDATE	3

static int foo_clock_state;

struct foo_vendor_ops {
	int (*cpu_enable)(void);
	void (*cpu_disable)(void);
};

static int vendor_cpu_enable(void)
{
	if (cr4_read_shadow() & X86_CR4_VMXE)
		return -EBUSY;

	cr4_set_bits(X86_CR4_VMXE);
	return 0;
}

static void vendor_cpu_disable(void)
{
	cr4_clear_bits(X86_CR4_VMXE);
}

static struct foo_vendor_ops vendor_ops = {
	.cpu_enable = vendor_cpu_enable,
	.cpu_disable = vendor_cpu_disable,
};

int foo_arch_cpu_up(void)
{
	return vendor_ops.cpu_enable();
}

void foo_arch_cpu_down(void)
{
	vendor_ops.cpu_disable();
}

int foo_arch_guest_init(struct kvm *kvm, unsigned long type)
{
	if (type)
		return -EINVAL;
	return 0;
}

void foo_arch_guest_destroy(struct kvm *kvm)
{
}

/* (a) ONLINE section: walk under the writers' lock. */
static int foo_clock_cpu_online(unsigned int cpu)
{
	struct kvm_vcpu *vcpu;
	struct kvm *kvm;
	int i;

	mutex_lock(&guest_list_lock);
	list_for_each_entry(kvm, &guest_list, link) {
		foo_for_each_vcpu(i, vcpu, kvm)
			if (vcpu->cpu == cpu)
				set_bit(FOO_REQ_CLOCK_UPDATE, &vcpu->requests);
	}
	mutex_unlock(&guest_list_lock);
	return 0;
}

/*
 * (b) syscore resume: interrupts off and every other CPU offline, nobody
 * can be adding or removing guests.
 */
static void foo_clock_resume(void)
{
	struct kvm *kvm;

	list_for_each_entry(kvm, &guest_list, link)
		kvm->clock_dirty = true;
}

static struct syscore_ops foo_clock_syscore_ops = {
	.resume = foo_clock_resume,
};

/*
 * (c) IPI callback: the initiator holds guest_list_lock and waits for all
 * CPUs, so the list cannot change under the walk.
 */
static void foo_clock_resync_cpu(void *unused)
{
	int cpu = smp_processor_id();
	struct kvm_vcpu *vcpu;
	struct kvm *kvm;
	int i;

	list_for_each_entry(kvm, &guest_list, link) {
		foo_for_each_vcpu(i, vcpu, kvm) {
			if (vcpu->cpu == cpu)
				set_bit(FOO_REQ_CLOCK_UPDATE, &vcpu->requests);
		}
	}
}

static int foo_clock_pm_notify(struct notifier_block *nb, unsigned long action,
			       void *data)
{
	if (action != PM_POST_SUSPEND)
		return NOTIFY_DONE;

	mutex_lock(&guest_list_lock);
	on_each_cpu(foo_clock_resync_cpu, NULL, 1);
	mutex_unlock(&guest_list_lock);
	return NOTIFY_OK;
}

static struct notifier_block foo_clock_pm_nb = {
	.notifier_call = foo_clock_pm_notify,
};

int foo_arch_setup(void)
{
	int r;

	r = cpuhp_setup_state_nocalls(CPUHP_AP_ONLINE_DYN, "foo/clock:online",
				      foo_clock_cpu_online, NULL);
	if (r < 0)
		return r;

	foo_clock_state = r;
	register_syscore_ops(&foo_clock_syscore_ops);
	register_pm_notifier(&foo_clock_pm_nb);
	return 0;
}

void foo_arch_teardown(void)
{
	unregister_pm_notifier(&foo_clock_pm_nb);
	unregister_syscore_ops(&foo_clock_syscore_ops);
	cpuhp_remove_state_nocalls(foo_clock_state);
}

static int __init x86_foo_init(void)
{
	return foo_core_init(sizeof(struct kvm_vcpu), THIS_MODULE);
}
module_init(x86_foo_init);

static void __exit x86_foo_exit(void)
{
	foo_core_exit();
}
module_exit(x86_foo_exit);
