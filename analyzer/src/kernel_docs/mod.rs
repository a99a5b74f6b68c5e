//! The kernel's own documentation of KVM's execution contexts and locks,
//! read from the tree instead of hard-coded, so the analysis follows the
//! tree it runs on:
//!
//! - [`cpuhotplug`]: `enum cpuhp_state` from `include/linux/cpuhotplug.h`,
//!   whose order says in which section (PREPARE, STARTING, ONLINE) a CPU
//!   hotplug callback runs.
//! - [`locking`]: `Documentation/virt/kvm/locking.rst`, each lock's type and
//!   what it protects, and the documented acquisition order.
//!
//! Both parsers take raw bytes (invalid UTF-8 is decoded lossily), never
//! panic, and report malformed input as errors naming the file and line.

pub mod cpuhotplug;
pub mod locking;

pub use cpuhotplug::{CpuhpEnum, CpuhpError, CpuhpSection, CpuhpState};
pub use locking::{DocumentedLock, LockOrdering, LockingDoc, LockingDocError};
