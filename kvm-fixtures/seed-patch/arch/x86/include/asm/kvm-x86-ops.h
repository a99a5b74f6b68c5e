/* SPDX-License-Identifier: GPL-2.0 */
#ifndef KVM_X86_OP_OPTIONAL
#error "define KVM_X86_OP() and KVM_X86_OP_OPTIONAL() before including this"
#endif

/*
 * One line per kvm_x86_ops member that is invoked through a static call.
 * The includer defines KVM_X86_OP() (mandatory hooks) and
 * KVM_X86_OP_OPTIONAL() (hooks a vendor may leave NULL) to declare, define
 * or update the static calls kvm_x86_<member>.
 */
KVM_X86_OP(hardware_enable)
KVM_X86_OP(hardware_disable)
KVM_X86_OP(hardware_unsetup)
KVM_X86_OP(vm_init)
KVM_X86_OP_OPTIONAL(vm_destroy)

#undef KVM_X86_OP
#undef KVM_X86_OP_OPTIONAL
