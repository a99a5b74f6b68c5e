// SPDX-License-Identifier: GPL-2.0-only
/*
 * Context fixture, x86 side: the indirect call forms the call graph must
 * resolve, and overrides of the common __weak hooks.
 */

#include <linux/kvm_host.h>
#include <linux/smp.h>

struct kvm_x86_ops kvm_x86_ops __read_mostly;

#define KVM_X86_OP(func) \
	DEFINE_STATIC_CALL_NULL(kvm_x86_##func, kvm_x86_ops.func);
KVM_X86_OP(enable_virtualization_cpu)
KVM_X86_OP(disable_virtualization_cpu)
KVM_X86_OP(flush_tlb_all)
#undef KVM_X86_OP

static int ctx_vmx_enable(void)
{
	ctx_leaf("vendor enable: kvm_x86_call() from the IPI");
	return 0;
}

static void ctx_vmx_disable(void)
{
	ctx_leaf("vendor disable: static_call() from STARTING teardown");
}

static void ctx_vmx_flush(void)
{
	ctx_leaf("vendor flush: kvm_x86_ops.flush_tlb_all() from the IPI");
}

static void ctx_vmx_sync(void)
{
	ctx_leaf("vendor sync: kvm_x86_ops.sync_state() from ioctl");
}

static struct kvm_x86_ops ctx_vmx_ops __initdata = {
	.enable_virtualization_cpu = ctx_vmx_enable,
	.disable_virtualization_cpu = ctx_vmx_disable,
	.flush_tlb_all = ctx_vmx_flush,
	.sync_state = ctx_vmx_sync,
};

int kvm_arch_hardware_enable(void)
{
	int r;

	r = kvm_x86_call(enable_virtualization_cpu)();
	if (r)
		return r;

	kvm_x86_ops.flush_tlb_all();
	return 0;
}

void kvm_arch_hardware_disable(void)
{
	static_call(kvm_x86_disable_virtualization_cpu)();
}

void kvm_arch_sync(void)
{
#ifdef CONFIG_X86_64
	kvm_x86_ops.sync_state();
#else
	ctx_leaf("ioctl, 32-bit branch");
#endif
}

void ctx_x86_install(void)
{
	memcpy(&kvm_x86_ops, &ctx_vmx_ops, sizeof(kvm_x86_ops));
}
