// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW014, quiet tree: the fire tree with each cycle broken
 * (one order everywhere, a lock dropped before a wait, readers only).
 */

#include <linux/kvm_host.h>
#include <linux/cpu.h>
#include <linux/cpufreq.h>
#include <linux/cpuhotplug.h>
#include <linux/fs.h>
#include <linux/jump_label.h>
#include <linux/kthread.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/rwsem.h>
#include <linux/srcu.h>

MODULE_LICENSE("GPL");

/* 1. Nested locks, AB-BA. */
static DEFINE_MUTEX(alpha_lock);
static DEFINE_MUTEX(beta_lock);
/* 2. A lock held across a call into code taking another. */
static DEFINE_MUTEX(gamma_lock);
static DEFINE_MUTEX(delta_lock);
/* 3. An rwsem nobody takes for write: read-read never deadlocks. */
static DECLARE_RWSEM(table_sem);
static DEFINE_MUTEX(table_resize_lock);
/* 5. Completion wait. */
static DEFINE_MUTEX(reaper_cfg_lock);
static DEFINE_MUTEX(reaper_state_lock);
/* 6. Work flush. */
static DEFINE_MUTEX(trim_ctl_lock);
static DEFINE_MUTEX(trim_data_lock);
/* 7. CPU-hotplug callback vs cpus_read_lock(). */
static DEFINE_MUTEX(virt_users_lock);
static int virt_users;
/* 8. API-model acquisition: static_branch_inc() under an SRCU reader. */
DEFINE_STATIC_SRCU(feature_srcu);
static DEFINE_STATIC_KEY_FALSE(feature_key);
/* 9. A cross-CPU call that waits for its callback. */
static DEFINE_RAW_SPINLOCK(tick_cfg_lock);
static DEFINE_RAW_SPINLOCK(tick_stats_lock);
/* 10. A thread stopped under a lock its function takes. */
static DEFINE_MUTEX(scrub_ctl_lock);
static DEFINE_MUTEX(scrub_data_lock);
/* 11. A lock taken by scoped_guard(). */
static DEFINE_MUTEX(epsilon_lock);
static DEFINE_MUTEX(zeta_lock);
static int epsilon_count;
/* 12. A cpufreq notifier: on some paths it runs under the hotplug lock. */
static DEFINE_MUTEX(clock_list_lock);
static DEFINE_STATIC_KEY_FALSE(clock_scaled_key);
static unsigned long clock_khz;

static void nested_ab(void)
{
	mutex_lock(&alpha_lock);
	mutex_lock(&beta_lock);
	mutex_unlock(&beta_lock);
	mutex_unlock(&alpha_lock);
}

static void nested_ab_again(void)
{
	mutex_lock(&alpha_lock);
	mutex_lock(&beta_lock);
	mutex_unlock(&beta_lock);
	mutex_unlock(&alpha_lock);
}

static void delta_update(void)
{
	mutex_lock(&delta_lock);
	mutex_unlock(&delta_lock);
}

static void gamma_then_call(void)
{
	mutex_lock(&gamma_lock);
	delta_update();
	mutex_unlock(&gamma_lock);
}

static void gamma_then_delta(void)
{
	mutex_lock(&gamma_lock);
	mutex_lock(&delta_lock);
	mutex_unlock(&delta_lock);
	mutex_unlock(&gamma_lock);
}

static void table_lookup(void)
{
	down_read(&table_sem);
	mutex_lock(&table_resize_lock);
	mutex_unlock(&table_resize_lock);
	up_read(&table_sem);
}

static void table_resize(void)
{
	mutex_lock(&table_resize_lock);
	down_read(&table_sem);
	up_read(&table_sem);
	mutex_unlock(&table_resize_lock);
}

/* 4. SRCU: a map update waits for the readers under map_lock. */
static void guest_map_update(struct foo_guest *g)
{
	mutex_lock(&g->map_lock);
	synchronize_srcu(&g->map_srcu);
	mutex_unlock(&g->map_lock);
}

static void guest_map_read(struct foo_guest *g)
{
	int idx;

	idx = srcu_read_lock(&g->map_srcu);
	mutex_lock(&g->stats_lock);
	mutex_unlock(&g->stats_lock);
	srcu_read_unlock(&g->map_srcu, idx);
}

