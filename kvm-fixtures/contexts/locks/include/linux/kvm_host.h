/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H

/* Miniature kvm_host.h for the lock-set fixture. */

#include <linux/types.h>
#include <linux/mutex.h>
#include <linux/spinlock.h>

struct kvm {
	struct mutex lock;
	spinlock_t mmu_lock;
};

/*
 * Probes: calls whose lock set the tests look up.  The argument names the
 * expected set; see README.
 */
void lk_probe(const char *expect);
int lk_step(int x);

#endif
