// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/mips/kvm/vz.c (Linux 6.12 shape).  Enabling VZ on a CPU
 * is costly: it resizes the guest VTLB, flushes guest and root TLBs and
 * rewrites global GuestID state, so it should not run when no VM needs it.
 */

#include <linux/kvm_host.h>
#include <asm/cpu-info.h>
#include <asm/mipsregs.h>

static unsigned int kvm_vz_guest_vtlb_size;

unsigned long GUESTID_MASK;
unsigned long GUESTID_FIRST_VERSION;
unsigned long GUESTID_VERSION_MASK;

static unsigned int kvm_vz_resize_guest_vtlb(unsigned int size)
{
	unsigned int config4 = 0, ret = 0, limit;

	/* Write MMUSize - 1 into the guest Config registers, read it back. */
	if (cpu_guest_has_conf1)
		change_gc0_config1(MIPS_CONF1_TLBS,
				   (size - 1) << MIPS_CONF1_TLBS_SHIFT);
	if (cpu_guest_has_conf4)
		config4 = read_gc0_config4();

	limit = (MIPS_CONF1_TLBS >> MIPS_CONF1_TLBS_SHIFT) + 1;
	ret = (read_gc0_config1() & MIPS_CONF1_TLBS) >> MIPS_CONF1_TLBS_SHIFT;
	if (size > limit && config4)
		ret = limit - 1;

	return ret + 1;
}

static int kvm_vz_enable_virtualization_cpu(void)
{
	unsigned int vtlb, ftlb, guest;

	/*
	 * The root and the guest share one TLB.  Hand the guest the whole
	 * VTLB so that it can be flushed, then take back what the root's
	 * wired entries (and two spare ones) need.
	 */
	vtlb = current_cpu_data.tlbsizevtlb;
	ftlb = current_cpu_data.tlbsize - vtlb;

	guest = kvm_vz_resize_guest_vtlb(vtlb);
	current_cpu_data.guest.tlbsize = guest + ftlb;
	kvm_vz_local_flush_guesttlb_all();

	guest = kvm_vz_resize_guest_vtlb(vtlb - num_wired_entries() - 2);
	current_cpu_data.guest.tlbsize = guest + ftlb;

	/* The first CPU sets the size; all others must agree with it. */
	if (cmpxchg(&kvm_vz_guest_vtlb_size, 0, guest) &&
	    WARN(guest != kvm_vz_guest_vtlb_size, "guest VTLB size mismatch"))
		return -EINVAL;

	/* Guest CP0, guest MMU, guest CACHE and Config access. */
	write_c0_guestctl0(MIPS_GCTL0_CP0 | MIPS_GCTL0_CG | MIPS_GCTL0_CF |
			   (MIPS_GCTL0_AT_GUEST << MIPS_GCTL0_AT_SHIFT));

	if (cpu_has_guestid) {
		/* Start GuestID allocation afresh: global, shared state. */
		write_c0_guestctl1(0);
		kvm_vz_local_flush_roottlb_all_guests();

		GUESTID_MASK = current_cpu_data.guestid_mask;
		GUESTID_FIRST_VERSION = GUESTID_MASK + 1;
		GUESTID_VERSION_MASK = ~GUESTID_MASK;
		current_cpu_data.guestid_cache = GUESTID_FIRST_VERSION;
	}

	return 0;
}

static void kvm_vz_disable_virtualization_cpu(void)
{
	kvm_vz_local_flush_guesttlb_all();

	if (cpu_has_guestid) {
		write_c0_guestctl1(0);
		kvm_vz_local_flush_roottlb_all_guests();
	}
}

static int kvm_vz_check_extension(struct kvm *kvm, long ext)
{
	return 0;
}

static int kvm_vz_vcpu_init(struct kvm_vcpu *vcpu)
{
	return 0;
}

static struct kvm_mips_callbacks kvm_vz_callbacks = {
	.enable_virtualization_cpu = kvm_vz_enable_virtualization_cpu,
	.disable_virtualization_cpu = kvm_vz_disable_virtualization_cpu,
	.check_extension = kvm_vz_check_extension,
	.vcpu_init = kvm_vz_vcpu_init,
};

const struct kvm_mips_callbacks * const kvm_mips_callbacks = &kvm_vz_callbacks;

int kvm_mips_emulation_init(void)
{
	if (!cpu_has_vz)
		return -ENODEV;

	/* VZ requires at least 2 KScratch registers. */
	if (cpu_guest_has_kscr(2) < 2)
		return -ENODEV;

	return 0;
}
