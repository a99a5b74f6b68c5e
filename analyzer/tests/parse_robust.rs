//! The parser never panics and stays sensible on hostile input.

use analyzer::parse::{parse_file, parse_files, recover_idioms};

/// xorshift64*: a fixed-seed generator, enough to make varied buffers.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// Pieces of C and of the kernel's idioms, so random buffers reach the
/// masker's and extractor's paths instead of only lexer errors.
const TOKENS: &[&str] = &[
    "{",
    "}",
    "(",
    ")",
    ";",
    ",",
    "\n",
    "#ifdef X\n",
    "#else\n",
    "#endif\n",
    "#if A\n",
    "#define M(a) a\\\n",
    "list_for_each_entry(",
    "for_each_cpu(",
    "scoped_guard(",
    "guard(",
    "static_call(",
    "DEFINE_MUTEX(",
    "static ",
    "int ",
    "__weak ",
    "__init ",
    "x",
    "y",
    " = ",
    "&",
    "->",
    ".",
    "case ",
    "...",
    ":",
    "\"",
    "'",
    "/*",
    "*/",
    "//",
    "struct ",
    "return ",
    "if ",
    "else ",
    "goto out;",
    "out:",
    "asm(",
    "offsetof(",
    "EXPORT_SYMBOL_GPL(",
    "\\",
    "\r\n",
    "[",
    "]",
    "0x1f",
    "= {",
    ".f = ",
    "enum e {",
    "\u{e9}",
];

fn check(bytes: &[u8]) {
    let m = recover_idioms(bytes);
    assert_eq!(m.bytes.len(), bytes.len());
    let f = parse_file("fuzz.c", None, bytes);
    let len = bytes.len() as u32;
    for func in &f.functions {
        assert!(func.span.start <= func.span.end && func.span.end <= len);
        assert!(func.name_span.end <= len);
    }
    for g in &f.globals {
        assert!(g.span.end <= len);
    }
    for d in &f.diagnostics {
        assert!(d.span.end <= len);
    }
}

#[test]
fn random_bytes_never_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for _ in 0..1500 {
        let n = rng.below(600) as usize;
        let buf: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
        check(&buf);
    }
}

#[test]
fn random_token_soup_never_panics() {
    let mut rng = Rng(42);
    for _ in 0..2000 {
        let n = rng.below(120) as usize;
        let mut buf = Vec::new();
        for _ in 0..n {
            buf.extend_from_slice(TOKENS[rng.below(TOKENS.len() as u64) as usize].as_bytes());
        }
        check(&buf);
    }
}

#[test]
fn non_utf8_is_read_as_bytes() {
    let mut src = b"static int f(void)\n{\n\tputs(\"".to_vec();
    src.extend_from_slice(&[0xff, 0xfe, 0x80]);
    src.extend_from_slice(b"\");\n\treturn g_\xe9(1);\n}\nint h(void) { return 0; }\n");
    let f = parse_file("bin.c", None, &src);
    assert!(f.functions.iter().any(|x| x.name == "f"));
    assert!(f.functions.iter().any(|x| x.name == "h"));
    let fun = &f.functions[0];
    assert_eq!(&src[fun.name_span.start as usize..fun.name_span.end as usize], b"f");
}

#[test]
fn truncated_function_keeps_earlier_facts() {
    let src = "DEFINE_MUTEX(m);\nint whole(void) { return 1; }\nstatic int cut(struct kvm *kvm)\n{\n\tmutex_lock(&m);\n\tif (kvm->x) {\n\t\tfoo(";
    let f = parse_file("cut.c", None, src.as_bytes());
    assert!(f.functions.iter().any(|x| x.name == "whole"));
    assert!(f.globals.iter().any(|g| g.name == "m"));
    assert!(!f.diagnostics.is_empty());
}

#[test]
fn deep_nesting_does_not_overflow() {
    let n = 10_000;
    let mut s = String::from("int f(void)\n{\n\treturn ");
    s.push_str(&"(".repeat(n));
    s.push('1');
    s.push_str(&")".repeat(n));
    s.push_str(";\n}\nint g(void)\n{\n");
    s.push_str(&"{".repeat(n));
    s.push_str("h();");
    s.push_str(&"}".repeat(n));
    s.push_str("\n}\n");
    s.push_str(&"#ifdef X\n".repeat(2000));
    s.push_str("int k(void) { return 0; }\n");
    s.push_str(&"#endif\n".repeat(2000));
    s.push_str("void m(void) { a(b(c(d(e(f(g(h(i(j(0)))))))))); }\n");
    // Calls nested deeper than the walk limit.
    s.push_str("void deep(void) { ");
    s.push_str(&"q(".repeat(n));
    s.push_str(&")".repeat(n));
    s.push_str("; }\n");
    let f = parse_file("deep.c", None, s.as_bytes());
    for name in ["f", "g", "m", "deep"] {
        assert!(f.functions.iter().any(|x| x.name == name), "{name}");
    }
    let k = f.functions.iter().find(|x| x.name == "k").expect("k");
    assert_eq!(k.condition.len(), analyzer::parse::mask::MAX_CONDITIONS);
}

#[test]
fn empty_and_tiny_inputs() {
    for s in ["", "\n", "{", "}", "#", "#if", "(", "\"", "/*", "a(", "a(b) {", "DEFINE_MUTEX(", "\\"] {
        check(s.as_bytes());
    }
}

#[test]
fn parallel_output_in_input_order() {
    let files: Vec<(String, Option<String>, Vec<u8>)> = (0..64)
        .map(|i| (format!("f{i}.c"), None, format!("int fn{i}(void) {{ return {i}; }}\n").into_bytes()))
        .collect();
    let out = parse_files(&files);
    for (i, f) in out.iter().enumerate() {
        assert_eq!(f.path, format!("f{i}.c"));
        assert_eq!(f.functions[0].name, format!("fn{i}"));
    }
}
