// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/mips/kvm/vz.c (Linux 6.1 shape).  Enabling VZ on a CPU
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

static int kvm_vz_hardware_enable(void)
{
	unsigned int mmu_size, guest_mmu_size, ftlb_size;

	/*
	 * The root and guest share one TLB: grow the guest VTLB to its
	 * maximum to flush it, then shrink it to leave room for the root's
	 * wired entries.
	 */
	mmu_size = current_cpu_data.tlbsizevtlb;
	ftlb_size = current_cpu_data.tlbsize - mmu_size;

	guest_mmu_size = kvm_vz_resize_guest_vtlb(mmu_size);
	current_cpu_data.guest.tlbsize = guest_mmu_size + ftlb_size;
	kvm_vz_local_flush_guesttlb_all();

	guest_mmu_size = mmu_size - num_wired_entries() - 2;
	guest_mmu_size = kvm_vz_resize_guest_vtlb(guest_mmu_size);
	current_cpu_data.guest.tlbsize = guest_mmu_size + ftlb_size;

	/* Every CPU must present the same VTLB size to the guest. */
	if (cmpxchg(&kvm_vz_guest_vtlb_size, 0, guest_mmu_size) &&
	    WARN(guest_mmu_size != kvm_vz_guest_vtlb_size,
		 "Available guest VTLB size mismatch"))
		return -EINVAL;

	write_c0_guestctl0(MIPS_GCTL0_CP0 |
			   (MIPS_GCTL0_AT_GUEST << MIPS_GCTL0_AT_SHIFT) |
			   MIPS_GCTL0_CG | MIPS_GCTL0_CF);

	if (cpu_has_guestid) {
		write_c0_guestctl1(0);
		kvm_vz_local_flush_roottlb_all_guests();

		GUESTID_MASK = current_cpu_data.guestid_mask;
		GUESTID_FIRST_VERSION = GUESTID_MASK + 1;
		GUESTID_VERSION_MASK = ~GUESTID_MASK;

		current_cpu_data.guestid_cache = GUESTID_FIRST_VERSION;
	}

	return 0;
}

static void kvm_vz_hardware_disable(void)
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
	.hardware_enable = kvm_vz_hardware_enable,
	.hardware_disable = kvm_vz_hardware_disable,
	.check_extension = kvm_vz_check_extension,
	.vcpu_init = kvm_vz_vcpu_init,
};

int kvm_mips_emulation_init(struct kvm_mips_callbacks **install_callbacks)
{
	if (!cpu_has_vz)
		return -ENODEV;

	/* VZ requires at least 2 KScratch registers. */
	if (cpu_guest_has_kscr(2) < 2)
		return -ENODEV;

	*install_callbacks = &kvm_vz_callbacks;
	return 0;
}
