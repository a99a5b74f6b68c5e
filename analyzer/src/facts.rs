//! C facts: what one source file says, at the level of syntax.
//!
//! Facts are extracted from one file at a time and know nothing of the kernel
//! API model: a `raw_spin_lock(&kvm_count_lock)` is a [`CallSite`] here, and it
//! becomes a lock acquisition only when the contexts layer reads it through
//! the API model. That keeps facts cacheable by blob id and the knowledge in
//! one table.
//!
//! Invariant: every [`Span`] is a byte range into the *original* bytes of the
//! file (idiom recovery masks bytes in place, never shifts them), so patch
//! generation can edit the original text at these offsets.

use serde::{Deserialize, Serialize};

/// A byte range into the original file, with the 1-based line and column of
/// its start (column counted in bytes, as gcc does).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Span {
    pub start: u32,
    pub end: u32,
    pub line: u32,
    pub col: u32,
}

/// The `#if`/`#ifdef` conditions enclosing a fact, outermost first, as
/// written (`CONFIG_KVM_GENERIC_HARDWARE_ENABLING`, `!defined(CONFIG_X)`,
/// `else of CONFIG_Y`). Empty when unconditional. Facts of both branches
/// are kept.
pub type Condition = Vec<String>;

/// Everything extracted from one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileFacts {
    /// Path relative to the tree root, with `/` separators.
    pub path: String,
    /// `Some("x86")` for files under `arch/x86/`, `None` for common code.
    pub arch: Option<String>,
    pub functions: Vec<Function>,
    /// Function prototypes (declarations without a body), e.g. in headers.
    pub prototypes: Vec<Prototype>,
    pub globals: Vec<Global>,
    /// Struct variables initialized with designated fields bound to
    /// functions or other values: `.hardware_enable = vmx_hardware_enable`.
    pub initializers: Vec<StructInit>,
    /// Macro invocations at file scope: `module_init(vmx_init);`,
    /// `EXPORT_SYMBOL_GPL(kvm_rebooting);`, `KVM_X86_OP(hardware_enable)`.
    pub top_level_macros: Vec<MacroUse>,
    /// Enum definitions (needed for `enum cpuhp_state`).
    pub enums: Vec<EnumDef>,
    /// Struct and union definitions with their members' declared types
    /// (`struct kvm { struct mutex slots_lock; ... }`): what a lock reached
    /// through a pointer is (`kvm->slots_lock` is `struct kvm.slots_lock`).
    #[serde(default)]
    pub structs: Vec<StructDef>,
    /// Diagnostics about the parse, with their location.
    pub diagnostics: Vec<ParseDiagnostic>,
    /// Counts of tree-sitter ERROR/MISSING nodes before and after idiom
    /// recovery (the measure of how well the kernel's idioms are handled).
    pub parse_quality: ParseQuality,
}

