// SPDX-License-Identifier: GPL-2.0
#include <linux/widget_label.h>

int widget_notifier_register(struct widget_mm *mm)
{
	widget_map_lock(mm);
	mm->users++;
	widget_map_unlock(mm);
	return 0;
}
EXPORT_SYMBOL_GPL(widget_notifier_register);
