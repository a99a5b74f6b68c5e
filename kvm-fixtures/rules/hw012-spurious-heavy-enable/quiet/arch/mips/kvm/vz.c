// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW012, quiet tree: the VZ-like backend.  The guest TLB size
 * is fixed once when the backend is installed; enabling a CPU only programs
 * its guest control register.  Disabling flushes the TLB (a disable hook is
 * not what HW012 looks at).
 */

#include <linux/kvm_host.h>
#include <asm/foo_vz.h>
#include <asm/mipsregs.h>
#include <asm/tlbflush.h>

static unsigned int vz_guest_tlb_size;

static int vz_cpu_enable(void)
{
	write_c0_guestctl0(MIPS_GCTL0_CP0 | MIPS_GCTL0_CG);
	return 0;
}

static void vz_cpu_disable(void)
{
	write_c0_guestctl0(0);
	local_flush_tlb_all();
}

/* Cheap: only reads a configuration register. */
static int vz_check_cpu(void)
{
	return cpu_has_vz ? 0 : -ENODEV;
}

static struct foo_mips_callbacks vz_callbacks = {
	.cpu_enable = vz_cpu_enable,
	.cpu_disable = vz_cpu_disable,
	.check_cpu = vz_check_cpu,
};

int foo_vz_install(struct foo_mips_callbacks **install)
{
	if (!cpu_has_vz)
		return -ENODEV;

	/* Same on every CPU; nothing to agree on per CPU. */
	vz_guest_tlb_size = current_cpu_data.tlbsizevtlb - num_wired_entries();
	*install = &vz_callbacks;
	return 0;
}
