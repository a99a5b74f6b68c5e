/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H

/*
 * Miniature kvm_host.h for the HW014 rule fixtures: the locks of a guest
 * are members of its struct, so their classes are `struct foo_guest.<member>`.
 */

#include <linux/types.h>
#include <linux/mutex.h>
#include <linux/srcu.h>
#include <linux/completion.h>
#include <linux/workqueue.h>

#define FOO_CREATE_GUEST	0xae01

struct foo_guest {
	struct mutex map_lock;
	struct srcu_struct map_srcu;
	struct mutex stats_lock;
	struct completion reaper_ready;
	struct work_struct trim_work;
	struct task_struct *reaper;
	struct task_struct *scrubber;
	bool scrub_stopping;
};

int foo_core_init(struct module *module);
void foo_core_exit(void);

#endif
