//! Kernel idiom recovery: a lexical pass that rewrites the source into a
//! same-length byte buffer tree-sitter-c can parse, and remembers what it
//! rewrote.
//!
//! Why masking and not a grammar fork: the kernel's idioms are macros
//! (`list_for_each_entry(...) {`, `__weak`, `DEFINE_MUTEX(x);`) that plain C
//! cannot express; rewriting them in place keeps every byte offset of the
//! original file valid, so facts extracted from the masked tree carry spans
//! that patch generation can use on the original text.
//!
//! Rewrites (all same length, only inside code, never inside comments,
//! strings, char literals or preprocessor lines):
//! - annotation words (`__weak`, `__init`, `__read_mostly`, `__user`, ...) and
//!   function-like annotations (`__acquires(x)`, `__printf(1, 2)`) become
//!   spaces; recorded as [`Annotation`]s.
//! - in function bodies, `IDENT(args)` at the start of a statement and
//!   followed by `{` or by another statement is an iterator macro
//!   (`for_each_online_cpu(cpu)`, `scoped_guard(mutex, &l)`): `IDENT` becomes
//!   `while` (or `if` when shorter than 5 bytes), padded with spaces; the
//!   argument list stays as a comma expression. Recorded as [`IteratorSite`].
//! - at file scope, `[static] DEFINE_MUTEX(x);`-style defining macros become
//!   `[static] int         (x);` (the macro name becomes `int`, the
//!   arguments other than the defined name become spaces), so the tree has a
//!   declaration whose declarator sits at the exact offset of the name.
//!   Recorded as [`DefineSite`].
//! - other file-scope macro statements (`EXPORT_SYMBOL_GPL(x);`,
//!   `module_param(x, bool, 0444);`, `KVM_X86_OP(x)` lines) become spaces;
//!   recorded as [`TopMacro`].
//!
//! The pass also tracks `#if`/`#ifdef` nesting to give every offset its
//! condition list ([`CondMap`]).

use super::text::{is_ident_char, is_ident_start};

/// Annotation words that are recorded as attributes of the function or
/// variable they are written on.
const ATTR_WORDS: &[&str] = &[
    "__weak",
    "__init",
    "__exit",
    "__visible",
    "noinstr",
    "__cold",
    "__hot",
    "__always_inline",
    "__read_mostly",
    "__ro_after_init",
    "__initdata",
    "__initconst",
    "__exitdata",
    "__refdata",
    "__maybe_unused",
    "__always_unused",
    "__used",
    "__must_check",
    "asmlinkage",
    "__noreturn",
    "noinline",
    "noinline_for_stack",
    "notrace",
    "__sched",
    "__kprobes",
    "nokprobe_inline",
    "__flatten",
    "__pure",
    "__attribute_const__",
    "__cacheline_aligned",
    "__cacheline_aligned_in_smp",
    "____cacheline_aligned",
    "____cacheline_aligned_in_smp",
    "__page_aligned_bss",
    "__page_aligned_data",
    "__packed",
    "__ref",
    "__init_or_module",
    "__no_kcsan",
    "__no_sanitize_address",
    "__nocfi",
    "__noclone",
    "__naked",
    "__latent_entropy",
    "__randomize_layout",
    "__noendbr",
    "__irq_entry",
    "__deprecated",
    "__malloc",
    "__lockfunc",
    "__meminit",
    "__head",
    "__nostackprotector",
    "__no_stack_protector",
    "__noscs",
    "__hyp_text",
    "__always_unused",
    "__designated_init",
    "__no_profile",
    "__nonstring",
    "__initdata_or_module",
];

/// Type qualifiers the checker (sparse) uses: masked so tree-sitter sees
/// plain C types, but not recorded (they say nothing about the symbol).
const QUALIFIER_WORDS: &[&str] = &[
    "__user",
    "__iomem",
    "__rcu",
    "__percpu",
    "__force",
    "__bitwise",
    "__kernel",
    "__nocast",
    "__safe",
    "__private",
    "__data_racy",
];

/// Function-like annotations, masked together with their parenthesized
/// arguments. Recorded (with arguments) as attributes.
const ATTR_CALLS: &[&str] = &[
    "__acquires",
    "__releases",
    "__must_hold",
    "__cond_acquires",
    "__cond_releases",
    "__printf",
    "__scanf",
    "__aligned",
    "__section",
    "__alias",
    "__alloc_size",
    "__counted_by",
    "__free",
    "__cleanup",
    "__assume_aligned",
    "__nonnull",
    "__guarded_by",
    "__pt_guarded_by",
    "__no_sanitize_or_inline",
];

/// Macros that define a file-scope variable, with the type they define.
/// Names not listed but starting with `DEFINE_`/`DECLARE_` or ending in
/// `_HEAD` are recognized too (type left empty).
const DEFINE_TYPES: &[(&str, &str)] = &[
    ("DEFINE_MUTEX", "struct mutex"),
    ("DEFINE_SPINLOCK", "spinlock_t"),
    ("DEFINE_RAW_SPINLOCK", "raw_spinlock_t"),
    ("DEFINE_RWLOCK", "rwlock_t"),
    ("DEFINE_SEQLOCK", "seqlock_t"),
    ("DECLARE_RWSEM", "struct rw_semaphore"),
    ("DEFINE_SRCU", "struct srcu_struct"),
    ("DEFINE_STATIC_SRCU", "struct srcu_struct"),
    ("LIST_HEAD", "struct list_head"),
    ("HLIST_HEAD", "struct hlist_head"),
    ("LLIST_HEAD", "struct llist_head"),
    ("DEFINE_STATIC_KEY_FALSE", "struct static_key_false"),
    ("DEFINE_STATIC_KEY_TRUE", "struct static_key_true"),
    ("DECLARE_STATIC_KEY_FALSE", "struct static_key_false"),
    ("DECLARE_STATIC_KEY_TRUE", "struct static_key_true"),
    ("DEFINE_STATIC_KEY_DEFERRED_FALSE", "struct static_key_false_deferred"),
    ("DEFINE_STATIC_KEY_DEFERRED_TRUE", "struct static_key_true_deferred"),
    ("DECLARE_STATIC_KEY_DEFERRED_FALSE", "struct static_key_false_deferred"),
    ("DEFINE_IDA", "struct ida"),
    ("DEFINE_IDR", "struct idr"),
    ("DEFINE_XARRAY", "struct xarray"),
    ("DEFINE_XARRAY_ALLOC", "struct xarray"),
    ("DECLARE_WAIT_QUEUE_HEAD", "wait_queue_head_t"),
    ("DECLARE_BITMAP", "unsigned long []"),
    ("DEFINE_RATELIMIT_STATE", "struct ratelimit_state"),
    ("ATOMIC_NOTIFIER_HEAD", "struct atomic_notifier_head"),
    ("BLOCKING_NOTIFIER_HEAD", "struct blocking_notifier_head"),
    ("RAW_NOTIFIER_HEAD", "struct raw_notifier_head"),
    ("SRCU_NOTIFIER_HEAD", "struct srcu_notifier_head"),
    ("DEFINE_STATIC_CALL", "struct static_call_key"),
    ("DEFINE_STATIC_CALL_NULL", "struct static_call_key"),
    ("DEFINE_STATIC_CALL_RET0", "struct static_call_key"),
    ("DECLARE_STATIC_CALL", "struct static_call_key"),
    ("DEFINE_SIMPLE_ATTRIBUTE", "const struct file_operations"),
    ("DEFINE_DEBUGFS_ATTRIBUTE", "const struct file_operations"),
    ("DEFINE_SHOW_ATTRIBUTE", "const struct file_operations"),
    ("DECLARE_KFIFO", "struct kfifo"),
    ("DEFINE_KFIFO", "struct kfifo"),
    ("DECLARE_COMPLETION", "struct completion"),
    ("DEFINE_WAIT_FUNC", "struct wait_queue_entry"),
    ("DEFINE_HASHTABLE", "struct hlist_head []"),
    ("DECLARE_HASHTABLE", "struct hlist_head []"),
];

