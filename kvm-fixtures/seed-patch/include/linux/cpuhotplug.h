/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __CPUHOTPLUG_H
#define __CPUHOTPLUG_H

/*
 * Miniature of include/linux/cpuhotplug.h (Linux 6.1 shape): a handful of
 * states, enough to place every hotplug callback of the tree in its section.
 *
 * When a CPU comes up, the hotplug state machine runs the startup callback
 * of each installed state in enum order, from CPUHP_OFFLINE + 1 up to
 * CPUHP_ONLINE; when it goes down, the teardown callbacks run in reverse.
 * The states fall into three sections:
 *
 * PREPARE:  run on a control CPU in process context, before the new CPU is
 *	     kicked or after a dying CPU is gone.  Ends at CPUHP_BRINGUP_CPU.
 *
 * STARTING: run on the hotplugged CPU by the low-level bringup/teardown
 *	     code with interrupts disabled; callbacks must not sleep and
 *	     cannot fail on the way down.  Ends at CPUHP_AP_ONLINE.
 *
 * ONLINE:   run on the hotplugged CPU by its per-CPU hotplug thread with
 *	     interrupts and preemption enabled; callbacks may sleep.
 *
 * Only states with ordering constraints, and all STARTING states, need an
 * entry here; everybody else uses the dynamic ranges.
 */
enum cpuhp_state {
	CPUHP_INVALID = -1,

	/* PREPARE section, invoked on a control CPU */
	CPUHP_OFFLINE = 0,
	CPUHP_CREATE_THREADS,
	CPUHP_PERF_PREPARE,
	CPUHP_WORKQUEUE_PREP,
	CPUHP_KVM_PPC_BOOK3S_PREPARE,
	CPUHP_BP_PREPARE_DYN,
	CPUHP_BP_PREPARE_DYN_END = CPUHP_BP_PREPARE_DYN + 20,
	CPUHP_BRINGUP_CPU,

	/* STARTING section, invoked on the hotplugged CPU with IRQs off */
	CPUHP_AP_IDLE_DEAD,
	CPUHP_AP_OFFLINE,
	CPUHP_AP_SCHED_STARTING,
	CPUHP_AP_IRQ_GIC_STARTING,
	CPUHP_AP_KVM_STARTING,
	CPUHP_AP_KVM_ARM_VGIC_INIT_STARTING,
	CPUHP_AP_KVM_ARM_TIMER_STARTING,
	CPUHP_AP_DUMMY_TIMER_STARTING,
	CPUHP_AP_ONLINE,
	CPUHP_TEARDOWN_CPU,

	/* ONLINE section, invoked on the hotplugged CPU from its thread */
	CPUHP_AP_ONLINE_IDLE,
	CPUHP_AP_SCHED_WAIT_EMPTY,
	CPUHP_AP_SMPBOOT_THREADS,
	CPUHP_AP_X86_KVM_CLK_ONLINE,
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
