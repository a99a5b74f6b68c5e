/* SPDX-License-Identifier: GPL-2.0 */
#ifndef _LINUX_WIDGET_LABEL_H
#define _LINUX_WIDGET_LABEL_H

struct widget_key {
	int enabled;
	const struct widget_key_ops *ops;
};

struct widget_key_ops {
	void (*apply)(struct widget_key *key);
};

struct widget_mm {
	struct rw_semaphore map_lock;
	int users;
};

void widget_key_slow_inc(struct widget_key *key);
void widget_key_slow_dec(struct widget_key *key);
void widget_key_enable(struct widget_key *key);

#define widget_branch_inc(x)		widget_key_slow_inc(&(x)->key)
#define widget_branch_dec(x)		widget_key_slow_dec(&(x)->key)
#define widget_branch_enable(x)		widget_key_enable(&(x)->key)

static inline void widget_map_lock(struct widget_mm *mm)
{
	down_write(&mm->map_lock);
}

static inline void widget_map_unlock(struct widget_mm *mm)
{
	up_write(&mm->map_lock);
}

#endif