/// C keywords and builtins that can look like `IDENT(...)` in code but are
/// never iterator macros.
const KEYWORDS: &[&str] = &[
    "if",
    "while",
    "for",
    "switch",
    "return",
    "sizeof",
    "typeof",
    "__typeof__",
    "__typeof",
    "_Alignof",
    "alignof",
    "__alignof__",
    "defined",
    "do",
    "else",
    "case",
    "default",
    "goto",
    "asm",
    "__asm__",
    "__asm",
    "volatile",
    "__volatile__",
    "__attribute__",
    "__attribute",
    "_Static_assert",
    "static_assert",
    "_Generic",
    "offsetof",
    "__builtin_offsetof",
    "va_arg",
    "__extension__",
    "inline",
    "__inline",
    "__inline__",
    "const",
    "static",
    "extern",
    "struct",
    "union",
    "enum",
    "unsigned",
    "signed",
    "int",
    "long",
    "short",
    "char",
    "void",
    "float",
    "double",
    "_Bool",
    "bool",
    "register",
    "auto",
    "typedef",
    "break",
    "continue",
];

/// Kind of a recorded annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AnnotationKind {
    /// An attribute of the symbol (`__weak`, `__acquires(l)`).
    Attribute,
    /// A sparse type qualifier (`__user`): masked, not an attribute.
    Qualifier,
}

/// A masked annotation word (with its arguments for function-like ones).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Annotation {
    pub start: u32,
    pub end: u32,
    /// As written, whitespace-normalized (`__weak`, `__acquires(kvm->lock)`).
    pub text: String,
    pub kind: AnnotationKind,
}

/// An iterator macro rewritten to `while`/`if`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IteratorSite {
    /// Offset of the macro name (= of the `while`/`if` in the masked text).
    pub start: u32,
    pub macro_name: String,
}

/// A file-scope defining macro (`static DEFINE_MUTEX(kvm_lock);`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DefineSite {
    /// Offset of the macro name (where the masked `int` starts).
    pub macro_start: u32,
    pub macro_name: String,
    /// Byte ranges of the arguments (trimmed), in the original text.
    pub args: Vec<(u32, u32)>,
    /// Index in `args` of the defined name.
    pub name_arg: usize,
    /// Type defined, as far as known (`struct mutex`; `bool` for
    /// `DEFINE_PER_CPU(bool, x)`).
    pub type_text: String,
    /// End of the statement (after `;`), or of the `)` when followed by `=`.
    pub end: u32,
}

/// A file-scope macro statement masked to spaces (`EXPORT_SYMBOL_GPL(x);`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopMacro {
    pub name: String,
    pub start: u32,
    /// End of the statement (after `;` when there is one).
    pub end: u32,
    pub args: Vec<(u32, u32)>,
}

/// `#if` conditions by offset: `segments[i] = (start, conditions)` holds
/// from `start` to the next segment's start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct CondMap {
    segments: Vec<(u32, Vec<String>)>,
}

impl CondMap {
    /// The `#if` conditions in force at `offset`, outermost first.
    pub fn at(&self, offset: u32) -> &[String] {
        let idx = match self.segments.binary_search_by(|(s, _)| s.cmp(&offset)) {
            Ok(i) => i,
            Err(0) => return &[],
            Err(i) => i - 1,
        };
        self.segments.get(idx).map(|(_, c)| c.as_slice()).unwrap_or(&[])
    }
}

/// The result of idiom recovery: the masked bytes (same length as the
/// input) and what was rewritten where, sorted by offset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Masked {
    /// The masked source, same length as the input.
    pub bytes: Vec<u8>,
    /// Annotation words blanked (`__weak`, `__user`, `__acquires(l)`).
    pub annotations: Vec<Annotation>,
    /// Iterator macros rewritten to `while`/`if`.
    pub iterators: Vec<IteratorSite>,
    /// File-scope defining macros rewritten to `int (name)`.
    pub defines: Vec<DefineSite>,
    /// File-scope macro statements blanked.
    pub top_macros: Vec<TopMacro>,
    /// `#if` conditions by offset.
    pub conds: CondMap,
    /// The line ends (offsets of `\n`) at file scope: outside braces,
    /// parentheses, comments, strings and `#if` blocks (include guards
    /// too). [`Masked::chunks`] cuts the file at some of them.
    pub file_scope_line_ends: Vec<u32>,
}

impl Masked {
    /// The iterator macro rewritten at `offset`, if any.
    pub fn iterator_at(&self, offset: u32) -> Option<&str> {
        self.iterators.binary_search_by(|s| s.start.cmp(&offset)).ok().map(|i| self.iterators[i].macro_name.as_str())
    }

    /// The defining macro whose masked `int` starts at `offset`, if any.
    pub fn define_at(&self, offset: u32) -> Option<&DefineSite> {
        self.defines.binary_search_by(|s| s.macro_start.cmp(&offset)).ok().map(|i| &self.defines[i])
    }

    /// Annotations whose start lies in `start..end`.
    pub fn annotations_in(&self, start: u32, end: u32) -> &[Annotation] {
        let lo = self.annotations.partition_point(|a| a.start < start);
        let hi = self.annotations.partition_point(|a| a.start < end).max(lo);
        &self.annotations[lo..hi]
    }

