// SPDX-License-Identifier: GPL-2.0-only
/*
 * Miniature of arch/mips/kvm/tlb.c (Linux 6.1 shape).  Flushing the guest
 * or root TLB of a VZ CPU invalidates its entries one index at a time, so
 * its cost grows with the size of the hardware TLB.
 */

#include <linux/kvm_host.h>
#include <asm/cpu-info.h>
#include <asm/mipsregs.h>
#include <asm/tlb.h>

void kvm_vz_local_flush_roottlb_all_guests(void)
{
	unsigned long flags, old_pagemask;
	int entry;

	local_irq_save(flags);
	old_pagemask = read_c0_pagemask();

	/* Invalidate every root entry that belongs to a guest. */
	for (entry = 0; entry < current_cpu_data.tlbsize; entry++) {
		write_c0_index(entry);
		write_c0_entryhi(UNIQUE_ENTRYHI(entry));
		write_c0_entrylo0(0);
		write_c0_entrylo1(0);
		tlb_write_indexed();
	}

	write_c0_pagemask(old_pagemask);
	local_irq_restore(flags);
}

void kvm_vz_local_flush_guesttlb_all(void)
{
	unsigned long flags;
	int entry;

	local_irq_save(flags);

	/* Invalidate every guest VTLB entry, one index at a time. */
	for (entry = 0; entry < current_cpu_data.guest.tlbsize; entry++) {
		write_gc0_index(entry);
		write_gc0_entryhi(UNIQUE_GUEST_ENTRYHI(entry));
		write_gc0_entrylo0(0);
		write_gc0_entrylo1(0);
		guest_tlb_write_indexed();
	}

	local_irq_restore(flags);
}
