//! include/linux/cpuhotplug.h (enum cpuhp_state) parser on arbitrary bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(e) = analyzer::kernel_docs::CpuhpEnum::parse("include/linux/cpuhotplug.h", data) {
        for s in &e.states {
            let _ = e.section_of(&s.name);
        }
    }
});