    /// The file cut into its top-level chunks, which tree-sitter parses
    /// one by one: a cut follows a line that ends, at file scope (see
    /// [`Masked::file_scope_line_ends`]), with a `;` or `}` of the code
    /// (not masked) and nothing after it but blanks. There the parser is
    /// between two top-level items whatever came before, so a chunk parses
    /// as it would in its file, and what extraction reads of a chunk
    /// (its bytes, the masker's records in it, the blank run before a
    /// definition) lies in the chunk: an unchanged chunk of a new version
    /// of the file has the same facts, moved. Covers `0..src.len()`.
    pub fn chunks(&self, src: &[u8]) -> Vec<std::ops::Range<usize>> {
        let mut out = Vec::new();
        let mut from = 0usize;
        for &nl in &self.file_scope_line_ends {
            let nl = nl as usize;
            let mut k = nl;
            while k > from && matches!(src[k - 1], b' ' | b'\t' | b'\r') {
                k -= 1;
            }
            let ends_item = k > from && matches!(src[k - 1], b';' | b'}') && self.bytes.get(k - 1) == src.get(k - 1);
            if ends_item {
                out.push(from..nl + 1);
                from = nl + 1;
            }
        }
        if from < src.len() || out.is_empty() {
            out.push(from..src.len());
        }
        out
    }

    /// What the masker found in `range` (one of [`Masked::chunks`]), with
    /// offsets from the range's start: the masked bytes, the annotations,
    /// iterators and defining macros starting there, and the conditions in
    /// force. File-scope macro statements are left out: extraction reads
    /// them for the whole file.
    pub fn part(&self, range: std::ops::Range<usize>) -> Masked {
        let (lo, hi) = (super::text::clamp_u32(range.start), super::text::clamp_u32(range.end));
        // Records are sorted by offset: take the run inside the range.
        fn run<T>(v: &[T], lo: u32, hi: u32, at: impl Fn(&T) -> u32) -> &[T] {
            let a = v.partition_point(|x| at(x) < lo);
            let b = v.partition_point(|x| at(x) < hi).max(a);
            &v[a..b]
        }
        let mut segments = Vec::new();
        let first = self.conds.at(lo);
        if !first.is_empty() {
            segments.push((0, first.to_vec()));
        }
        segments.extend(
            run(&self.conds.segments, lo.saturating_add(1), hi, |s| s.0).iter().map(|(s, c)| (s - lo, c.clone())),
        );
        Masked {
            bytes: self.bytes[range].to_vec(),
            annotations: run(&self.annotations, lo, hi, |a| a.start)
                .iter()
                .map(|a| Annotation { start: a.start - lo, end: a.end.saturating_sub(lo), ..a.clone() })
                .collect(),
            iterators: run(&self.iterators, lo, hi, |s| s.start)
                .iter()
                .map(|s| IteratorSite { start: s.start - lo, ..s.clone() })
                .collect(),
            defines: run(&self.defines, lo, hi, |d| d.macro_start)
                .iter()
                .map(|d| DefineSite {
                    macro_start: d.macro_start - lo,
                    args: d.args.iter().map(|&(s, e)| (s.saturating_sub(lo), e.saturating_sub(lo))).collect(),
                    end: d.end.saturating_sub(lo),
                    ..d.clone()
                })
                .collect(),
            top_macros: Vec::new(),
            conds: CondMap { segments },
            file_scope_line_ends: Vec::new(),
        }
    }
}

/// Most `#if` conditions kept per offset (outermost first); real code
/// nests a handful.
pub const MAX_CONDITIONS: usize = 64;

/// The previous significant token, which decides what an identifier
/// followed by `(` can be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Prev {
    Start,
    Semi,
    LBrace,
    RBrace,
    LParen,
    RParen,
    Colon,
    Else,
    Do,
    Eq,
    Comma,
    /// `static`/`extern` and friends at file scope.
    Storage,
    /// An identifier that is not a keyword.
    Ident,
    Other,
}

const OTHER: u8 = 0;
const CODE: u8 = 1;
const INIT: u8 = 2;

struct CondFrame {
    /// Conditions pushed for the current branch.
    current: Vec<String>,
    /// Negations of the earlier branches of this chain.
    negated: Vec<String>,
    /// Brace stack when the `#if` was seen, restored at `#else`/`#elif`.
    braces_at_if: Vec<u8>,
    /// Brace stack at the end of the first branch, restored at `#endif`.
    braces_after_first: Option<Vec<u8>>,
    /// An include guard: contributes no condition.
    guard: bool,
    /// Opened in a function body or at file scope: a split construct here
    /// breaks the parse (struct bodies and enums hold directives fine).
    structural: bool,
    /// Byte ranges of this chain's directive lines.
    lines: Vec<(usize, usize)>,
    /// Where the content after the first `#else`/`#elif` line starts.
    alt_start: Option<usize>,
    /// The chain splits a construct (unbalanced braces, a branch ending
    /// mid-statement, a dangling `else`): flattened at `#endif`.
    split: bool,
    /// The next token is the first of a branch.
    first_pending: bool,
    prev_at_if: Prev,
    prev_after_first: Option<Prev>,
    parens_at_if: Vec<(bool, usize)>,
    parens_after_first: Option<Vec<(bool, usize)>>,
}

impl CondFrame {
    /// Check the branch that just ended for a split construct.
    fn end_branch(&mut self, braces_now: &[u8], prev_now: Prev) {
        if braces_now != self.braces_at_if.as_slice() {
            self.split = true;
        }
        let clean_end = matches!(prev_now, Prev::Semi | Prev::RBrace | Prev::LBrace | Prev::Start | Prev::Colon);
        if !clean_end && prev_now != self.prev_at_if {
            self.split = true;
        }
    }
}

struct Scanner<'a> {
    src: &'a [u8],
    out: Vec<u8>,
    i: usize,
    /// One entry per open brace: its kind (`CODE`, `INIT`, `OTHER`).
    braces: Vec<u8>,
    /// One entry per open parenthesis: (is it the argument list of a call
    /// in code, brace depth when opened).
    parens: Vec<(bool, usize)>,
    /// After `case` in code, until its `:`: `...` is a GNU case range.
    in_case: bool,
    /// The last identifier (start, end), and whether it could be a label.
    last_word: (usize, usize),
    label_cand: bool,
    /// Offset after the last `;`, `{` or `}`.
    last_boundary: usize,
    prev: Prev,
    /// The last `}` closed a function body (or a block in one).
    closed_code: bool,
    line_start: bool,
    frames: Vec<CondFrame>,
    seen_cond: bool,
    masked: Masked,
}

