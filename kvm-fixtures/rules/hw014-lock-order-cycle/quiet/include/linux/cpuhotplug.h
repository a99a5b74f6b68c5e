/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __CPUHOTPLUG_H
#define __CPUHOTPLUG_H

/*
 * Miniature cpuhotplug.h for the rule fixtures.  The state names differ from
 * the kernel's on purpose; only their position in the enum matters.
 *
 * PREPARE:  up to CPUHP_BRINGUP_CPU, on a control CPU, process context.
 * STARTING: up to CPUHP_AP_ONLINE, on the hotplugged CPU, interrupts off,
 *	     callbacks must not sleep.
 * ONLINE:   after it, on the hotplugged CPU from its hotplug thread,
 *	     process context, callbacks may sleep.
 */
enum cpuhp_state {
	CPUHP_INVALID = -1,

	/* PREPARE section */
	CPUHP_OFFLINE = 0,
	CPUHP_CREATE_THREADS,
	CPUHP_FOO_PREPARE,
	CPUHP_BP_PREPARE_DYN,
	CPUHP_BP_PREPARE_DYN_END = CPUHP_BP_PREPARE_DYN + 20,
	CPUHP_BRINGUP_CPU,

	/* STARTING section */
	CPUHP_AP_IDLE_DEAD,
	CPUHP_AP_OFFLINE,
	CPUHP_AP_SCHED_STARTING,
	CPUHP_AP_FOO_STARTING,
	CPUHP_AP_DUMMY_TIMER_STARTING,
	CPUHP_AP_ONLINE,
	CPUHP_TEARDOWN_CPU,

	/* ONLINE section */
	CPUHP_AP_ONLINE_IDLE,
	CPUHP_AP_FOO_ONLINE,
	CPUHP_AP_SMPBOOT_THREADS,
	CPUHP_AP_ONLINE_DYN,
	CPUHP_AP_ONLINE_DYN_END = CPUHP_AP_ONLINE_DYN + 30,
	CPUHP_AP_ACTIVE,
	CPUHP_ONLINE,
};

int cpuhp_setup_state(enum cpuhp_state state, const char *name,
		      int (*startup)(unsigned int cpu),
		      int (*teardown)(unsigned int cpu));
int cpuhp_setup_state_nocalls(enum cpuhp_state state, const char *name,
			      int (*startup)(unsigned int cpu),
			      int (*teardown)(unsigned int cpu));
void cpuhp_remove_state(enum cpuhp_state state);
void cpuhp_remove_state_nocalls(enum cpuhp_state state);

#endif