static int guest_reaper(void *data)
{
	struct foo_guest *g = data;

	complete(&g->reaper_ready);
	mutex_lock(&reaper_state_lock);
	mutex_unlock(&reaper_state_lock);
	return 0;
}

static void guest_start_reaper(struct foo_guest *g)
{
	mutex_lock(&reaper_cfg_lock);
	g->reaper = kthread_run(guest_reaper, g, "foo-reaper");
	wait_for_completion(&g->reaper_ready);
	mutex_unlock(&reaper_cfg_lock);
}

static void guest_reaper_reconfig(void)
{
	mutex_lock(&reaper_state_lock);
	mutex_lock(&reaper_cfg_lock);
	mutex_unlock(&reaper_cfg_lock);
	mutex_unlock(&reaper_state_lock);
}

static void guest_trim(struct work_struct *work)
{
	mutex_lock(&trim_data_lock);
	mutex_unlock(&trim_data_lock);
}

static void guest_trim_sync(struct foo_guest *g)
{
	mutex_lock(&trim_ctl_lock);
	mutex_unlock(&trim_ctl_lock);
	flush_work(&g->trim_work);
}

static void guest_trim_tune(void)
{
	mutex_lock(&trim_data_lock);
	mutex_lock(&trim_ctl_lock);
	mutex_unlock(&trim_ctl_lock);
	mutex_unlock(&trim_data_lock);
}

static void virt_users_get(void)
{
	cpus_read_lock();
	mutex_lock(&virt_users_lock);
	virt_users++;
	mutex_unlock(&virt_users_lock);
	cpus_read_unlock();
}

static void feature_enable(void)
{
	int idx;

	idx = srcu_read_lock(&feature_srcu);
	srcu_read_unlock(&feature_srcu, idx);
	static_branch_inc(&feature_key);
}

static void tick_sync_stats(void *unused)
{
	raw_spin_lock(&tick_stats_lock);
	raw_spin_unlock(&tick_stats_lock);
}

static void tick_reconfigure(int cpu)
{
	raw_spin_lock(&tick_cfg_lock);
	/* Runs on @cpu; the caller does not wait for it (wait = 0). */
	smp_call_function_single(cpu, tick_sync_stats, NULL, 0);
	raw_spin_unlock(&tick_cfg_lock);
}

static void tick_stats_reset(void)
{
	raw_spin_lock(&tick_stats_lock);
	raw_spin_lock(&tick_cfg_lock);
	raw_spin_unlock(&tick_cfg_lock);
	raw_spin_unlock(&tick_stats_lock);
}

static int guest_scrubber(void *data)
{
	while (!kthread_should_stop()) {
		mutex_lock(&scrub_data_lock);
		mutex_unlock(&scrub_data_lock);
		schedule_timeout_interruptible(HZ);
	}
	return 0;
}

static void guest_scrub_start(struct foo_guest *g)
{
	struct task_struct *t;

	t = kthread_run(guest_scrubber, g, "foo-scrub");
	if (!IS_ERR(t))
		g->scrubber = t;
}

static void guest_scrub_stop(struct foo_guest *g)
{
	mutex_lock(&scrub_ctl_lock);
	g->scrub_stopping = true;
	mutex_unlock(&scrub_ctl_lock);
	/* The thread may take scrub_data_lock: stop it with nothing held. */
	kthread_stop(g->scrubber);
}

static void guest_scrub_tune(void)
{
	mutex_lock(&scrub_data_lock);
	mutex_lock(&scrub_ctl_lock);
	mutex_unlock(&scrub_ctl_lock);
	mutex_unlock(&scrub_data_lock);
}

static void epsilon_then_zeta(void)
{
	scoped_guard(mutex, &epsilon_lock) {
		mutex_lock(&zeta_lock);
		mutex_unlock(&zeta_lock);
	}
}

static void epsilon_count_bump(void)
{
	scoped_guard(mutex, &epsilon_lock) {
		epsilon_count++;
	}
	mutex_lock(&zeta_lock);
	mutex_unlock(&zeta_lock);
}