/// Rewrite the kernel's idioms into parseable C of the same length.
pub fn recover_idioms(src: &[u8]) -> Masked {
    let mut s = Scanner {
        src,
        out: src.to_vec(),
        i: 0,
        braces: Vec::new(),
        parens: Vec::new(),
        in_case: false,
        last_word: (0, 0),
        label_cand: false,
        last_boundary: 0,
        prev: Prev::Start,
        closed_code: false,
        line_start: true,
        frames: Vec::new(),
        seen_cond: false,
        masked: Masked::default(),
    };
    s.run();
    let mut m = s.masked;
    m.bytes = s.out;
    m.annotations.sort_by_key(|a| a.start);
    m.iterators.sort_by_key(|a| a.start);
    m.defines.sort_by_key(|a| a.macro_start);
    m.top_macros.sort_by_key(|a| a.start);
    m
}

impl<'a> Scanner<'a> {
    fn at(&self, i: usize) -> u8 {
        self.src.get(i).copied().unwrap_or(0)
    }

    fn in_code(&self) -> bool {
        self.braces.last() == Some(&CODE)
    }

    fn run(&mut self) {
        let n = self.src.len();
        while self.i < n {
            let c = self.src[self.i];
            match c {
                b'\n' => {
                    // A `}` ends an item only when it closes a function body
                    // (a struct's or an initializer's `}` has its declarators
                    // or `;` to come, maybe on the next line).
                    let ends_item = self.prev != Prev::RBrace || self.closed_code;
                    if self.braces.is_empty() && self.parens.is_empty() && self.frames.is_empty() && ends_item {
                        self.masked.file_scope_line_ends.push(super::text::clamp_u32(self.i));
                    }
                    self.line_start = true;
                    self.i += 1;
                }
                b' ' | b'\t' | b'\r' | b'\x0c' | b'\x0b' => self.i += 1,
                b'\\' if matches!(self.at(self.i + 1), b'\n' | b'\r') => self.i += 2,
                b'#' if self.line_start => self.directive(),
                b'/' if self.at(self.i + 1) == b'*' => {
                    self.i = skip_block_comment(self.src, self.i);
                }
                b'/' if self.at(self.i + 1) == b'/' => {
                    self.i = skip_line_comment(self.src, self.i);
                }
                _ => {
                    self.line_start = false;
                    self.branch_first_token();
                    self.token();
                }
            }
        }
    }

    /// At a `:`: a label directly before a directive or `}` (not a
    /// statement in tree-sitter-c) gets an empty statement by moving the
    /// colon one byte left (`out:` -> `ou:;`; extraction reads the label
    /// name from the original bytes); an unnamed bitfield member
    /// (`unsigned long : 2;`) is blanked.
    fn colon(&mut self) {
        let (ws, we) = self.last_word;
        if self.prev != Prev::Ident || we != self.i {
            // `long` is a keyword (Prev::Other); the bitfield check reads
            // the last word itself.
            if matches!(self.prev, Prev::Ident | Prev::Other) && self.braces.last() == Some(&OTHER) {
                self.unnamed_bitfield();
            }
            return;
        }
        if self.braces.last() == Some(&OTHER) {
            self.unnamed_bitfield();
            return;
        }
        if !self.label_cand || self.in_case || !self.in_code() || we - ws < 2 {
            return;
        }
        let k = skip_ws_comments(self.src, self.i + 1);
        if matches!(self.src.get(k), Some(b'#') | Some(b'}')) {
            self.out[self.i - 1] = b':';
            self.out[self.i] = b';';
        }
    }

    fn unnamed_bitfield(&mut self) {
        let (ws, we) = self.last_word;
        let w = &self.src[ws..we];
        const TYPES: &[&[u8]] = &[
            b"int",
            b"long",
            b"short",
            b"char",
            b"unsigned",
            b"signed",
            b"u8",
            b"u16",
            b"u32",
            b"u64",
            b"__u8",
            b"__u16",
            b"__u32",
            b"__u64",
            b"s8",
            b"s16",
            b"s32",
            b"s64",
            b"bool",
        ];
        if !TYPES.contains(&w) {
            return;
        }
        let Some(semi) = memchr::memchr(b';', super::text::slice(self.src, self.i, self.src.len())) else {
            return;
        };
        let e = self.i + semi + 1;
        if self.src[self.last_boundary..e].contains(&b'{') {
            return;
        }
        self.blank(self.last_boundary, e);
        self.i = e - 1;
    }

    /// A branch starting with `else` continues an `if` outside it.
    fn branch_first_token(&mut self) {
        let i = self.i;
        let starts_else = self.src.get(i..i + 4) == Some(b"else") && !is_ident_char(self.at(i + 4));
        if let Some(f) = self.frames.last_mut() {
            if f.first_pending {
                f.first_pending = false;
                if starts_else {
                    f.split = true;
                }
            }
        }
    }

    fn token(&mut self) {
        let c = self.src[self.i];
        match c {
            b'"' | b'\'' => {
                self.i = skip_quoted(self.src, self.i);
                self.prev = Prev::Other;
            }
            b'0'..=b'9' => {
                while self.i < self.src.len() && (is_ident_char(self.src[self.i]) || self.src[self.i] == b'.') {
                    self.i += 1;
                }
                self.prev = Prev::Other;
            }
            b'{' => {
                let code = match self.braces.last() {
                    _ if self.prev == Prev::Eq => false,
                    None => self.prev == Prev::RParen,
                    Some(&parent) => {
                        parent == CODE
                            && matches!(
                                self.prev,
                                Prev::RParen
                                    | Prev::LBrace
                                    | Prev::RBrace
                                    | Prev::Semi
                                    | Prev::Colon
                                    | Prev::Else
                                    | Prev::Do
                                    | Prev::LParen
                                    | Prev::Start
                            )
                    }
                };
                let kind = if code {
                    CODE
                } else if self.prev == Prev::Eq || self.braces.last() == Some(&INIT) {
                    INIT
                } else {
                    OTHER
                };
                self.braces.push(kind);
                self.prev = Prev::LBrace;
                self.i += 1;
                self.last_boundary = self.i;
            }
            b'}' => {
                self.closed_code = self.braces.pop() == Some(CODE);
                // Closing a brace opened before the `#if` splits a
                // construct even when the branch reopens one (`} else {`).
                let depth = self.braces.len();
                for f in self.frames.iter_mut().rev() {
                    if depth >= f.braces_at_if.len() {
                        break;
                    }
                    f.split = true;
                }
                while self.parens.last().is_some_and(|&(_, b)| b > self.braces.len()) {
                    self.parens.pop();
                }
                self.prev = Prev::RBrace;
                self.i += 1;
                self.last_boundary = self.i;
            }
            b';' => {
                self.prev = Prev::Semi;
                self.i += 1;
                self.last_boundary = self.i;
            }
            b'(' => {
                let call = self.prev == Prev::Ident && self.in_code();
                self.parens.push((call, self.braces.len()));
                self.prev = Prev::LParen;
                self.i += 1;
                if call {
                    self.type_arg(self.i);
                }
            }
            b')' => {
                self.parens.pop();
                self.prev = Prev::RParen;
                self.i += 1;
            }
            b':' => {
                self.colon();
                self.in_case = false;
                self.prev = Prev::Colon;
                self.i += 1;
            }
            b'.' if self.in_case && self.src.get(self.i..self.i + 3) == Some(b"...") => {
                // GNU case range `case A ... B:` -> `case A + B:`.
                self.out[self.i..self.i + 3].copy_from_slice(b" + ");
                self.prev = Prev::Other;
                self.i += 3;
            }
            b'=' => {
                self.prev = Prev::Eq;
                self.i += 1;
            }
            b',' => {
                self.prev = Prev::Comma;
                self.i += 1;
                if self.parens.last() == Some(&(true, self.braces.len())) {
                    self.type_arg(self.i);
                }
            }
            c if is_ident_start(c) => self.ident(),
            _ => {
                self.prev = Prev::Other;
                self.i += 1;
            }
        }
    }

