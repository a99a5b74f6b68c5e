// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW010, quiet tree: powerpc-like arch code.  The VM hooks
 * keep per-guest state and a monotonic statistic, no usage count.
 */

#include <linux/atomic.h>
#include <linux/kvm_host.h>
#include <linux/module.h>

static atomic_t hv_guests_created;

unsigned int hv_guests_created_total(void)
{
	return atomic_read(&hv_guests_created);
}
EXPORT_SYMBOL_GPL(hv_guests_created_total);

int foo_arch_guest_init(struct kvm *kvm, unsigned long type)
{
	kvm->arch_id = foo_alloc_lpid();
	if ((long)kvm->arch_id < 0)
		return -ENOMEM;

	atomic_inc(&hv_guests_created);
	return 0;
}

void foo_arch_guest_destroy(struct kvm *kvm)
{
	foo_free_lpid(kvm->arch_id);
}

static int ppc_foo_init(void)
{
	return foo_core_init(sizeof(struct kvm_vcpu), THIS_MODULE);
}

static void ppc_foo_exit(void)
{
	foo_core_exit();
}

module_init(ppc_foo_init);
module_exit(ppc_foo_exit);
