//! The cache entry decoders on arbitrary bytes: as a file read from the
//! cache directory (magic, checksum, body), and sealed with a valid
//! checksum so that the body decoders (postcard into `FileFacts`, into a
//! result entry and its `ArchResult` payload) see the bytes too.
#![no_main]

use analyzer::cache::{decode_facts_entry, decode_result_entry, seal, EntryKey};
use libfuzzer_sys::fuzz_target;

const BLOB: &str = "0123456789abcdef0123456789abcdef01234567";
const PATH: &str = "virt/kvm/kvm_main.c";

fuzz_target!(|data: &[u8]| {
    let _ = decode_facts_entry(data, BLOB, PATH);
    let _ = decode_result_entry(data, "arch", 7);
    let facts = seal(&EntryKey::Facts { blob: BLOB, path: PATH }, data);
    assert!(analyzer::cache::unseal(&facts, &EntryKey::Facts { blob: BLOB, path: PATH }).is_ok());
    let _ = decode_facts_entry(&facts, BLOB, PATH);
    // Under another key, a sealed entry never verifies.
    assert!(decode_facts_entry(&facts, BLOB, "virt/kvm/other.c").is_err());
    let result = seal(&EntryKey::Result { kind: "arch", key: 7 }, data);
    if let Ok(payload) = decode_result_entry(&result, "arch", 7) {
        let _ = postcard::from_bytes::<analyzer::check::ArchResult>(&payload);
    }
    let _ = postcard::from_bytes::<analyzer::check::ArchResult>(data);
});