    fn ident(&mut self) {
        let start = self.i;
        let mut end = start;
        while end < self.src.len() && is_ident_char(self.src[end]) {
            end += 1;
        }
        self.i = end;
        let word = &self.src[start..end];
        // Safe: identifier bytes are ASCII.
        let w = std::str::from_utf8(word).unwrap_or("");

        if ATTR_WORDS.contains(&w) || QUALIFIER_WORDS.contains(&w) {
            let kind = if ATTR_WORDS.contains(&w) { AnnotationKind::Attribute } else { AnnotationKind::Qualifier };
            self.blank(start, end);
            self.masked.annotations.push(Annotation {
                start: start as u32,
                end: end as u32,
                text: w.to_string(),
                kind,
            });
            return; // transparent: `prev` unchanged
        }
        if ATTR_CALLS.contains(&w) {
            let p = skip_ws(self.src, end);
            if self.at(p) == b'(' {
                if let Some((close, _)) = balanced(self.src, p) {
                    self.blank(start, close + 1);
                    self.masked.annotations.push(Annotation {
                        start: start as u32,
                        end: (close + 1) as u32,
                        text: super::text::normalized(self.src, start, close + 1),
                        kind: AnnotationKind::Attribute,
                    });
                    self.i = close + 1;
                    return;
                }
            }
        }

        if matches!(w, "offsetof" | "__builtin_offsetof") {
            // tree-sitter-c's offsetof takes no member paths
            // (`arch.vcpu_entry`); the value is a constant the facts never
            // need: `0` and spaces.
            let p = skip_ws_comments(self.src, end);
            if self.at(p) == b'(' {
                if let Some((close, _)) = balanced(self.src, p) {
                    self.out[start] = b'0';
                    self.blank(start + 1, close + 1);
                    self.i = close + 1;
                    self.prev = Prev::Other;
                    return;
                }
            }
        }
        let prev = self.prev;
        self.label_cand = self.in_code() && matches!(prev, Prev::Semi | Prev::LBrace | Prev::RBrace | Prev::Colon);
        self.last_word = (start, end);
        if w == "case" && self.in_code() {
            self.in_case = true;
        }
        if matches!(w, "asm" | "__asm__" | "__asm") && self.in_code() && self.blank_asm(start, end) {
            return;
        }
        self.prev = match w {
            "else" => Prev::Else,
            "do" => Prev::Do,
            "static" | "extern" | "const" | "inline" | "__inline" | "__inline__" => Prev::Storage,
            _ if KEYWORDS.contains(&w) => Prev::Other,
            _ => Prev::Ident,
        };

        if self.braces.is_empty() {
            self.file_scope_macro(w, start, end, prev);
        } else if self.in_code() {
            if prev == Prev::Storage {
                // `static DEFINE_RATELIMIT_STATE(rs, ...);` in a body.
                self.member_macro(w, start, end);
            } else {
                self.iterator_macro(w, start, end, prev);
            }
        } else if self.braces.last() == Some(&OTHER) && matches!(prev, Prev::LBrace | Prev::Semi) {
            self.member_macro(w, start, end);
        }
    }

    /// `DECLARE_BITMAP(x, N);` as a struct member: masked like a file-scope
    /// define (`int            (x   );`), not recorded.
    fn member_macro(&mut self, w: &str, start: usize, end: usize) {
        if define_type(w).is_none() {
            return;
        }
        let p = skip_ws_comments(self.src, end);
        if self.at(p) != b'(' {
            return;
        }
        let Some((close, commas)) = balanced(self.src, p) else {
            return;
        };
        let args = split_args(self.src, p, close, &commas);
        if self.at(skip_ws_annotations_in(self.src, close + 1)) != b';' || args.is_empty() {
            return;
        }
        let name_arg = if w.contains("PER_CPU") { args.len() - 1 } else { 0 };
        let (ns, ne) = args[name_arg];
        if !super::text::is_ident(super::text::slice(self.src, ns as usize, ne as usize)) {
            return;
        }
        self.out[start..start + 3].copy_from_slice(b"int");
        self.blank(start + 3, end);
        for (k, &(s, e)) in args.iter().enumerate() {
            if k != name_arg {
                self.blank(s as usize, e as usize);
            }
        }
        for &c in &commas {
            self.out[c] = b' ';
        }
        self.i = close + 1;
        self.prev = Prev::RParen;
    }

    /// `asm [volatile|goto|inline] (...)` in code: blanked (the template
    /// and operands say nothing the facts need, and their macro-pasted
    /// strings do not parse). Returns false when it is not that shape.
    fn blank_asm(&mut self, start: usize, end: usize) -> bool {
        let mut k = end;
        loop {
            k = skip_ws_comments(self.src, k);
            let mut e = k;
            while e < self.src.len() && is_ident_char(self.src[e]) {
                e += 1;
            }
            match &self.src[k..e] {
                b"volatile" | b"__volatile__" | b"__volatile" | b"goto" | b"inline" | b"__inline" => k = e,
                _ => break,
            }
        }
        if self.at(k) != b'(' {
            return false;
        }
        let Some((close, _)) = balanced(self.src, k) else {
            return false;
        };
        self.blank(start, close + 1);
        self.i = close + 1;
        // What follows (`;`) ends an empty statement.
        self.prev = Prev::Other;
        true
    }

