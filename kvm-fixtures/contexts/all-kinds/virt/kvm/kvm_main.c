// SPDX-License-Identifier: GPL-2.0-only
/*
 * Context fixture: one registration of every kind the API model knows, each
 * with a callback whose only job is to be found in the right context.  The
 * names say which context each function must be given (see README).
 */

#include <linux/kvm_host.h>
#include <linux/cpu.h>
#include <linux/cpu_pm.h>
#include <linux/cpuhotplug.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/reboot.h>
#include <linux/smp.h>
#include <linux/stop_machine.h>
#include <linux/suspend.h>
#include <linux/syscore_ops.h>

MODULE_LICENSE("GPL");

static DEFINE_MUTEX(ctx_lock);
LIST_HEAD(vm_list);

static int ctx_dyn_state;

/* Arch hooks: __weak defaults, overridden in arch/x86/kvm/x86.c. */
int __weak kvm_arch_hardware_enable(void)
{
	return 0;
}

void __weak kvm_arch_hardware_disable(void)
{
}

void __weak kvm_arch_sync(void)
{
}

/* ---- IPI ---------------------------------------------------------- */

static void ctx_ipi_all(void *info)
{
	ctx_leaf("ipi: on_each_cpu");
	kvm_arch_hardware_enable();
}

static void ctx_ipi_single(void *info)
{
	ctx_leaf("ipi: smp_call_function_single");
}

/* The initiator holds ctx_lock across the synchronous call. */
static void ctx_ipi_under_lock(void *info)
{
	ctx_leaf("ipi: initiator holds ctx_lock and waits");
}

static void ctx_ipi_start(void)
{
	int cpu;

	on_each_cpu(ctx_ipi_all, NULL, 1);

	for_each_online_cpu(cpu)
		smp_call_function_single(cpu, ctx_ipi_single, NULL, 1);

	mutex_lock(&ctx_lock);
	on_each_cpu(ctx_ipi_under_lock, NULL, 1);
	mutex_unlock(&ctx_lock);
}

/* ---- CPU hotplug --------------------------------------------------- */

static int ctx_cpuhp_prepare(unsigned int cpu)
{
	ctx_leaf("cpuhp PREPARE");
	return 0;
}

static int ctx_cpuhp_starting(unsigned int cpu)
{
	ctx_leaf("cpuhp STARTING");
	return 0;
}

static int ctx_cpuhp_dying(unsigned int cpu)
{
	kvm_arch_hardware_disable();
	return 0;
}

static int ctx_cpuhp_online(unsigned int cpu)
{
	ctx_leaf("cpuhp ONLINE, also called by cpuhp_setup_state() itself");
	return 0;
}

static int ctx_cpuhp_offline(unsigned int cpu)
{
	ctx_leaf("cpuhp ONLINE teardown");
	return 0;
}

static int ctx_cpuhp_dyn_online(unsigned int cpu)
{
	ctx_leaf("cpuhp ONLINE, dynamic state");
	return 0;
}

/* ---- syscore, notifiers ------------------------------------------- */

static int ctx_syscore_suspend(void)
{
	ctx_leaf("syscore suspend");
	return 0;
}

static void ctx_syscore_resume(void)
{
	ctx_leaf("syscore resume");
}

static void ctx_syscore_shutdown(void)
{
	ctx_leaf("syscore shutdown");
}

static struct syscore_ops ctx_syscore_ops = {
	.suspend = ctx_syscore_suspend,
	.resume = ctx_syscore_resume,
	.shutdown = ctx_syscore_shutdown,
};

static int ctx_reboot_notify(struct notifier_block *nb, unsigned long code,
			     void *unused)
{
	ctx_leaf("reboot notifier");
	return NOTIFY_OK;
}

static struct notifier_block ctx_reboot_nb = {
	.notifier_call = ctx_reboot_notify,
	.priority = 0,
};

/* A module parameter with its own setter: runs on every sysfs write. */
static int ctx_param_set(const char *val, const struct kernel_param *kp)
{
	ctx_leaf("module param setter");
	return param_set_bool(val, kp);
}

static const struct kernel_param_ops ctx_param_ops = {
	.set = ctx_param_set,
	.get = param_get_bool,
};

static bool ctx_param_value;
module_param_cb(ctx_param, &ctx_param_ops, &ctx_param_value, 0644);

static int ctx_pm_notify(struct notifier_block *nb, unsigned long action,
			 void *unused)
{
	ctx_leaf("PM notifier");
	return NOTIFY_DONE;
}

static struct notifier_block ctx_pm_nb = {
	.notifier_call = ctx_pm_notify,
};

#ifdef CONFIG_CPU_PM
static int ctx_cpu_pm_notify(struct notifier_block *nb, unsigned long cmd,
			     void *v)
{
	switch (cmd) {
	case CPU_PM_ENTER:
		ctx_leaf("CPU PM notifier");
		return NOTIFY_OK;
	default:
		return NOTIFY_DONE;
	}
}

