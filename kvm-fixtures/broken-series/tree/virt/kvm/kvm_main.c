// SPDX-License-Identifier: GPL-2.0-only
/*
 * broken-series fixture: the 6.1 shape of hardware enabling, reduced to
 * the usage count, its raw spinlock and the STARTING-section callbacks.
 */

#include <linux/kvm_host.h>
#include <linux/cpuhotplug.h>

static DEFINE_MUTEX(kvm_lock);
static DEFINE_RAW_SPINLOCK(kvm_count_lock);
static int kvm_usage_count;
static atomic_t hardware_enable_failed;

static void hardware_enable_nolock(void *junk)
{
	if (kvm_arch_hardware_enable()) {
		atomic_inc(&hardware_enable_failed);
		pr_info("kvm: enabling virtualization on CPU%d failed\n",
			raw_smp_processor_id());
	}
}

static void hardware_disable_nolock(void *junk)
{
	kvm_arch_hardware_disable();
}

static int kvm_starting_cpu(unsigned int cpu)
{
	raw_spin_lock(&kvm_count_lock);
	if (kvm_usage_count)
		hardware_enable_nolock(NULL);
	raw_spin_unlock(&kvm_count_lock);
	return 0;
}

static int kvm_dying_cpu(unsigned int cpu)
{
	raw_spin_lock(&kvm_count_lock);
	if (kvm_usage_count)
		hardware_disable_nolock(NULL);
	raw_spin_unlock(&kvm_count_lock);
	return 0;
}

static int hardware_enable_all(void)
{
	int r = 0;

	raw_spin_lock(&kvm_count_lock);
	kvm_usage_count++;
	if (kvm_usage_count == 1) {
		atomic_set(&hardware_enable_failed, 0);
		on_each_cpu(hardware_enable_nolock, NULL, 1);
		if (atomic_read(&hardware_enable_failed))
			r = -EBUSY;
	}
	raw_spin_unlock(&kvm_count_lock);
	return r;
}

static void hardware_disable_all(void)
{
	raw_spin_lock(&kvm_count_lock);
	if (!--kvm_usage_count)
		on_each_cpu(hardware_disable_nolock, NULL, 1);
	raw_spin_unlock(&kvm_count_lock);
}

int kvm_create_vm(void)
{
	int r;

	mutex_lock(&kvm_lock);
	r = hardware_enable_all();
	mutex_unlock(&kvm_lock);
	return r;
}

void kvm_destroy_vm(void)
{
	mutex_lock(&kvm_lock);
	hardware_disable_all();
	mutex_unlock(&kvm_lock);
}

int kvm_init(void)
{
	return cpuhp_setup_state_nocalls(CPUHP_AP_KVM_STARTING, "kvm/cpu:starting",
					 kvm_starting_cpu, kvm_dying_cpu);
}

void kvm_exit(void)
{
	cpuhp_remove_state_nocalls(CPUHP_AP_KVM_STARTING);
}