    /// At the start of a call argument in code: a type argument
    /// (`container_of(p, struct kvm, mmu)`, `min_t(unsigned long, a, b)`)
    /// becomes underscores, a plain identifier of the same length.
    fn type_arg(&mut self, at: usize) {
        let src = self.src;
        let start = skip_ws(src, at);
        let mut k = start;
        let mut saw_tag = false;
        let mut saw_prim = false;
        let mut words = 0;
        loop {
            let mut e = k;
            while e < src.len() && is_ident_char(src[e]) {
                e += 1;
            }
            if e == k {
                break;
            }
            let w = &src[k..e];
            match w {
                b"struct" | b"union" | b"enum" if !saw_tag && !saw_prim => {
                    saw_tag = true;
                    // The tag name.
                    let t = skip_ws(src, e);
                    let mut te = t;
                    while te < src.len() && is_ident_char(src[te]) {
                        te += 1;
                    }
                    if te == t {
                        return;
                    }
                    k = te;
                }
                b"unsigned" | b"signed" | b"int" | b"long" | b"short" | b"char" | b"void" | b"bool" | b"_Bool"
                | b"float" | b"double"
                    if !saw_tag =>
                {
                    saw_prim = true;
                    k = e;
                }
                b"const" | b"volatile" => k = e,
                _ => return,
            }
            words += 1;
            k = skip_ws(src, k);
        }
        if !(saw_tag || saw_prim) || words == 0 {
            return;
        }
        while k < src.len() && (src[k] == b'*' || src[k] == b' ' || src[k] == b'\t') {
            k += 1;
        }
        if !matches!(src.get(k), Some(b',') | Some(b')')) {
            return;
        }
        let mut e = k;
        while e > start && src[e - 1].is_ascii_whitespace() {
            e -= 1;
        }
        if src[start..e].contains(&b'\n') {
            return;
        }
        for b in &mut self.out[start..e] {
            *b = b'_';
        }
        self.i = k;
        self.prev = Prev::Ident;
    }

    /// `IDENT(args)` at the start of a statement in a function body,
    /// followed by a block or another statement: an iterator macro.
    fn iterator_macro(&mut self, w: &str, start: usize, end: usize, prev: Prev) {
        if !matches!(
            prev,
            Prev::Semi | Prev::LBrace | Prev::RBrace | Prev::RParen | Prev::Colon | Prev::Else | Prev::Do
        ) || KEYWORDS.contains(&w)
        {
            return;
        }
        let p = skip_ws_comments(self.src, end);
        if self.at(p) != b'(' {
            return;
        }
        let Some((close, _)) = balanced(self.src, p) else {
            return;
        };
        if close == p + 1 {
            return; // `while ()` would not parse; leave it alone
        }
        let q = skip_ws_comments(self.src, close + 1);
        let next = self.at(q);
        if !(next == b'{' || is_ident_start(next)) {
            return;
        }
        if is_ident_start(next) {
            // `foo(x) else` / `foo(x) __attribute__` are not statements.
            let mut e = q;
            while e < self.src.len() && is_ident_char(self.src[e]) {
                e += 1;
            }
            let nw = &self.src[q..e];
            if nw == b"else" || nw == b"__attribute__" {
                return;
            }
        }
        let len = end - start;
        if len < 2 {
            return; // `X(a) {`: no keyword fits in one byte
        }
        let kw: &[u8] = if len >= 5 { b"while" } else { b"if" };
        self.out[start..start + kw.len()].copy_from_slice(kw);
        for b in &mut self.out[start + kw.len()..end] {
            *b = b' ';
        }
        self.masked.iterators.push(IteratorSite { start: start as u32, macro_name: w.to_string() });
        // The masked keyword is a statement head: the `(` that follows is
        // its condition, and what follows the `)` starts a statement.
        self.prev = Prev::Other;
    }

    /// File-scope macro statements: defining macros and other invocations.
    fn file_scope_macro(&mut self, w: &str, start: usize, end: usize, prev: Prev) {
        let stmt_start = matches!(prev, Prev::Start | Prev::Semi | Prev::RBrace)
            || (prev == Prev::RParen && self.line_begins_at(start));
        let is_define = define_type(w).is_some();
        if !(stmt_start || (is_define && prev == Prev::Storage)) || KEYWORDS.contains(&w) {
            return;
        }
        let p = skip_ws_comments(self.src, end);
        if self.at(p) != b'(' {
            return;
        }
        let Some((close, commas)) = balanced(self.src, p) else {
            return;
        };
        let args = split_args(self.src, p, close, &commas);
        let q = self.skip_ws_annotations(close + 1);
        let next = self.at(q);
        if is_define && (next == b';' || next == b'=') && !args.is_empty() {
            let per_cpu = w.contains("PER_CPU");
            let name_arg = if per_cpu { args.len() - 1 } else { 0 };
            let (ns, ne) = args[name_arg];
            if !super::text::is_ident(super::text::slice(self.src, ns as usize, ne as usize)) {
                return;
            }
            let type_text = if per_cpu && args.len() >= 2 {
                super::text::normalized(self.src, args[0].0 as usize, args[0].1 as usize)
            } else {
                define_type(w).unwrap_or("").to_string()
            };
            // `DEFINE_MUTEX(x)` -> `int         (x)`: a declaration whose
            // declarator is the defined name, at its original offset.
            self.out[start..start + 3].copy_from_slice(b"int");
            self.blank(start + 3, end);
            for (k, &(s, e)) in args.iter().enumerate() {
                if k != name_arg {
                    self.blank(s as usize, e as usize);
                }
            }
            for &c in &commas {
                self.out[c] = b' ';
            }
            let stmt_end = if next == b';' { q + 1 } else { close + 1 };
            self.masked.defines.push(DefineSite {
                macro_start: start as u32,
                macro_name: w.to_string(),
                args,
                name_arg,
                type_text,
                end: stmt_end as u32,
            });
            self.i = close + 1;
            self.prev = Prev::RParen;
            return;
        }
        if !stmt_start {
            return;
        }
        let stmt_end = if next == b';' {
            q + 1
        } else if self.macro_line_ends(close + 1) {
            close + 1
        } else {
            return;
        };
        self.blank(start, stmt_end);
        self.masked.top_macros.push(TopMacro { name: w.to_string(), start: start as u32, end: stmt_end as u32, args });
        self.i = stmt_end;
        self.prev = Prev::Semi;
    }

