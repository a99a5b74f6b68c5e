/* SPDX-License-Identifier: GPL-2.0 */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H
int foo_arch_init(void *opaque);
void foo_arch_exit(void);
#endif
