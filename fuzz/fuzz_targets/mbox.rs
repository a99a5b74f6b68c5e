//! Series reading: mbox splitting and mail parsing (headers, RFC 2047
//! subjects, trailers, the diff) on arbitrary text.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchgen::series::apply::{parse_mail, split_mbox};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mails = split_mbox(&text);
    for (first, mail) in &mails {
        let _ = parse_mail("fuzz.mbox", mail, *first);
    }
    let _ = parse_mail("0001-fuzz.patch", &text, 1);
});