    /// True when only whitespace precedes `pos` on its line.
    fn line_begins_at(&self, pos: usize) -> bool {
        let mut k = pos;
        while k > 0 {
            match self.src[k - 1] {
                b'\n' => return true,
                b' ' | b'\t' => k -= 1,
                _ => return false,
            }
        }
        true
    }

    /// After a `MACRO(args)` without `;`: does the line end there and the
    /// next line start another macro line, a directive, or the file end?
    fn macro_line_ends(&self, mut k: usize) -> bool {
        while k < self.src.len() && matches!(self.src[k], b' ' | b'\t' | b'\r') {
            k += 1;
        }
        if k < self.src.len() && self.src[k] == b'/' {
            k = skip_ws_comments(self.src, k);
            return k >= self.src.len() || self.src[k] == b'#' || is_ident_start(self.src[k]);
        }
        if k >= self.src.len() {
            return true;
        }
        if self.src[k] != b'\n' {
            return false;
        }
        let k = skip_ws_comments(self.src, k);
        k >= self.src.len() || self.src[k] == b'#' || is_ident_start(self.src[k]) || self.src[k] == b'}'
    }

    fn skip_ws_annotations(&self, k: usize) -> usize {
        skip_ws_annotations_in(self.src, k)
    }

    fn blank(&mut self, start: usize, end: usize) {
        let end = end.min(self.out.len());
        let start = start.min(end);
        for b in &mut self.out[start..end] {
            // Keep line structure so tree-sitter's rows stay meaningful.
            if *b != b'\n' && *b != b'\r' {
                *b = b' ';
            }
        }
    }

    /// A preprocessor line: update the condition stack and the brace stack
    /// (each `#else` branch starts from the braces of the `#if`).
    fn directive(&mut self) {
        let start = self.i;
        let end = directive_end(self.src, start);
        self.i = end;
        let line = &self.src[start..end];
        let mut k = 1;
        while k < line.len() && matches!(line[k], b' ' | b'\t') {
            k += 1;
        }
        let ns = k;
        while k < line.len() && is_ident_char(line[k]) {
            k += 1;
        }
        let name = &line[ns..k];
        let rest = super::text::normalized(line, k, line.len());
        let conditional =
            matches!(name, b"if" | b"ifdef" | b"ifndef" | b"elif" | b"else" | b"elifdef" | b"elifndef" | b"endif");
        self.blank_directive_comments(start, end);
        if conditional && self.braces.last() == Some(&INIT) {
            // Initializer lists cannot hold directives in tree-sitter-c:
            // both branches' initializers are kept, concatenated; the
            // conditions still come from the CondMap.
            self.blank(start, end);
        }
        match name {
            b"if" | b"ifdef" | b"ifndef" => {
                let structural = matches!(self.braces.last(), None | Some(&CODE));
                // A directive inside an open parenthesis (an expression or
                // a parameter list) always splits a construct.
                let in_parens = self.parens.last().is_some_and(|&(_, b)| b == self.braces.len());
                let cond = match name {
                    b"ifdef" => rest.clone(),
                    b"ifndef" => negate(&rest),
                    _ => rest.clone(),
                };
                let guard = name == b"ifndef" && !self.seen_cond && self.is_guard(end, &rest);
                self.seen_cond = true;
                self.frames.push(CondFrame {
                    current: if guard { Vec::new() } else { vec![cond] },
                    negated: Vec::new(),
                    braces_at_if: self.braces.clone(),
                    braces_after_first: None,
                    guard,
                    structural,
                    lines: vec![(start, end)],
                    alt_start: None,
                    split: in_parens,
                    first_pending: true,
                    prev_at_if: self.prev,
                    prev_after_first: None,
                    parens_at_if: self.parens.clone(),
                    parens_after_first: None,
                });
            }
            b"elif" | b"else" | b"elifdef" | b"elifndef" => {
                let braces_now = self.braces.clone();
                let prev_now = self.prev;
                if let Some(f) = self.frames.last_mut() {
                    f.end_branch(&braces_now, prev_now);
                    f.lines.push((start, end));
                    if f.alt_start.is_none() {
                        f.alt_start = Some(end);
                        f.prev_after_first = Some(prev_now);
                        f.parens_after_first = Some(std::mem::take(&mut self.parens));
                    }
                    self.parens = f.parens_at_if.clone();
                    f.first_pending = true;
                    for c in f.current.drain(..) {
                        f.negated.push(negate(&c));
                    }
                    if f.braces_after_first.is_none() {
                        f.braces_after_first = Some(braces_now);
                    }
                    self.braces = f.braces_at_if.clone();
                    f.current = match name {
                        b"else" => Vec::new(),
                        b"elifndef" => vec![negate(&rest)],
                        _ => vec![rest],
                    };
                    if f.guard {
                        f.negated.clear();
                    }
                }
            }
            b"endif" => {
                let braces_now = self.braces.clone();
                if let Some(mut f) = self.frames.pop() {
                    f.end_branch(&braces_now, self.prev);
                    if let Some(b) = f.braces_after_first.take() {
                        self.braces = b;
                    }
                    if let Some(p) = f.prev_after_first {
                        self.prev = p;
                    }
                    if let Some(p) = f.parens_after_first.take() {
                        self.parens = p;
                    }
                    if f.split && f.structural && !f.guard {
                        // Keep the first branch as plain code: blank the
                        // directive lines and the other branches. The
                        // CondMap still gives the kept code its condition.
                        for &(s, e) in &f.lines {
                            self.blank(s, e);
                        }
                        if let Some(a) = f.alt_start {
                            self.blank(a, start);
                        }
                        self.blank(start, end);
                    }
                }
            }
            _ => return,
        }
        // Capped: pathological nesting must not make this quadratic.
        let conds: Vec<String> = self
            .frames
            .iter()
            .flat_map(|f| f.negated.iter().chain(f.current.iter()).cloned())
            .take(MAX_CONDITIONS)
            .collect();
        self.masked.conds.segments.push((end as u32, conds));
    }

    /// Comments inside a directive (between continuation lines of a
    /// `#define`) end tree-sitter's macro body early: blank them.
    fn blank_directive_comments(&mut self, start: usize, end: usize) {
        let mut k = start;
        while k < end {
            match self.src[k] {
                b'"' | b'\'' => k = skip_quoted(self.src, k),
                b'/' if self.at(k + 1) == b'*' => {
                    let e = skip_block_comment(self.src, k).min(end);
                    self.blank(k, e);
                    k = e;
                }
                _ => k += 1,
            }
        }
    }

