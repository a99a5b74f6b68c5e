/* SPDX-License-Identifier: GPL-2.0-only */
#ifndef __KVM_HOST_H
#define __KVM_HOST_H

/*
 * Stub declarations for the broken-series fixture: just enough for
 * `gcc -fsyntax-only -Iinclude virt/kvm/kvm_main.c` to check the tree.
 */
#define NULL ((void *)0)
#define EBUSY 16
#define EIO 5

typedef struct { int raw; } raw_spinlock_t;
struct mutex { int owner; };
typedef struct { int counter; } atomic_t;

#define DEFINE_RAW_SPINLOCK(name) raw_spinlock_t name
#define DEFINE_MUTEX(name) struct mutex name

void raw_spin_lock(raw_spinlock_t *lock);
void raw_spin_unlock(raw_spinlock_t *lock);
void mutex_lock(struct mutex *lock);
void mutex_unlock(struct mutex *lock);
void atomic_set(atomic_t *v, int i);
int atomic_read(const atomic_t *v);
void atomic_inc(atomic_t *v);
void on_each_cpu(void (*func)(void *info), void *info, int wait);
int raw_smp_processor_id(void);
int printk(const char *fmt, ...);
#define pr_info(fmt, ...) printk(fmt, ##__VA_ARGS__)

int kvm_arch_hardware_enable(void);
void kvm_arch_hardware_disable(void);

int kvm_init(void);
void kvm_exit(void);

#endif
