// SPDX-License-Identifier: GPL-2.0-only
/*
 * wait-under-lock series fixture: x86-like arch code.  The vendor's per-CPU
 * enable/disable sit behind an ops table, as VMX/SVM do behind kvm_x86_ops,
 * and adding a guest starts its background worker and waits until the
 * worker has joined the creator's cgroups.
 */

#include <linux/kvm_host.h>
#include <linux/cgroup.h>
#include <linux/completion.h>
#include <linux/kthread.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <asm/msr.h>

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
	if (kvm->worker)
		kthread_stop(kvm->worker);
}

struct guest_worker_start {
	struct kvm *kvm;
	struct task_struct *parent;
	struct completion init_done;
	int err;
};

static int guest_worker_fn(void *data)
{
	struct guest_worker_start *start = data;
	struct kvm *kvm = start->kvm;
	int err;

	/* Account the worker's time to the guest's owner. */
	err = cgroup_attach_task_all(start->parent, current);
	start->err = err;
	complete(&start->init_done);
	if (err)
		return err;

	while (!kthread_should_stop()) {
		kvm->clock_dirty = false;
		schedule_timeout_interruptible(HZ);
	}
	return 0;
}

int foo_arch_guest_added(struct kvm *kvm)
{
	struct guest_worker_start start = {
		.kvm = kvm,
		.parent = current,
	};
	struct task_struct *thread;

	init_completion(&start.init_done);
	thread = kthread_run(guest_worker_fn, &start, "foo-guest-%d",
			     task_pid_nr(current));
	if (IS_ERR(thread))
		return PTR_ERR(thread);

	wait_for_completion(&start.init_done);
	if (start.err)
		return start.err;

	kvm->worker = thread;
	return 0;
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
