//! Inputs found by the fuzz targets (`fuzz/`) that crashed, kept as
//! regression tests: each must parse without panicking.

use analyzer::parse::{parse_file, recover_idioms};

fn check(bytes: &[u8]) {
    assert_eq!(recover_idioms(bytes).bytes.len(), bytes.len());
    let facts = parse_file("arch/arm64/kvm/fuzz.c", Some("arm64"), bytes);
    for f in &facts.functions {
        assert!(f.span.start <= f.span.end && f.span.end as usize <= bytes.len(), "{}", f.name);
    }
}

/// c_facts crash-d9b146bed6d4346cc12c63876bf5c25aa1537c64: a one-letter
/// "iterator macro" `r(...) {` after a cast: masking it as a keyword
/// sliced `out[start + 2..start + 1]` (mask.rs, `iterator_macro`).
#[test]
fn one_letter_iterator_macro_after_a_cast() {
    let mut b = b"\n\nint kvm_arm_timer_set_attr(struct kvm_vcpu *vcpu, struct kv".to_vec();
    b.extend([0u8; 103]);
    b.extend_from_slice(
        b"m_device_attr *attr)\n{\n\tint __user *uaddr = (int __user *)r(struct kvm_vcpu *vcpu, struct kvm_device_attr *attr)\n{\n\tint __use\n\tirq = timer->irq.irq;\n\treturn put_user(irq, uaddr);\n}\n\nint kvm_arm_timer_has_attr(struct kvm_vcpu *vcpu, struct kvm_device_attr *attr)\n{\n\tswitch (attr->attr) {\n\tcase KVM_ARM_VCPU_TIMER_IRQ_VTIMER:\n\tcase KVM_ARM_VCPU_TIMER_IRQ_PTIMER:\n\t\treturn 0;\n\t}\n\n\treturn -ENXIO;\n}\n",
    );
    assert_eq!(b.len(), 559);
    check(&b);
    // Reduced forms.
    check(b"void f(void)\n{\n\tx = (int *)r(a) {\n}\n");
    check(b"void f(void)\n{\n\tr(a) {\n\t}\n\tq(a) b;\n}\n");
}
