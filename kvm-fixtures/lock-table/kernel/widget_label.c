// SPDX-License-Identifier: GPL-2.0
/*
 * Patching of widget keys: the code patching runs with CPU hotplug held
 * off, except in widget_key_enable(), which only serializes on its mutex.
 */
#include <linux/widget_label.h>

static DEFINE_MUTEX(widget_mutex);

static void widget_patch_cpuslocked(struct widget_key *key)
{
	key->enabled++;
}

void widget_key_slow_inc(struct widget_key *key)
{
	cpus_read_lock();
	widget_patch_cpuslocked(key);
	cpus_read_unlock();
}
EXPORT_SYMBOL_GPL(widget_key_slow_inc);

static void __widget_key_slow_dec(struct widget_key *key)
{
	cpus_read_lock();
	key->enabled--;
	cpus_read_unlock();
}

void widget_key_slow_dec(struct widget_key *key)
{
	if (key->enabled > 1) {
		key->enabled--;
		return;
	}
	__widget_key_slow_dec(key);
}
EXPORT_SYMBOL_GPL(widget_key_slow_dec);

void widget_key_enable(struct widget_key *key)
{
	mutex_lock(&widget_mutex);
	widget_patch_cpuslocked(key);
	mutex_unlock(&widget_mutex);
}
EXPORT_SYMBOL_GPL(widget_key_enable);

void widget_key_apply(struct widget_key *key)
{
	key->ops->apply(key);
}
EXPORT_SYMBOL_GPL(widget_key_apply);