impl FileFacts {
    /// The facts of a file whose contents a caller does not need (an arch
    /// outside the analysis): its place in the tree only, so that indices
    /// into the file list stay those of the whole tree.
    pub fn placeholder(path: &str, arch: Option<&str>) -> FileFacts {
        FileFacts { path: path.to_string(), arch: arch.map(str::to_string), ..FileFacts::default() }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseQuality {
    pub error_nodes_plain: u32,
    pub error_nodes_recovered: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParseDiagnostic {
    pub span: Span,
    pub message: String,
}

/// A `struct NAME { ... }` or `union NAME { ... }` definition. Members of
/// anonymous nested structs and unions are the enclosing struct's (C names
/// them through it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructDef {
    pub name: String,
    pub span: Span,
    /// Members in order: name and declared type (`struct mutex`, `struct kvm *`).
    pub members: Vec<Param>,
    pub condition: Condition,
}

/// A function definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Function {
    pub name: String,
    /// The whole definition, from the first specifier (or attribute) to the
    /// closing brace.
    pub span: Span,
    pub name_span: Span,
    pub body_span: Span,
    pub is_static: bool,
    pub is_inline: bool,
    /// Attributes and annotations written on the definition, as written:
    /// `__weak`, `__init`, `__exit`, `__visible`, `noinstr`, `__cold`, ...
    pub attributes: Vec<String>,
    /// Return type as written (`int`, `static void` without storage class).
    pub return_type: String,
    /// Parameters as written, in order.
    pub params: Vec<Param>,
    pub condition: Condition,
    /// The body as a structured statement tree, in source order.
    pub body: Block,
    /// Local variables declared in the body, with their declared types
    /// (flat, like the body's scope of names: shadowing is rare).
    #[serde(default)]
    pub locals: Vec<Param>,
}

impl Function {
    pub fn is_weak(&self) -> bool {
        self.attributes.iter().any(|a| a == "__weak")
    }
    pub fn is_init(&self) -> bool {
        self.attributes.iter().any(|a| a == "__init")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Param {
    pub name: String,
    pub type_text: String,
}

/// A function declaration without a body.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Prototype {
    pub name: String,
    pub span: Span,
    pub is_static: bool,
    pub attributes: Vec<String>,
    pub condition: Condition,
}

/// A file-scope variable, including the kernel's defining macros.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Global {
    pub name: String,
    pub span: Span,
    pub name_span: Span,
    /// How it is declared: `DEFINE_MUTEX`, `DEFINE_RAW_SPINLOCK`,
    /// `DEFINE_SPINLOCK`, `DEFINE_PER_CPU`, `LIST_HEAD`, `DECLARE_RWSEM`, ...
    /// for macro forms; `None` for a plain C declaration.
    pub define_macro: Option<String>,
    /// The declared type as written (`cpumask_var_t`, `int`, `atomic_t`,
    /// `struct kvm_x86_ops`, for `DEFINE_PER_CPU(bool, x)`: `bool`).
    pub type_text: String,
    pub is_static: bool,
    pub is_extern: bool,
    pub attributes: Vec<String>,
    pub condition: Condition,
}

/// `static struct syscore_ops kvm_syscore_ops = { .suspend = kvm_suspend, };`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StructInit {
    /// The variable being initialized (`kvm_syscore_ops`), or for a
    /// compound literal / nested initializer the path (`vmx_init_ops.runtime_ops`).
    pub var_name: String,
    /// `syscore_ops` for `struct syscore_ops` (tag without `struct`).
    pub struct_type: String,
    pub span: Span,
    pub fields: Vec<FieldBinding>,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldBinding {
    /// `suspend` for `.suspend = kvm_suspend`.
    pub field: String,
    /// The value as written.
    pub value_text: String,
    /// The value when it is a bare identifier (a function or variable name),
    /// also through `&x`.
    pub value_ident: Option<String>,
    pub span: Span,
    pub condition: Condition,
}

/// A macro invocation at file scope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MacroUse {
    pub name: String,
    pub args: Vec<Arg>,
    pub span: Span,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnumDef {
    /// Tag (`cpuhp_state`); empty for an anonymous enum.
    pub name: String,
    pub span: Span,
    pub enumerators: Vec<Enumerator>,
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Enumerator {
    pub name: String,
    /// Explicit value as written (`CPUHP_AP_ONLINE_DYN + 30`).
    pub value_text: Option<String>,
    pub span: Span,
    pub condition: Condition,
}

/// A block `{ ... }` (or the implicit block of a single statement).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Block {
    pub span: Span,
    pub stmts: Vec<Stmt>,
}

/// A statement, keeping exactly the control flow lock tracking needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Stmt {
    /// Expression statement or declaration: its events in evaluation order.
    Simple {
        span: Span,
        events: Vec<Event>,
        condition: Condition,
    },
    Block(Block),
    If {
        span: Span,
        /// Events of the condition expression.
        cond: Vec<Event>,
        /// The condition as written.
        cond_text: String,
        then_branch: Block,
        else_branch: Option<Block>,
    },
    /// `for`, `while`, `do`, and the kernel's iterator macros
    /// (`list_for_each_entry(kvm, &vm_list, vm_list) { ... }`).
    Loop {
        span: Span,
        kind: LoopKind,
        /// Events of the loop header (init, condition, update, macro args).
        head: Vec<Event>,
        body: Block,
    },
    Switch {
        span: Span,
        cond: Vec<Event>,
        body: Block,
    },
    /// `case X:` / `default:` inside a switch body.
    Case {
        span: Span,
    },
    Return {
        span: Span,
        events: Vec<Event>,
        /// The value returned when it is a literal (`0`, `-1`, `true`): a caller can tell a call that never fails (HW011).
        value: Option<String>,
    },
    Goto {
        span: Span,
        label: String,
    },
    Label {
        span: Span,
        name: String,
    },
    Break {
        span: Span,
    },
    Continue {
        span: Span,
    },
    /// `scoped_guard(mutex, &l) { ... }`: the lock is held for `body` only.
    ScopedGuard {
        span: Span,
        guard_type: String,
        args: Vec<Arg>,
        body: Block,
    },
    /// `#if`/`#ifdef` inside a function: both branches kept.
    Preproc {
        span: Span,
        branches: Vec<PreprocBranch>,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreprocBranch {
    /// `CONFIG_X`, `!CONFIG_X`, `defined(A) && defined(B)`, or `else`.
    pub condition: String,
    pub body: Block,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LoopKind {
    For,
    While,
    DoWhile,
    /// An iterator macro followed by a statement: name and arguments.
    Iterator {
        macro_name: String,
        args: Vec<Arg>,
    },
}

/// Something that happens in a statement, in evaluation order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Event {
    Call(CallSite),
    /// A use of a non-local identifier (a global, a per-CPU variable, an
    /// enumerator): `kvm_usage_count++`, `if (kvm_usage_count)`.
    Access(Access),
    /// `kvm_preempt_ops.sched_in = kvm_sched_in;` binds an ops field at run time.
    FieldAssign(FieldAssign),
    /// A local variable (or parameter) given a value: `int cpu =
    /// raw_smp_processor_id();`, `r = kvm_arch_post_init_vm(kvm);`. Emitted
    /// after the events of the value expression.
    LocalAssign(LocalAssign),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LocalAssign {
    pub name: String,
    pub value_text: String,
    /// The callee when the value is a single call (`raw_smp_processor_id`).
    pub value_call: Option<String>,
    pub span: Span,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub name: String,
    pub span: Span,
    pub kind: AccessKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AccessKind {
    Read,
    /// Assignment target, `++`/`--`, compound assignment.
    Write,
    /// `&x`: passed by address (the callee decides).
    AddressOf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldAssign {
    /// `kvm_preempt_ops` (the base expression as written).
    pub base: String,
    pub field: String,
    pub value_ident: Option<String>,
    pub span: Span,
}

/// A call, with its callee resolved as far as syntax allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallSite {
    pub callee: Callee,
    pub args: Vec<Arg>,
    /// The whole call expression.
    pub span: Span,
    /// The callee part (`static_call(kvm_x86_hardware_enable)` or the name).
    pub callee_span: Span,
    /// `#if` conditions inside the function enclosing this call.
    pub condition: Condition,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Callee {
    /// `foo(...)`
    Direct(String),
    /// `kvm_x86_ops.hardware_enable(...)`, `kvm_mips_callbacks->hardware_enable(...)`:
    /// base expression as written and the field.
    OpsMember { base: String, field: String },
    /// `static_call(kvm_x86_hardware_enable)(...)`; for call macros such as
    /// `kvm_x86_call(hardware_enable)(...)` the macro name is kept so the
    /// linker can map it through the API model.
    StaticCall { key: String, via_macro: Option<String> },
    /// Anything else (`(*fn)(...)`, `ops[i](...)`), as written.
    Indirect(String),
}

impl Callee {
    /// The name as a reader would say it.
    pub fn display(&self) -> String {
        match self {
            Callee::Direct(n) => n.clone(),
            Callee::OpsMember { base, field } => format!("{base}.{field}"),
            Callee::StaticCall { key, via_macro: None } => format!("static_call({key})"),
            Callee::StaticCall { key, via_macro: Some(m) } => format!("{m}({key})"),
            Callee::Indirect(t) => t.clone(),
        }
    }
}

/// One argument of a call or macro.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Arg {
    pub text: String,
    pub span: Span,
    /// When the argument is an identifier or `&identifier` (possibly with a
    /// member path: `&kvm->lock` gives `kvm->lock`), that name.
    pub ident: Option<String>,
    pub address_of: bool,
}

/// Moving facts down a file: facts extracted from a piece of a file that
/// starts on a line of its own (see `parse`: a file is parsed chunk by
/// chunk) are moved to the piece's place by adding its byte offset and the
/// lines before it; columns stay. Every [`Span`] of the facts moves, so a
/// new field holding a span must be moved here too (the parser's tests
/// compare facts reused from a moved chunk with a fresh parse).
pub(crate) trait MoveDown {
    fn move_down(&mut self, bytes: u32, lines: u32);
}

impl MoveDown for Span {
    fn move_down(&mut self, bytes: u32, lines: u32) {
        self.start += bytes;
        self.end += bytes;
        self.line += lines;
    }
}

impl<T: MoveDown> MoveDown for [T] {
    fn move_down(&mut self, bytes: u32, lines: u32) {
        for x in self {
            x.move_down(bytes, lines);
        }
    }
}

impl<T: MoveDown> MoveDown for Option<T> {
    fn move_down(&mut self, bytes: u32, lines: u32) {
        if let Some(x) = self {
            x.move_down(bytes, lines);
        }
    }
}

/// `MoveDown` for a struct: move the listed fields.
macro_rules! move_fields {
    ($($t:ty => $($f:ident),+;)+) => {$(
        impl MoveDown for $t {
            fn move_down(&mut self, bytes: u32, lines: u32) {
                $(self.$f.move_down(bytes, lines);)+
            }
        }
    )+};
}

move_fields! {
    ParseDiagnostic => span;
    StructDef => span;
    Function => span, name_span, body_span, body;
    Prototype => span;
    Global => span, name_span;
    StructInit => span, fields;
    FieldBinding => span;
    MacroUse => span, args;
    EnumDef => span, enumerators;
    Enumerator => span;
    Block => span, stmts;
    PreprocBranch => body;
    LocalAssign => span;
    Access => span;
    FieldAssign => span;
    CallSite => span, callee_span, args;
    Arg => span;
}

impl MoveDown for Stmt {
    fn move_down(&mut self, b: u32, l: u32) {
        match self {
            Stmt::Simple { span, events, .. } => {
                span.move_down(b, l);
                events.move_down(b, l);
            }
            Stmt::Block(block) => block.move_down(b, l),
            Stmt::If { span, cond, then_branch, else_branch, .. } => {
                span.move_down(b, l);
                cond.move_down(b, l);
                then_branch.move_down(b, l);
                else_branch.move_down(b, l);
            }
            Stmt::Loop { span, kind, head, body } => {
                span.move_down(b, l);
                kind.move_down(b, l);
                head.move_down(b, l);
                body.move_down(b, l);
            }
            Stmt::Switch { span, cond, body } => {
                span.move_down(b, l);
                cond.move_down(b, l);
                body.move_down(b, l);
            }
            Stmt::Return { span, events, .. } => {
                span.move_down(b, l);
                events.move_down(b, l);
            }
            Stmt::ScopedGuard { span, args, body, .. } => {
                span.move_down(b, l);
                args.move_down(b, l);
                body.move_down(b, l);
            }
            Stmt::Preproc { span, branches } => {
                span.move_down(b, l);
                branches.move_down(b, l);
            }
            Stmt::Case { span }
            | Stmt::Goto { span, .. }
            | Stmt::Label { span, .. }
            | Stmt::Break { span }
            | Stmt::Continue { span } => span.move_down(b, l),
        }
    }
}

impl MoveDown for LoopKind {
    fn move_down(&mut self, b: u32, l: u32) {
        if let LoopKind::Iterator { args, .. } = self {
            args.move_down(b, l);
        }
    }
}

impl MoveDown for Event {
    fn move_down(&mut self, b: u32, l: u32) {
        match self {
            Event::Call(c) => c.move_down(b, l),
            Event::Access(a) => a.move_down(b, l),
            Event::FieldAssign(f) => f.move_down(b, l),
            Event::LocalAssign(a) => a.move_down(b, l),
        }
    }
}

impl FileFacts {
    /// Append the facts of a piece of this file (extracted from the piece
    /// alone) that starts at byte `bytes`, after `lines` lines.
    pub(crate) fn append_moved(&mut self, piece: FileFacts, bytes: u32, lines: u32) {
        fn add<T: MoveDown>(to: &mut Vec<T>, from: Vec<T>, bytes: u32, lines: u32) {
            let at = to.len();
            to.extend(from);
            if bytes != 0 || lines != 0 {
                to[at..].move_down(bytes, lines);
            }
        }
        add(&mut self.functions, piece.functions, bytes, lines);
        add(&mut self.prototypes, piece.prototypes, bytes, lines);
        add(&mut self.globals, piece.globals, bytes, lines);
        add(&mut self.initializers, piece.initializers, bytes, lines);
        add(&mut self.top_level_macros, piece.top_level_macros, bytes, lines);
        add(&mut self.enums, piece.enums, bytes, lines);
        add(&mut self.structs, piece.structs, bytes, lines);
        add(&mut self.diagnostics, piece.diagnostics, bytes, lines);
        self.parse_quality.error_nodes_recovered += piece.parse_quality.error_nodes_recovered;
    }
}
