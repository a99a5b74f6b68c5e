// SPDX-License-Identifier: GPL-2.0
/* Renamed shape of an arch init whose unwind lags its steps. */

static bool hyp_ready;

static void el2_pm_init(void)
{
	cpu_pm_register_notifier(&el2_pm_nb);
}

static void el2_pm_exit(void)
{
	cpu_pm_unregister_notifier(&el2_pm_nb);
}

static int bring_up_helpers(void)
{
	int err;

	el2_pm_init();
	err = helper_timer_probe();
	if (err)
		goto out;
	foo_register_perf_hooks(NULL);
out:
	return err;
}

static int init_el2_tables(void)
{
	return alloc_el2_pages();
}

static void teardown_el2_tables(void)
{
	free_el2_pages();
}

static int seal_el2(void)
{
	return protect_el2();
}

static int pick_vector_slots(void)
{
	return map_vector_slots();
}

/* FIRE: slots failure skips teardown_el2_tables(); seal failure never
 * unregisters the perf hooks bring_up_helpers() registered. */
int foo_arch_init(void *opaque)
{
	int err;
	bool vhe = probe_vhe();

	if (!vhe) {
		err = init_el2_tables();
		if (err)
			goto out_err;
	}

	err = pick_vector_slots();
	if (err)
		goto out_err;

	err = bring_up_helpers();
	if (err)
		goto out_el2;

	if (!vhe) {
		err = seal_el2();
		if (err)
			goto out_el2;
	}
	hyp_ready = true;
	return 0;

out_el2:
	el2_pm_exit();
	if (!vhe)
		teardown_el2_tables();
out_err:
	return err;
}

void foo_arch_exit(void)
{
	foo_unregister_perf_hooks();
}