    /// `#ifndef X` directly followed by `#define X`: an include guard.
    fn is_guard(&self, after: usize, name: &str) -> bool {
        let k = skip_ws_comments(self.src, after);
        let rest = super::text::slice(self.src, k, k + 200);
        let mut t = rest.strip_prefix(b"#").unwrap_or(b"");
        while let Some(r) = t.strip_prefix(b" ") {
            t = r;
        }
        let Some(t) = t.strip_prefix(b"define") else {
            return false;
        };
        let t = t.trim_ascii_start();
        t.starts_with(name.as_bytes()) && t.get(name.len()).is_none_or(|&c| !is_ident_char(c))
    }
}

/// Skip whitespace, comments and (already or to-be) masked annotation
/// words: `DEFINE_PER_CPU(int, x) __visible;`.
fn skip_ws_annotations_in(src: &[u8], mut k: usize) -> usize {
    loop {
        k = skip_ws_comments(src, k);
        let mut e = k;
        while e < src.len() && is_ident_char(src[e]) {
            e += 1;
        }
        if e > k {
            let w = std::str::from_utf8(&src[k..e]).unwrap_or("");
            if ATTR_WORDS.contains(&w) || QUALIFIER_WORDS.contains(&w) {
                k = e;
                continue;
            }
        }
        return k;
    }
}

/// The type a defining macro defines, when the name is one.
pub(crate) fn define_type(w: &str) -> Option<&'static str> {
    if let Some((_, t)) = DEFINE_TYPES.iter().find(|(n, _)| *n == w) {
        return Some(t);
    }
    let upper = w.bytes().all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == b'_');
    if upper && (w.starts_with("DEFINE_") || w.starts_with("DECLARE_") || w.ends_with("_HEAD")) {
        return Some("");
    }
    None
}

/// The logical negation of a condition, kept readable.
pub fn negate(c: &str) -> String {
    let simple = |s: &str| s.bytes().all(is_ident_char) && !s.is_empty();
    if let Some(rest) = c.strip_prefix('!') {
        if simple(rest) || (rest.starts_with("defined") && !rest.contains(['&', '|'])) {
            return rest.to_string();
        }
    }
    if simple(c) || (c.starts_with("defined") && !c.contains(['&', '|', '!'])) {
        return format!("!{c}");
    }
    format!("!({c})")
}

/// End of a preprocessor line starting at `start` (the `#`), honoring
/// backslash continuations and comments spanning lines.
pub fn directive_end(src: &[u8], start: usize) -> usize {
    let mut k = start;
    while k < src.len() {
        match src[k] {
            b'\n' => return k,
            b'\\' if matches!(src.get(k + 1), Some(b'\n')) => k += 2,
            b'\\' if src.get(k + 1) == Some(&b'\r') && src.get(k + 2) == Some(&b'\n') => k += 3,
            b'/' if src.get(k + 1) == Some(&b'*') => k = skip_block_comment(src, k),
            b'/' if src.get(k + 1) == Some(&b'/') => return skip_line_comment(src, k),
            _ => k += 1,
        }
    }
    src.len()
}

fn skip_block_comment(src: &[u8], start: usize) -> usize {
    match memchr::memmem::find(super::text::slice(src, start + 2, src.len()), b"*/") {
        Some(p) => start + 2 + p + 2,
        None => src.len(),
    }
}

fn skip_line_comment(src: &[u8], start: usize) -> usize {
    let mut k = start;
    while k < src.len() && src[k] != b'\n' {
        if src[k] == b'\\' && src.get(k + 1) == Some(&b'\n') {
            k += 1;
        }
        k += 1;
    }
    k
}

/// Skip a string or char literal starting at `start`; stops at the end of
/// the line when unterminated.
fn skip_quoted(src: &[u8], start: usize) -> usize {
    let q = src[start];
    let mut k = start + 1;
    while k < src.len() {
        match src[k] {
            b'\\' => k += 2,
            b'\n' => return k,
            c if c == q => return k + 1,
            _ => k += 1,
        }
    }
    src.len()
}

fn skip_ws(src: &[u8], mut k: usize) -> usize {
    while k < src.len() && src[k].is_ascii_whitespace() {
        k += 1;
    }
    k
}

fn skip_ws_comments(src: &[u8], mut k: usize) -> usize {
    loop {
        k = skip_ws(src, k);
        if src.get(k) == Some(&b'/') && src.get(k + 1) == Some(&b'*') {
            k = skip_block_comment(src, k);
        } else if src.get(k) == Some(&b'/') && src.get(k + 1) == Some(&b'/') {
            k = skip_line_comment(src, k);
        } else if src.get(k) == Some(&b'\\') && src.get(k + 1) == Some(&b'\n') {
            k += 2;
        } else {
            return k;
        }
    }
}

/// Longest argument list scanned for a macro: beyond this it is not a macro
/// invocation we care about, and giving up keeps the pass linear.
const MAX_ARGS_LEN: usize = 64 * 1024;

/// From an opening `(` at `open`, the offset of the matching `)` and the
/// offsets of the top-level commas.
pub fn balanced(src: &[u8], open: usize) -> Option<(usize, Vec<usize>)> {
    let mut depth = 0usize;
    let mut commas = Vec::new();
    let mut k = open;
    let limit = open.saturating_add(MAX_ARGS_LEN).min(src.len());
    while k < limit {
        match src[k] {
            b'(' | b'[' | b'{' => depth += 1,
            b')' | b']' | b'}' => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return if src[k] == b')' { Some((k, commas)) } else { None };
                }
            }
            b',' if depth == 1 => commas.push(k),
            b'"' | b'\'' => {
                k = skip_quoted(src, k);
                continue;
            }
            b'/' if src.get(k + 1) == Some(&b'*') => {
                k = skip_block_comment(src, k);
                continue;
            }
            b'/' if src.get(k + 1) == Some(&b'/') => {
                k = skip_line_comment(src, k);
                continue;
            }
            b';' if depth == 1 => return None,
            _ => {}
        }
        k += 1;
    }
    None
}

/// Trimmed byte ranges of the arguments between `open` and `close`.
fn split_args(src: &[u8], open: usize, close: usize, commas: &[usize]) -> Vec<(u32, u32)> {
    let mut out = Vec::with_capacity(commas.len() + 1);
    let mut s = open + 1;
    for &e in commas.iter().chain(std::iter::once(&close)) {
        let (a, b) = trim_range(src, s, e);
        if a < b || !commas.is_empty() {
            out.push((a as u32, b as u32));
        }
        s = e + 1;
    }
    out
}

fn trim_range(src: &[u8], mut a: usize, mut b: usize) -> (usize, usize) {
    while a < b && src[a].is_ascii_whitespace() {
        a += 1;
    }
    while b > a && src[b - 1].is_ascii_whitespace() {
        b -= 1;
    }
    (a, b)
}
