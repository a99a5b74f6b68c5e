/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __CPUHOTPLUG_H
#define __CPUHOTPLUG_H

/*
 * Miniature cpuhotplug.h for the broken-series fixture: only the position
 * of a state in the enum matters (PREPARE up to CPUHP_BRINGUP_CPU,
 * STARTING up to CPUHP_AP_ONLINE, ONLINE after it).
 */
enum cpuhp_state {
	CPUHP_INVALID = -1,

	/* PREPARE section */
	CPUHP_OFFLINE = 0,
	CPUHP_CREATE_THREADS,
	CPUHP_BRINGUP_CPU,

	/* STARTING section */
	CPUHP_AP_IDLE_DEAD,
	CPUHP_AP_OFFLINE,
	CPUHP_AP_KVM_STARTING,
	CPUHP_AP_ONLINE,
	CPUHP_TEARDOWN_CPU,

	/* ONLINE section */
	CPUHP_AP_ONLINE_IDLE,
	CPUHP_AP_ONLINE_DYN,
	CPUHP_ONLINE,
};

int cpuhp_setup_state_nocalls(enum cpuhp_state state, const char *name,
			      int (*startup)(unsigned int cpu),
			      int (*teardown)(unsigned int cpu));
void cpuhp_remove_state_nocalls(enum cpuhp_state state);

#endif
