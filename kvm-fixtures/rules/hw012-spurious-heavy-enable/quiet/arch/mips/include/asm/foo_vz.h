/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __ASM_FOO_VZ_H
#define __ASM_FOO_VZ_H

struct foo_mips_callbacks {
	int (*cpu_enable)(void);
	void (*cpu_disable)(void);
	int (*check_cpu)(void);
};

int foo_vz_install(struct foo_mips_callbacks **install);

#endif