static int clock_freq_notifier(struct notifier_block *nb, unsigned long val,
			       void *data)
{
	struct cpufreq_freqs *freq = data;

	if (val != CPUFREQ_POSTCHANGE)
		return 0;

	mutex_lock(&clock_list_lock);
	clock_khz = freq->new;
	mutex_unlock(&clock_list_lock);
	return 0;
}

static struct notifier_block clock_freq_nb = {
	.notifier_call = clock_freq_notifier,
};

/* Flips the key before taking the notifier's lock. */
static void clock_list_update(unsigned long khz)
{
	static_branch_inc(&clock_scaled_key);
	mutex_lock(&clock_list_lock);
	clock_khz = khz;
	mutex_unlock(&clock_list_lock);
}

static int virt_cpu_online(unsigned int cpu)
{
	mutex_lock(&virt_users_lock);
	if (virt_users)
		pr_info("foo: CPU%u online\n", cpu);
	mutex_unlock(&virt_users_lock);
	synchronize_srcu(&feature_srcu);
	return 0;
}

static int virt_cpu_offline(unsigned int cpu)
{
	return 0;
}

static long foo_dev_ioctl(struct file *filp, unsigned int ioctl,
			  unsigned long arg)
{
	struct foo_guest *g = filp->private_data;

	switch (ioctl) {
	case 1:
		nested_ab();
		break;
	case 2:
		nested_ab_again();
		break;
	case 3:
		gamma_then_call();
		break;
	case 4:
		gamma_then_delta();
		break;
	case 5:
		table_lookup();
		break;
	case 6:
		table_resize();
		break;
	case 7:
		guest_map_update(g);
		break;
	case 8:
		guest_map_read(g);
		break;
	case 9:
		guest_start_reaper(g);
		break;
	case 10:
		guest_reaper_reconfig();
		break;
	case 11:
		INIT_WORK(&g->trim_work, guest_trim);
		schedule_work(&g->trim_work);
		break;
	case 12:
		guest_trim_sync(g);
		break;
	case 13:
		guest_trim_tune();
		break;
	case 14:
		virt_users_get();
		break;
	case 15:
		feature_enable();
		break;
	case 16:
		tick_reconfigure(arg);
		break;
	case 17:
		tick_stats_reset();
		break;
	case 18:
		guest_scrub_start(g);
		break;
	case 19:
		guest_scrub_stop(g);
		break;
	case 20:
		guest_scrub_tune();
		break;
	case 21:
		epsilon_then_zeta();
		break;
	case 22:
		epsilon_count_bump();
		break;
	case 23:
		clock_list_update(arg);
		break;
	default:
		return -ENOTTY;
	}
	return 0;
}

static struct file_operations foo_chardev_ops = {
	.unlocked_ioctl	= foo_dev_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice foo_dev = {
	MISC_DYNAMIC_MINOR,
	"foo",
	&foo_chardev_ops,
};

int foo_core_init(struct module *module)
{
	int r;

	r = cpuhp_setup_state_nocalls(CPUHP_AP_FOO_ONLINE, "foo/cpu:online",
				      virt_cpu_online, virt_cpu_offline);
	if (r)
		return r;

	r = cpufreq_register_notifier(&clock_freq_nb,
				      CPUFREQ_TRANSITION_NOTIFIER);
	if (r)
		goto out_cpuhp;

	foo_chardev_ops.owner = module;

	r = misc_register(&foo_dev);
	if (r)
		goto out_cpufreq;
	return 0;

out_cpufreq:
	cpufreq_unregister_notifier(&clock_freq_nb, CPUFREQ_TRANSITION_NOTIFIER);
out_cpuhp:
	cpuhp_remove_state_nocalls(CPUHP_AP_FOO_ONLINE);
	return r;
}
EXPORT_SYMBOL_GPL(foo_core_init);

void foo_core_exit(void)
{
	misc_deregister(&foo_dev);
	cpufreq_unregister_notifier(&clock_freq_nb, CPUFREQ_TRANSITION_NOTIFIER);
	cpuhp_remove_state_nocalls(CPUHP_AP_FOO_ONLINE);
}
EXPORT_SYMBOL_GPL(foo_core_exit);
