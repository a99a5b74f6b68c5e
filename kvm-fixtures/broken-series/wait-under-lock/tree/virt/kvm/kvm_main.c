// SPDX-License-Identifier: GPL-2.0-only
/*
 * wait-under-lock series fixture: common code in the shape a refactor
 * series reaches once the usage count has a mutex of its own
 * (virt_users_lock), taken by the ONLINE-section callbacks with the CPU
 * hotplug lock held for write and inside cpus_read_lock() elsewhere.
 * foo_arch_guest_added() runs before any lock is taken.
 */

#include <linux/kvm_host.h>
#include <linux/cpu.h>
#include <linux/cpuhotplug.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/percpu.h>
#include <linux/smp.h>

MODULE_LICENSE("GPL");

DEFINE_MUTEX(guest_list_lock);
LIST_HEAD(guest_list);

static DEFINE_MUTEX(virt_users_lock);
static int virt_users;
static DEFINE_PER_CPU(bool, virt_on);

static struct file_operations foo_chardev_ops;

static DEFINE_RAW_SPINLOCK(virt_stats_lock);
static unsigned long virt_enable_failures;

int __weak foo_arch_setup(void)
{
	return 0;
}

void __weak foo_arch_teardown(void)
{
}

int __weak foo_arch_cpu_up(void)
{
	return 0;
}

void __weak foo_arch_cpu_down(void)
{
}

/* Called just before the guest is published on guest_list. */
int __weak foo_arch_guest_added(struct kvm *kvm)
{
	return 0;
}

/* Called just after the guest has been taken off guest_list. */
void __weak foo_arch_guest_removing(struct kvm *kvm)
{
}

static int virt_cpu_up(void)
{
	if (__this_cpu_read(virt_on))
		return 0;

	if (foo_arch_cpu_up()) {
		pr_info("foo: enabling virtualization on CPU%d failed\n",
			raw_smp_processor_id());
		return -EIO;
	}

	__this_cpu_write(virt_on, true);
	return 0;
}

/* IPI callback: needs a raw spinlock for the statistics. */
static void virt_cpu_up_ipi(void *failed)
{
	unsigned long flags;

	if (!virt_cpu_up())
		return;

	atomic_inc(failed);
	raw_spin_lock_irqsave(&virt_stats_lock, flags);
	virt_enable_failures++;
	raw_spin_unlock_irqrestore(&virt_stats_lock, flags);
}

static void virt_cpu_down(void *unused)
{
	if (!__this_cpu_read(virt_on))
		return;

	foo_arch_cpu_down();
	__this_cpu_write(virt_on, false);
}

static int virt_cpu_online(unsigned int cpu)
{
	int r = 0;

	mutex_lock(&virt_users_lock);
	if (virt_users)
		r = virt_cpu_up();
	mutex_unlock(&virt_users_lock);
	return r;
}

static int virt_cpu_offline(unsigned int cpu)
{
	mutex_lock(&virt_users_lock);
	if (virt_users)
		virt_cpu_down(NULL);
	mutex_unlock(&virt_users_lock);
	return 0;
}

static void virt_put_all(void)
{
	cpus_read_lock();
	mutex_lock(&virt_users_lock);
	if (!--virt_users)
		on_each_cpu(virt_cpu_down, NULL, 1);
	mutex_unlock(&virt_users_lock);
	cpus_read_unlock();
}

static int virt_get_all(void)
{
	atomic_t failed = ATOMIC_INIT(0);
	int r = 0;

	cpus_read_lock();
	mutex_lock(&virt_users_lock);
	if (!virt_users++) {
		on_each_cpu(virt_cpu_up_ipi, &failed, 1);
		if (atomic_read(&failed)) {
			if (!--virt_users)
				on_each_cpu(virt_cpu_down, NULL, 1);
			r = -EBUSY;
		}
		raw_spin_lock_irq(&virt_stats_lock);
		pr_info("foo: %lu enabling failures so far\n",
			virt_enable_failures);
		raw_spin_unlock_irq(&virt_stats_lock);
	}
	mutex_unlock(&virt_users_lock);
	cpus_read_unlock();
	return r;
}

static struct kvm *guest_create(unsigned long type)
{
	struct kvm *kvm;
	int r;

	kvm = kzalloc(sizeof(*kvm), GFP_KERNEL_ACCOUNT);
	if (!kvm)
		return ERR_PTR(-ENOMEM);

	INIT_LIST_HEAD(&kvm->link);
	refcount_set(&kvm->users, 1);

	r = foo_arch_guest_init(kvm, type);
	if (r)
		goto out_free;

	r = virt_get_all();
	if (r)
		goto out_arch_destroy;

	r = foo_arch_guest_added(kvm);
	if (r)
		goto out_virt_put;

	mutex_lock(&guest_list_lock);
	list_add(&kvm->link, &guest_list);
	mutex_unlock(&guest_list_lock);

	return kvm;

out_virt_put:
	virt_put_all();
out_arch_destroy:
	foo_arch_guest_destroy(kvm);
out_free:
	kfree(kvm);
	return ERR_PTR(r);
}

static void guest_destroy(struct kvm *kvm)
{
	mutex_lock(&guest_list_lock);
	list_del(&kvm->link);
	mutex_unlock(&guest_list_lock);
	foo_arch_guest_removing(kvm);

	foo_arch_guest_destroy(kvm);
	virt_put_all();
	kfree(kvm);
}

static int guest_release(struct inode *inode, struct file *filp)
{
	struct kvm *kvm = filp->private_data;

	if (refcount_dec_and_test(&kvm->users))
		guest_destroy(kvm);
	return 0;
}

static const struct file_operations guest_fops = {
	.release	= guest_release,
};

static long foo_dev_ioctl(struct file *filp, unsigned int ioctl,
			  unsigned long arg)
{
	struct kvm *kvm;
	int fd;

	if (ioctl != FOO_CREATE_GUEST)
		return -ENOTTY;

	kvm = guest_create(arg);
	if (IS_ERR(kvm))
		return PTR_ERR(kvm);

	fd = anon_inode_getfd("foo-guest", &guest_fops, kvm, O_RDWR);
	if (fd < 0)
		guest_destroy(kvm);
	return fd;
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

int foo_core_init(unsigned int vcpu_size, struct module *module)
{
	int r;

	r = foo_arch_setup();
	if (r)
		return r;

	r = cpuhp_setup_state_nocalls(CPUHP_AP_FOO_ONLINE, "foo/cpu:online",
				      virt_cpu_online, virt_cpu_offline);
	if (r)
		goto err_arch;

	foo_chardev_ops.owner = module;

	r = misc_register(&foo_dev);
	if (r)
		goto err_cpuhp;

	return 0;

err_cpuhp:
	cpuhp_remove_state_nocalls(CPUHP_AP_FOO_ONLINE);
err_arch:
	foo_arch_teardown();
	return r;
}
EXPORT_SYMBOL_GPL(foo_core_init);

void foo_core_exit(void)
{
	misc_deregister(&foo_dev);
	cpuhp_remove_state_nocalls(CPUHP_AP_FOO_ONLINE);
	foo_arch_teardown();
}
EXPORT_SYMBOL_GPL(foo_core_exit);
