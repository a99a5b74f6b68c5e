//! Documentation/virt/kvm/locking.rst parser on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(doc) = analyzer::kernel_docs::LockingDoc::parse("Documentation/virt/kvm/locking.rst", data) {
        for l in &doc.locks {
            let _ = doc.lock(&l.name);
        }
    }
});
