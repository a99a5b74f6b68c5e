// SPDX-License-Identifier: GPL-2.0-only
/*
 * Rule fixture HW012, quiet tree: the VZ-like backend.  Enabling a CPU is
 * costly: it agrees on a global guest TLB size and flushes the whole TLB.
 */

#include <linux/kvm_host.h>
#include <asm/foo_vz.h>
#include <asm/mipsregs.h>
#include <asm/tlbflush.h>

static unsigned int vz_guest_tlb_size;

static int vz_cpu_enable(void)
{
	unsigned int size = current_cpu_data.tlbsizevtlb - num_wired_entries();

	/* Every CPU must present the same guest TLB size. */
	if (cmpxchg(&vz_guest_tlb_size, 0, size) &&
	    WARN(size != vz_guest_tlb_size, "guest TLB size mismatch"))
		return -EINVAL;

	write_c0_guestctl0(MIPS_GCTL0_CP0 | MIPS_GCTL0_CG);
	local_flush_tlb_all();
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

	*install = &vz_callbacks;
	return 0;
}
