// SPDX-License-Identifier: GPL-2.0-only
/*
 * Lock-set fixture: every lock form of the API model, and the control-flow
 * shapes the lock-set analysis must get right.  Each lk_probe() call states
 * the lock set expected at that point ("must" = held on every path, "may" =
 * held on some path).  Everything is reached from module init.
 */

#include <linux/kvm_host.h>
#include <linux/cleanup.h>
#include <linux/cpu.h>
#include <linux/module.h>
#include <linux/preempt.h>
#include <linux/rcupdate.h>
#include <linux/rwsem.h>
#include <linux/spinlock.h>

MODULE_LICENSE("GPL");

static DEFINE_MUTEX(lk_mutex);
static DEFINE_SPINLOCK(lk_spin);
static DEFINE_RAW_SPINLOCK(lk_raw);
static DECLARE_RWSEM(lk_rwsem);

static void lk_mutex_form(void)
{
	mutex_lock(&lk_mutex);
	lk_probe("must: lk_mutex");
	mutex_unlock(&lk_mutex);
	lk_probe("must: none");
}

static void lk_spin_forms(void)
{
	unsigned long flags;

	spin_lock(&lk_spin);
	lk_probe("must: lk_spin");
	spin_unlock(&lk_spin);

	raw_spin_lock(&lk_raw);
	lk_probe("must: lk_raw");
	raw_spin_unlock(&lk_raw);

	spin_lock_irqsave(&lk_spin, flags);
	lk_probe("must: lk_spin (irqsave)");
	spin_unlock_irqrestore(&lk_spin, flags);

	raw_spin_lock_irq(&lk_raw);
	lk_probe("must: lk_raw (irq)");
	raw_spin_unlock_irq(&lk_raw);

	lk_probe("must: none");
}

static void lk_other_forms(struct kvm *kvm)
{
	down_read(&lk_rwsem);
	lk_probe("must: lk_rwsem");
	up_read(&lk_rwsem);

	cpus_read_lock();
	lk_probe("must: cpu_hotplug_lock");
	cpus_read_unlock();

	preempt_disable();
	lk_probe("must: preempt");
	preempt_enable();

	rcu_read_lock();
	lk_probe("must: rcu");
	rcu_read_unlock();

	/* Locks reached through a pointer, nested. */
	mutex_lock(&kvm->lock);
	spin_lock(&kvm->mmu_lock);
	lk_probe("must: kvm->lock, kvm->mmu_lock");
	spin_unlock(&kvm->mmu_lock);
	lk_probe("must: kvm->lock");
	mutex_unlock(&kvm->lock);
}

static void lk_guard_forms(bool cond)
{
	if (cond) {
		guard(mutex)(&lk_mutex);
		lk_probe("must: lk_mutex (guard, until the end of the block)");
	}
	lk_probe("must: none (guard released at block end)");

	scoped_guard(spinlock, &lk_spin) {
		lk_probe("must: lk_spin (scoped_guard)");
	}
	lk_probe("must: none (scoped_guard released)");

	scoped_guard(spinlock, &lk_spin)
		lk_probe("must: lk_spin (scoped_guard, single statement)");
}

static int lk_guard_return(int x)
{
	guard(cpus_read_lock)();

	if (x)
		return lk_step(x);

	lk_probe("must: cpu_hotplug_lock (guard, until return)");
	return 0;
}

static int lk_goto_unwind(int x)
{
	int r;

	mutex_lock(&lk_mutex);

	r = lk_step(x);
	if (r)
		goto out_unlock;

	r = lk_step(x + 1);
	if (r)
		goto out_unlock;

	lk_probe("must: lk_mutex (before the label)");

out_unlock:
	lk_probe("must: lk_mutex (at the label, from every path)");
	mutex_unlock(&lk_mutex);
	lk_probe("must: none (after the label)");
	return r;
}

static void lk_one_branch(int x)
{
	spin_lock(&lk_spin);
	if (x)
		spin_unlock(&lk_spin);

	lk_probe("must: none; may: lk_spin");

	if (!x)
		spin_unlock(&lk_spin);
}

/* Bug on purpose: the early return leaks lk_mutex. */
static int lk_leak(int x)
{
	mutex_lock(&lk_mutex);
	if (x < 0)
		return -EINVAL;

	lk_probe("must: lk_mutex");
	mutex_unlock(&lk_mutex);
	return 0;
}

/* Called with lk_mutex held; drops it for the caller. */
static void lk_unlock_for_caller(void)
{
	lk_probe("must: lk_mutex (held by the only caller)");
	mutex_unlock(&lk_mutex);
}

static void lk_unlock_elsewhere(void)
{
	mutex_lock(&lk_mutex);
	lk_unlock_for_caller();
	lk_probe("must: none (released in the callee)");
}

/* Bug on purpose: unlocks a lock nobody took. */
static void lk_unbalanced_unlock(void)
{
	raw_spin_unlock(&lk_raw);
	lk_probe("must: none");
}

static void lk_cycle_b(int depth);

static void lk_cycle_a(int depth)
{
	if (depth)
		lk_cycle_b(depth - 1);
}

static void lk_cycle_b(int depth)
{
	lk_probe("must: lk_mutex (taken before the a -> b -> a cycle)");
	lk_cycle_a(depth);
}

static void lk_cycle_entry(void)
{
	mutex_lock(&lk_mutex);
	lk_cycle_a(4);
	mutex_unlock(&lk_mutex);
}

static struct kvm lk_kvm;

static int __init lk_init(void)
{
	lk_mutex_form();
	lk_spin_forms();
	lk_other_forms(&lk_kvm);
	lk_guard_forms(true);
	lk_guard_return(0);
	lk_goto_unwind(0);
	lk_one_branch(1);
	lk_leak(0);
	lk_unlock_elsewhere();
	lk_unbalanced_unlock();
	lk_cycle_entry();
	return 0;
}
module_init(lk_init);
