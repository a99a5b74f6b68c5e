// SPDX-License-Identifier: GPL-2.0-only
/*
 * Context fixture, MIPS side: hooks forwarding through a callbacks pointer.
 * Analysed with the common code when the arch is mips.
 */

#include <linux/kvm_host.h>

struct kvm_mips_callbacks *kvm_mips_callbacks;

static int ctx_vz_enable(void)
{
	ctx_leaf("VZ enable: kvm_mips_callbacks-> from the IPI");
	return 0;
}

static void ctx_vz_disable(void)
{
	ctx_leaf("VZ disable: kvm_mips_callbacks-> from STARTING teardown");
}

static struct kvm_mips_callbacks ctx_vz_callbacks = {
	.enable_virtualization_cpu = ctx_vz_enable,
	.disable_virtualization_cpu = ctx_vz_disable,
};

int kvm_arch_hardware_enable(void)
{
	return kvm_mips_callbacks->enable_virtualization_cpu();
}

void kvm_arch_hardware_disable(void)
{
	kvm_mips_callbacks->disable_virtualization_cpu();
}

void ctx_mips_install(void)
{
	kvm_mips_callbacks = &ctx_vz_callbacks;
}