static struct notifier_block ctx_cpu_pm_nb = {
	.notifier_call = ctx_cpu_pm_notify,
};

static void ctx_cpu_pm_init(void)
{
	cpu_pm_register_notifier(&ctx_cpu_pm_nb);
}
#else
static inline void ctx_cpu_pm_init(void)
{
}
#endif /* CONFIG_CPU_PM */

/* ---- stop_machine -------------------------------------------------- */

static int ctx_stop_machine_cb(void *data)
{
	ctx_leaf("stop_machine");
	return 0;
}

/* ---- ioctl --------------------------------------------------------- */

static void ctx_walk_vms(void)
{
	struct kvm *kvm;
	int i, cpu;

	/* Iterator with a block body... */
	list_for_each_entry(kvm, &vm_list, vm_list) {
		/* ...and one with a single statement. */
		ctx_for_each_vcpu_cpu(i, cpu, kvm)
			ctx_leaf("ioctl: inside two nested iterators");
	}

	list_for_each_entry(kvm, &vm_list, vm_list)
		ctx_leaf("ioctl: single-statement list iterator");
}

static long ctx_dev_ioctl(struct file *filp, unsigned int ioctl,
			  unsigned long arg)
{
	switch (ioctl) {
	case 0:
		ctx_walk_vms();
		return 0;
#ifdef CONFIG_STOP_MACHINE
	case 1:
		return stop_machine(ctx_stop_machine_cb, NULL, NULL);
#endif
	default:
		ctx_leaf("ioctl");
		kvm_arch_sync();
		return -ENOTTY;
	}
}

static const struct file_operations ctx_chardev_ops = {
	.unlocked_ioctl	= ctx_dev_ioctl,
	.compat_ioctl	= ctx_dev_ioctl,
	.llseek		= noop_llseek,
};

static struct miscdevice ctx_dev = {
	MISC_DYNAMIC_MINOR,
	"ctx",
	&ctx_chardev_ops,
};

/* ---- a call cycle --------------------------------------------------- */

static void ctx_cycle_b(int depth);

static void ctx_cycle_a(int depth)
{
	if (depth)
		ctx_cycle_b(depth - 1);
}

static void ctx_cycle_b(int depth)
{
	ctx_leaf("cycle: module init, reached through a -> b -> a");
	ctx_cycle_a(depth);
}

/* ---- module init ---------------------------------------------------- */

static int __init ctx_module_init(void)
{
	int r;

	ctx_leaf("module init");
	ctx_cycle_a(3);

	r = cpuhp_setup_state_nocalls(CPUHP_FOO_PREPARE, "ctx:prepare",
				      ctx_cpuhp_prepare, NULL);
	if (r)
		return r;

	r = cpuhp_setup_state_nocalls(CPUHP_AP_FOO_STARTING, "ctx:starting",
				      ctx_cpuhp_starting, ctx_cpuhp_dying);
	if (r)
		goto err_prepare;

	r = cpuhp_setup_state(CPUHP_AP_FOO_ONLINE, "ctx:online",
			      ctx_cpuhp_online, ctx_cpuhp_offline);
	if (r)
		goto err_starting;

	r = cpuhp_setup_state(CPUHP_AP_ONLINE_DYN, "ctx:dyn",
			      ctx_cpuhp_dyn_online, NULL);
	if (r < 0)
		goto err_online;
	ctx_dyn_state = r;

	register_syscore_ops(&ctx_syscore_ops);
	register_reboot_notifier(&ctx_reboot_nb);
	register_pm_notifier(&ctx_pm_nb);
	ctx_cpu_pm_init();

	ctx_ipi_start();

	r = misc_register(&ctx_dev);
	if (r)
		goto err_dyn;

	return 0;

err_dyn:
	unregister_pm_notifier(&ctx_pm_nb);
	unregister_reboot_notifier(&ctx_reboot_nb);
	unregister_syscore_ops(&ctx_syscore_ops);
	cpuhp_remove_state(ctx_dyn_state);
err_online:
	cpuhp_remove_state(CPUHP_AP_FOO_ONLINE);
err_starting:
	cpuhp_remove_state_nocalls(CPUHP_AP_FOO_STARTING);
err_prepare:
	cpuhp_remove_state_nocalls(CPUHP_FOO_PREPARE);
	return r;
}
module_init(ctx_module_init);

static void __exit ctx_module_exit(void)
{
	ctx_leaf("module exit");
	misc_deregister(&ctx_dev);
	unregister_pm_notifier(&ctx_pm_nb);
	unregister_reboot_notifier(&ctx_reboot_nb);
	unregister_syscore_ops(&ctx_syscore_ops);
	cpuhp_remove_state(ctx_dyn_state);
	cpuhp_remove_state(CPUHP_AP_FOO_ONLINE);
	cpuhp_remove_state_nocalls(CPUHP_AP_FOO_STARTING);
	cpuhp_remove_state_nocalls(CPUHP_FOO_PREPARE);
}
module_exit(ctx_module_exit);
