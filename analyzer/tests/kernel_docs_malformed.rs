//! Malformed and hostile inputs: clear errors with file and line, never a
//! panic.

mod source_common;

use analyzer::kernel_docs::{CpuhpEnum, CpuhpSection, LockingDoc};

const H: &str = "include/linux/cpuhotplug.h";
const R: &str = "Documentation/virt/kvm/locking.rst";

fn cpuhp_err(text: &[u8]) -> String {
    CpuhpEnum::parse(H, text).unwrap_err().to_string()
}

#[test]
fn cpuhp_errors() {
    assert_eq!(
        cpuhp_err(b"int __cpuhp_setup_state(enum cpuhp_state state);\n"),
        "include/linux/cpuhotplug.h: no `enum cpuhp_state { ... }` definition found"
    );
    assert_eq!(
        cpuhp_err(b"/* x */\nenum cpuhp_state {\n\tCPUHP_OFFLINE,\n\tCPUHP_BRINGUP_CPU,\n"),
        "include/linux/cpuhotplug.h:2: unterminated `enum cpuhp_state`: expected `}` before the end of the file"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\tCPUHP_OFFLINE, /* never closed\n};\n"),
        "include/linux/cpuhotplug.h:2: unterminated comment: expected `*/` before the end of the file"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\tCPUHP_OFFLINE = 0,\n\tCPUHP_X = CPUHP_LATER + 1,\n\tCPUHP_LATER,\n};\n"),
        "include/linux/cpuhotplug.h:3: cannot evaluate the value of `CPUHP_X`: `CPUHP_LATER` is not an earlier enumerator of `enum cpuhp_state`"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\tCPUHP_OFFLINE = ,\n};\n"),
        "include/linux/cpuhotplug.h:2: cannot evaluate the value of `CPUHP_OFFLINE`: empty expression after `=`"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\tCPUHP_OFFLINE\n\tCPUHP_BRINGUP_CPU,\n};\n"),
        "include/linux/cpuhotplug.h:3: expected `,`, `=` or `}` after an enumerator, found `CPUHP_BRINGUP_CPU`"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\t42,\n};\n"),
        "include/linux/cpuhotplug.h:2: expected an enumerator name or `}`, found `42`"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\tCPUHP_OFFLINE,\n\tCPUHP_AP_ONLINE,\n};\n"),
        "include/linux/cpuhotplug.h: `enum cpuhp_state` has no `CPUHP_BRINGUP_CPU`; expected it as the section boundary between PREPARE and STARTING"
    );
    assert_eq!(
        cpuhp_err(b"enum cpuhp_state {\n\tCPUHP_OFFLINE,\n\tCPUHP_BRINGUP_CPU,\n};\n"),
        "include/linux/cpuhotplug.h: `enum cpuhp_state` has no `CPUHP_AP_ONLINE`; expected it as the section boundary between STARTING and ONLINE"
    );
}

#[test]
fn cpuhp_tolerates_ifdefs_comments_and_non_utf8() {
    let text = b"/* caf\xe9 */\n#define X \\\n  enum cpuhp_state { BOGUS }\nenum cpuhp_state {\n\tCPUHP_OFFLINE = 0, // first\n#ifdef CONFIG_X\n\tCPUHP_X_PREPARE,\n#else\n\tCPUHP_Y_PREPARE,\n#endif\n\tCPUHP_BRINGUP_CPU,\n\t/* STARTING */\n\tCPUHP_AP_FOO_STARTING,\n\tCPUHP_AP_ONLINE,\n\tCPUHP_AP_BAR_ONLINE = (CPUHP_AP_ONLINE + 0x10),\n};\n";
    let e = CpuhpEnum::parse(H, text).unwrap();
    let names: Vec<&str> = e.states.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "CPUHP_OFFLINE",
            "CPUHP_X_PREPARE",
            "CPUHP_Y_PREPARE",
            "CPUHP_BRINGUP_CPU",
            "CPUHP_AP_FOO_STARTING",
            "CPUHP_AP_ONLINE",
            "CPUHP_AP_BAR_ONLINE"
        ]
    );
    assert_eq!(e.section_of("CPUHP_AP_FOO_STARTING"), Some(CpuhpSection::Starting));
    assert_eq!(e.get("CPUHP_AP_BAR_ONLINE").unwrap().index, 21);
    assert_eq!(e.get("CPUHP_AP_BAR_ONLINE").unwrap().line, 15);
}

#[test]
fn locking_errors() {
    assert_eq!(
        LockingDoc::parse(R, b"").unwrap_err().to_string(),
        "Documentation/virt/kvm/locking.rst: no lock entries found; expected titles like ``kvm_lock`` underlined with ^^^^ and followed by :Type: fields"
    );
    assert_eq!(
        LockingDoc::parse(R, b"Title\n=====\n\n``kvm_lock``\n^^^^^^^^^^^^\n\n:Arch: any\n:Protects: - vm_list\n")
            .unwrap_err()
            .to_string(),
        "Documentation/virt/kvm/locking.rst:4: lock entry ``kvm_lock`` has no :Type: field; expected a line like `:Type: mutex` after its title"
    );
}

#[test]
fn locking_odd_but_valid() {
    let text = b"1. Lock ordering\n----------------\n\n- ``&a_lock`` is taken outside b_lock()\n  and c_lock; caf\xe9\n- something unrelated is taken outside of the box\n\n2. Reference\n------------\n\n``&a_lock``\n^^^^^^^^^^^\n:Type:\t\tspinlock_t\n:Arch:\t\ts390\n:Protects:\t- one\n\t\t  continued\n\t\t- two\n:Comment:\tline one\n    line two\n";
    let doc = LockingDoc::parse(R, text).unwrap();
    assert_eq!(doc.locks.len(), 1);
    let l = &doc.locks[0];
    assert_eq!(l.name, "a_lock");
    assert_eq!(l.arch.as_deref(), Some("s390"));
    assert_eq!(l.protects, ["one continued", "two"]);
    assert_eq!(l.comment, "line one line two");
    let pairs: Vec<(&str, &str, u32)> =
        doc.orderings.iter().map(|o| (o.outer.as_str(), o.inner.as_str(), o.line)).collect();
    assert_eq!(pairs, [("a_lock", "b_lock", 4), ("a_lock", "c_lock", 4)]);
}

/// Every prefix of the real files, and byte-flipped copies, parse or fail
/// cleanly.
#[test]
fn no_panics_on_truncated_or_garbled_input() {
    let mut inputs: Vec<Vec<u8>> = vec![
        b"enum cpuhp_state {".to_vec(),
        b"enum cpuhp_state { A = (".to_vec(),
        b"enum cpuhp_state { A = 1 << 70, B = -(-9223372036854775807 - 1) / -1, C = 5 % 0 };".to_vec(),
        b"enum cpuhp_state { A = 'x', B = \"}\" };".to_vec(),
        b"``x``\n^^^^\n:Type:\n".to_vec(),
        b"``\n^^^\n".to_vec(),
        b":\n::\n:::Type:::\n- \n-\n".to_vec(),
        vec![0xff; 64],
        vec![b'\n'; 8],
    ];
    for v in ["6.1", "6.12"] {
        let Some(dir) = source_common::real_kernel(v) else {
            return;
        };
        for rel in [H, R] {
            let bytes = std::fs::read(dir.join(rel)).unwrap();
            for cut in (0..bytes.len()).step_by(97) {
                inputs.push(bytes[..cut].to_vec());
                let mut garbled = bytes.clone();
                garbled[cut] ^= 0x80;
                inputs.push(garbled);
            }
        }
    }
    for input in &inputs {
        let _ = CpuhpEnum::parse(H, input);
        let _ = LockingDoc::parse(R, input);
    }
}
