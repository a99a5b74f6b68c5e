//! Series reading on arbitrary bytes: mbox splitting, MIME decoding
//! (base64, quoted-printable, charsets, multipart, RFC 2047 headers),
//! subjects and trailers, the diff, and collecting a series (revisions,
//! replies, cover letters, numbering) from two inputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use patchgen::series::apply::mail::{collect_series, InputFile};
use patchgen::series::apply::{parse_mail, split_mbox};

fuzz_target!(|data: &[u8]| {
    let mails = split_mbox(data);
    for (first, mail) in &mails {
        let _ = parse_mail("fuzz.mbox", mail, *first);
    }
    let _ = parse_mail("0001-fuzz.patch", data, 1);
    // The same bytes as an mbox and, split at the middle, as two files.
    let mid = data.len() / 2;
    let inputs = [
        InputFile { name: "a.mbox".into(), bytes: data.to_vec() },
        InputFile { name: "b.patch".into(), bytes: data[..mid].to_vec() },
        InputFile { name: "c.patch".into(), bytes: data[mid..].to_vec() },
    ];
    let _ = collect_series(&inputs);
});
