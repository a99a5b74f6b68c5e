//! Function bodies: the statement tree and the events of each statement,
//! in evaluation order.

use std::collections::HashSet;

use tree_sitter::Node;

use super::extract::{declarator_name, Cx};
use super::text;
use crate::facts::*;

/// Deepest statement/expression nesting walked; deeper code (10k nested
/// parentheses) is cut off rather than overflowing the stack.
const MAX_DEPTH: usize = 200;

struct Body<'a, 'c> {
    cx: &'c Cx<'a>,
    locals: HashSet<&'a [u8]>,
    /// The function's own file-scope conditions, stripped from in-body ones.
    fn_cond: &'c [String],
}

/// The statement tree of a function body and its typed local declarations.
pub(crate) fn function_body(cx: &Cx, body: Node, params: Option<Node>, fn_cond: &[String]) -> (Block, Vec<Param>) {
    let mut locals = HashSet::new();
    if let Some(p) = params {
        let mut cur = p.walk();
        for d in p.named_children(&mut cur) {
            if let Some(n) = d.child_by_field_name("declarator").and_then(declarator_name) {
                locals.insert(cx.bytes(n));
            }
        }
    }
    let mut typed = Vec::new();
    collect_locals(cx, body, &mut locals, &mut typed);
    let b = Body { cx, locals, fn_cond };
    (b.block(body, 0), typed)
}

/// Names declared anywhere in the body (flat: shadowing is rare in the
/// kernel and a flat set keeps this cheap), including `LIST_HEAD(x);`-style
/// defining macros used as statements.
fn collect_locals<'a>(cx: &Cx<'a>, body: Node, out: &mut HashSet<&'a [u8]>, typed: &mut Vec<Param>) {
    let mut cur = body.walk();
    let mut depth = 0usize;
    'outer: loop {
        let node = cur.node();
        let mut descend = true;
        match node.kind() {
            "declaration" => {
                let base = node.child_by_field_name("type").map(|t| cx.norm(t)).unwrap_or_default();
                let mut c2 = node.walk();
                for d in node.children_by_field_name("declarator", &mut c2) {
                    if let Some(n) = declarator_name(d) {
                        out.insert(cx.bytes(n));
                        typed.push(Param { name: cx.text(n), type_text: super::extract::pointer_type(&base, d) });
                    }
                }
            }
            "expression_statement" => {
                if let Some(call) = node.named_child(0).filter(|c| c.kind() == "call_expression") {
                    if let Some(f) = call.child_by_field_name("function") {
                        let w = std::str::from_utf8(cx.bytes(f)).unwrap_or("");
                        if f.kind() == "identifier" && super::mask::define_type(w).is_some() {
                            if let Some(args) = call.child_by_field_name("arguments") {
                                let k =
                                    if w.contains("PER_CPU") { args.named_child_count().saturating_sub(1) } else { 0 };
                                if let Some(a) = args.named_child(k).filter(|a| a.kind() == "identifier") {
                                    out.insert(cx.bytes(a));
                                }
                            }
                        }
                    }
                }
            }
            "string_literal" | "comment" | "number_literal" => descend = false,
            _ => {}
        }
        if descend && depth < MAX_DEPTH && cur.goto_first_child() {
            depth += 1;
            continue;
        }
        loop {
            if cur.goto_next_sibling() {
                continue 'outer;
            }
            if depth == 0 || !cur.goto_parent() {
                break 'outer;
            }
            depth -= 1;
        }
    }
}

/// Top-level `a, b, c` of a comma expression, in order.
fn flatten_comma<'t>(n: Node<'t>, out: &mut Vec<Node<'t>>) {
    let mut n = n;
    for _ in 0..4096 {
        if n.kind() != "comma_expression" {
            break;
        }
        match (n.child_by_field_name("left"), n.child_by_field_name("right")) {
            (Some(l), Some(r)) => {
                out.push(l);
                n = r;
            }
            _ => break,
        }
    }
    out.push(n);
}

/// Inside of a parenthesized expression (the node itself otherwise).
fn unparen(n: Node) -> Node {
    if n.kind() == "parenthesized_expression" {
        let mut cur = n.walk();
        let inner = n.named_children(&mut cur).find(|c| c.kind() != "comment");
        if let Some(inner) = inner {
            return inner;
        }
    }
    n
}

/// Resolve a call's callee syntactically. For `m(k)(...)` shapes also
/// returns the inner argument (the guard type of `guard(type)(...)`).
pub(crate) fn callee_of<'t>(cx: &Cx, func: Node<'t>) -> (Callee, Option<Node<'t>>) {
    match func.kind() {
        "identifier" => (Callee::Direct(cx.text(func)), None),
        "field_expression" => {
            let base = func.child_by_field_name("argument").map(|b| cx.norm(b)).unwrap_or_default();
            let field = func.child_by_field_name("field").map(|f| cx.text(f)).unwrap_or_default();
            (Callee::OpsMember { base, field }, None)
        }
        "call_expression" => {
            let inner_f = func.child_by_field_name("function");
            let inner_args = func.child_by_field_name("arguments");
            if let (Some(f), Some(a)) = (inner_f, inner_args) {
                let mut cur = a.walk();
                let args: Vec<Node> = a.named_children(&mut cur).filter(|c| c.kind() != "comment").collect();
                if f.kind() == "identifier" && args.len() == 1 && args[0].kind() == "identifier" {
                    let m = cx.text(f);
                    let key = cx.text(args[0]);
                    return match m.as_str() {
                        "guard" => (Callee::Direct(m), Some(args[0])),
                        "static_call" | "static_call_cond" | "static_call_mod" => {
                            (Callee::StaticCall { key, via_macro: None }, None)
                        }
                        _ => (Callee::StaticCall { key, via_macro: Some(m) }, None),
                    };
                }
            }
            (Callee::Indirect(cx.norm(func)), None)
        }
        "parenthesized_expression" => {
            let inner = unparen(func);
            if inner.kind() == "identifier" {
                return (Callee::Direct(cx.text(inner)), None);
            }
            (Callee::Indirect(cx.norm(func)), None)
        }
        _ => (Callee::Indirect(cx.norm(func)), None),
    }
}

/// `m(k)(...)` shapes whose inner call is not itself a call event.
fn is_macro_call_shape(func: Node) -> bool {
    if func.kind() != "call_expression" {
        return false;
    }
    let Some(a) = func.child_by_field_name("arguments") else {
        return false;
    };
    func.child_by_field_name("function").is_some_and(|f| f.kind() == "identifier")
        && a.named_child_count() == 1
        && a.named_child(0).is_some_and(|c| c.kind() == "identifier")
}

impl<'a, 'c> Body<'a, 'c> {
    fn cx(&self) -> &'c Cx<'a> {
        self.cx
    }

    /// In-body conditions at `offset` (the function's own stripped).
    fn cond(&self, offset: usize) -> Condition {
        let all = self.cx.m.conds.at(text::clamp_u32(offset));
        if all.starts_with(self.fn_cond) {
            all[self.fn_cond.len()..].to_vec()
        } else {
            all.to_vec()
        }
    }

    fn block(&self, node: Node, depth: usize) -> Block {
        let mut b = Block { span: self.cx.span(node), stmts: Vec::new() };
        if depth > MAX_DEPTH {
            return b;
        }
        if node.kind() == "compound_statement" {
            let mut cur = node.walk();
            for c in node.named_children(&mut cur) {
                self.stmt_into(c, &mut b.stmts, depth + 1);
            }
        } else {
            self.stmt_into(node, &mut b.stmts, depth + 1);
        }
        b
    }

    fn stmt_into(&self, n: Node, out: &mut Vec<Stmt>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let cx = self.cx();
        let span = cx.span(n);
        match n.kind() {
            "compound_statement" => out.push(Stmt::Block(self.block(n, depth))),
            "expression_statement" => {
                let Some(e) = n.named_child(0) else { return };
                if e.kind() == "identifier" && cx.bytes(e) == b"fallthrough" {
                    return;
                }
                let mut events = Vec::new();
                self.events(n, &mut events, AccessKind::Read, depth);
                out.push(Stmt::Simple { span, events, condition: self.cond(n.start_byte()) });
            }
            "declaration" => {
                let mut events = Vec::new();
                self.events(n, &mut events, AccessKind::Read, depth);
                out.push(Stmt::Simple { span, events, condition: self.cond(n.start_byte()) });
            }
            "if_statement" => {
                let cond_node = n.child_by_field_name("condition");
                let then = n.child_by_field_name("consequence");
                let els = n.child_by_field_name("alternative").and_then(|e| {
                    let mut cur = e.walk();
                    let s = e.named_children(&mut cur).find(|c| c.kind() != "comment");
                    s
                });
                if let Some(name) = cx.m.iterator_at(text::clamp_u32(n.start_byte())) {
                    // A short iterator macro masked to `if`.
                    let body = then.map(|t| self.block(t, depth)).unwrap_or_default();
                    out.push(self.iterator_stmt(n, name, cond_node, body, depth));
                    if let Some(e) = els {
                        self.stmt_into(e, out, depth + 1);
                    }
                    return;
                }
                let mut cond = Vec::new();
                let mut cond_text = String::new();
                if let Some(c) = cond_node {
                    self.events(c, &mut cond, AccessKind::Read, depth);
                    cond_text =
                        text::normalized(cx.src, c.start_byte().saturating_add(1), c.end_byte().saturating_sub(1));
                }
                out.push(Stmt::If {
                    span,
                    cond,
                    cond_text,
                    then_branch: then.map(|t| self.block(t, depth)).unwrap_or_default(),
                    else_branch: els.map(|e| self.block(e, depth)),
                });
            }
            "while_statement" => {
                let cond_node = n.child_by_field_name("condition");
                let body = n.child_by_field_name("body").map(|b| self.block(b, depth)).unwrap_or_default();
                if let Some(name) = cx.m.iterator_at(text::clamp_u32(n.start_byte())) {
                    out.push(self.iterator_stmt(n, name, cond_node, body, depth));
                    return;
                }
                let mut head = Vec::new();
                if let Some(c) = cond_node {
                    self.events(c, &mut head, AccessKind::Read, depth);
                }
                out.push(Stmt::Loop { span, kind: LoopKind::While, head, body });
            }
            "for_statement" => {
                let mut head = Vec::new();
                for f in ["initializer", "condition", "update"] {
                    if let Some(c) = n.child_by_field_name(f) {
                        self.events(c, &mut head, AccessKind::Read, depth);
                    }
                }
                let body = n.child_by_field_name("body").map(|b| self.block(b, depth)).unwrap_or_default();
                out.push(Stmt::Loop { span, kind: LoopKind::For, head, body });
            }
            "do_statement" => {
                let body = n.child_by_field_name("body").map(|b| self.block(b, depth)).unwrap_or_default();
                let mut head = Vec::new();
                if let Some(c) = n.child_by_field_name("condition") {
                    self.events(c, &mut head, AccessKind::Read, depth);
                }
                out.push(Stmt::Loop { span, kind: LoopKind::DoWhile, head, body });
            }
            "switch_statement" => {
                let mut cond = Vec::new();
                if let Some(c) = n.child_by_field_name("condition") {
                    self.events(c, &mut cond, AccessKind::Read, depth);
                }
                let body = n.child_by_field_name("body").map(|b| self.block(b, depth)).unwrap_or_default();
                out.push(Stmt::Switch { span, cond, body });
            }
            "case_statement" => {
                // tree-sitter nests the statements after `case X:` in the
                // case node; they are flattened into the switch block.
                let value = n.child_by_field_name("value");
                let mut cur = n.walk();
                let mut label_end = n.end_byte();
                let mut first_stmt = true;
                let mut stmts = Vec::new();
                for c in n.named_children(&mut cur) {
                    if Some(c) == value || c.kind() == "comment" {
                        continue;
                    }
                    if first_stmt {
                        label_end = c.start_byte();
                        first_stmt = false;
                    }
                    stmts.push(c);
                }
                // Span of `case X:` only, up to and including the colon.
                let colon = text::slice(cx.src, n.start_byte(), label_end)
                    .iter()
                    .rposition(|&b| b == b':')
                    .map(|p| n.start_byte() + p + 1)
                    .unwrap_or(label_end);
                out.push(Stmt::Case { span: cx.lines.span(n.start_byte(), colon) });
                for c in stmts {
                    self.stmt_into(c, out, depth + 1);
                }
            }
            "return_statement" => {
                let mut events = Vec::new();
                self.events(n, &mut events, AccessKind::Read, depth);
                let mut cur = n.walk();
                let value = n
                    .named_children(&mut cur)
                    .find(|c| c.kind() != "comment")
                    .filter(|c| literal_value(*c))
                    .map(|c| cx.text(c));
                out.push(Stmt::Return { span, events, value });
            }
            "goto_statement" => {
                let label = n.child_by_field_name("label").map(|l| cx.text(l)).unwrap_or_default();
                out.push(Stmt::Goto { span, label });
            }
            "labeled_statement" => {
                let label = n.child_by_field_name("label");
                // Read the name from the original bytes: the masker may
                // have moved the colon one byte left (`out:` -> `ou:;`).
                let (name, lspan) = match label {
                    Some(l) => {
                        let s0 = l.start_byte();
                        let e = text::slice(cx.src, s0, cx.src.len())
                            .iter()
                            .position(|&c| !text::is_ident_char(c))
                            .map_or(cx.src.len(), |p| s0 + p);
                        (text::text(cx.src, s0, e), cx.lines.span(s0, e))
                    }
                    None => (String::new(), span),
                };
                out.push(Stmt::Label { span: lspan, name });
                let mut cur = n.walk();
                for c in n.named_children(&mut cur) {
                    if Some(c) != label && c.kind() != "comment" {
                        self.stmt_into(c, out, depth + 1);
                    }
                }
            }
            "break_statement" => out.push(Stmt::Break { span }),
            "continue_statement" => out.push(Stmt::Continue { span }),
            "preproc_if" | "preproc_ifdef" => {
                let mut branches = Vec::new();
                self.preproc_branches(n, &mut branches, depth);
                out.push(Stmt::Preproc { span, branches });
            }
            "attributed_statement" => {
                let mut cur = n.walk();
                for c in n.named_children(&mut cur) {
                    if c.kind() != "attribute_declaration" {
                        self.stmt_into(c, out, depth + 1);
                    }
                }
            }
            "comment"
            | "preproc_call"
            | "preproc_def"
            | "preproc_function_def"
            | "preproc_include"
            | "type_definition"
            | "function_definition"
            | "preproc_directive" => {}
            "ERROR" => {
                // Recovered statements inside stay statements; loose
                // expressions become one Simple statement.
                let mut events = Vec::new();
                let mut cur = n.walk();
                for c in n.named_children(&mut cur) {
                    if is_statement(c.kind()) {
                        if !events.is_empty() {
                            out.push(Stmt::Simple {
                                span,
                                events: std::mem::take(&mut events),
                                condition: self.cond(n.start_byte()),
                            });
                        }
                        self.stmt_into(c, out, depth + 1);
                    } else {
                        self.events(c, &mut events, AccessKind::Read, depth + 1);
                    }
                }
                if !events.is_empty() {
                    out.push(Stmt::Simple { span, events, condition: self.cond(n.start_byte()) });
                }
            }
            _ => {
                let mut events = Vec::new();
                self.events(n, &mut events, AccessKind::Read, depth);
                if !events.is_empty() {
                    out.push(Stmt::Simple { span, events, condition: self.cond(n.start_byte()) });
                }
            }
        }
    }

    fn preproc_branches(&self, n: Node, branches: &mut Vec<PreprocBranch>, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let cx = self.cx();
        let condition = match n.kind() {
            "preproc_ifdef" | "preproc_elifdef" => {
                let name = n.child_by_field_name("name").map(|c| cx.text(c)).unwrap_or_default();
                let neg = n.child(0).is_some_and(|c| matches!(c.kind(), "#ifndef" | "#elifndef"));
                if neg {
                    format!("!{name}")
                } else {
                    name
                }
            }
            "preproc_if" | "preproc_elif" => n.child_by_field_name("condition").map(|c| cx.norm(c)).unwrap_or_default(),
            _ => "else".to_string(),
        };
        let cond_node = n.child_by_field_name("condition").or_else(|| n.child_by_field_name("name"));
        let alt = n.child_by_field_name("alternative");
        let mut body = Block { span: cx.span(n), stmts: Vec::new() };
        let mut cur = n.walk();
        for c in n.named_children(&mut cur) {
            if Some(c) == cond_node || Some(c) == alt {
                continue;
            }
            self.stmt_into(c, &mut body.stmts, depth + 1);
        }
        // The branch's span ends where the next branch starts.
        if let Some(a) = alt {
            body.span = cx.lines.span(n.start_byte(), a.start_byte());
        }
        branches.push(PreprocBranch { condition, body });
        if let Some(a) = alt {
            self.preproc_branches(a, branches, depth + 1);
        }
    }

    fn iterator_stmt(&self, n: Node, name: &str, cond: Option<Node>, body: Block, depth: usize) -> Stmt {
        let cx = self.cx();
        let mut nodes = Vec::new();
        if let Some(c) = cond {
            flatten_comma(unparen(c), &mut nodes);
        }
        let args: Vec<Arg> = nodes.iter().map(|a| cx.arg(a.start_byte(), a.end_byte())).collect();
        let span = cx.span(n);
        if name == "scoped_guard" || name == "scoped_cond_guard" {
            // scoped_cond_guard(type, fail, args...): the fail action is
            // not a lock argument.
            let skip = if name == "scoped_cond_guard" { 2 } else { 1 };
            return Stmt::ScopedGuard {
                span,
                guard_type: args.first().map(|a| a.text.clone()).unwrap_or_default(),
                args: args.into_iter().skip(skip).collect(),
                body,
            };
        }
        // The last argument of `*_entry*` iterators is a member name, not
        // a variable.
        let member_last = name.contains("entry") || name.starts_with("hash_for_each");
        let mut head = Vec::new();
        for (k, a) in nodes.iter().enumerate() {
            if member_last && k + 1 == nodes.len() && k > 0 && a.kind() == "identifier" {
                continue;
            }
            self.events(*a, &mut head, AccessKind::Read, depth);
        }
        Stmt::Loop { span, kind: LoopKind::Iterator { macro_name: name.to_string(), args }, head, body }
    }

    fn access(&self, n: Node, kind: AccessKind, out: &mut Vec<Event>) {
        let b = self.cx.bytes(n);
        if self.locals.contains(b) {
            return;
        }
        out.push(Event::Access(Access { name: self.cx.text(n), span: self.cx.span(n), kind }));
    }

    /// Events of an expression (or declaration/statement part) in
    /// evaluation order; `mode` is how the value itself is used.
    fn events(&self, n: Node, out: &mut Vec<Event>, mode: AccessKind, depth: usize) {
        if depth > MAX_DEPTH {
            return;
        }
        let d = depth + 1;
        match n.kind() {
            "identifier" => self.access(n, mode, out),
            "call_expression" => self.call(n, out, d),
            "assignment_expression" => {
                let left = n.child_by_field_name("left");
                let right = n.child_by_field_name("right");
                if let Some(r) = right {
                    self.events(r, out, AccessKind::Read, d);
                }
                if let Some(l) = left {
                    self.events(l, out, AccessKind::Write, d);
                }
                let plain = n.child_by_field_name("operator").is_some_and(|o| o.kind() == "=");
                if let (Some(l), Some(r), true) = (left, right, plain) {
                    self.assignment_facts(n, l, r, out);
                }
            }
            "update_expression" => {
                if let Some(a) = n.child_by_field_name("argument") {
                    self.events(a, out, AccessKind::Write, d);
                }
            }
            "pointer_expression" => {
                let addr = n.child_by_field_name("operator").is_some_and(|o| o.kind() == "&");
                if let Some(a) = n.child_by_field_name("argument") {
                    let m = if addr { AccessKind::AddressOf } else { AccessKind::Read };
                    self.events(a, out, m, d);
                }
            }
            "field_expression" => {
                if let Some(a) = n.child_by_field_name("argument") {
                    self.events(a, out, mode, d);
                }
            }
            "subscript_expression" => {
                if let Some(a) = n.child_by_field_name("argument") {
                    self.events(a, out, mode, d);
                }
                if let Some(i) = n.child_by_field_name("index") {
                    self.events(i, out, AccessKind::Read, d);
                }
            }
            "parenthesized_expression" | "cast_expression" => {
                let inner = n.child_by_field_name("value").unwrap_or_else(|| unparen(n));
                if inner != n {
                    self.events(inner, out, mode, d);
                }
            }
            "declaration" => {
                let mut cur = n.walk();
                let decls: Vec<Node> = n.children_by_field_name("declarator", &mut cur).collect();
                for dcl in decls {
                    if dcl.kind() != "init_declarator" {
                        continue;
                    }
                    let Some(v) = dcl.child_by_field_name("value") else {
                        continue;
                    };
                    self.events(v, out, AccessKind::Read, d);
                    if let Some(name) = dcl.child_by_field_name("declarator").and_then(declarator_name) {
                        out.push(Event::LocalAssign(self.local_assign(name, v, dcl)));
                    }
                }
            }
            "initializer_pair" => {
                if let Some(v) = n.child_by_field_name("value") {
                    self.events(v, out, AccessKind::Read, d);
                }
            }
            "compound_literal_expression" => {
                if let Some(v) = n.child_by_field_name("value") {
                    self.events(v, out, AccessKind::Read, d);
                }
            }
            "sizeof_expression"
            | "alignof_expression"
            | "offsetof_expression"
            | "type_descriptor"
            | "string_literal"
            | "concatenated_string"
            | "number_literal"
            | "char_literal"
            | "true"
            | "false"
            | "null"
            | "comment"
            | "field_identifier"
            | "statement_identifier"
            | "primitive_type"
            | "type_identifier"
            | "sized_type_specifier"
            | "struct_specifier"
            | "union_specifier"
            | "enum_specifier"
            | "macro_type_specifier"
            | "storage_class_specifier"
            | "type_qualifier"
            | "attribute_specifier"
            | "preproc_defined"
            | "generic_expression" => {}
            _ => {
                let mut cur = n.walk();
                for c in n.named_children(&mut cur) {
                    self.events(c, out, AccessKind::Read, d);
                }
            }
        }
    }

    fn local_assign(&self, name: Node, value: Node, whole: Node) -> LocalAssign {
        let cx = self.cx();
        let v = unparen(value);
        let value_call = (v.kind() == "call_expression")
            .then(|| v.child_by_field_name("function"))
            .flatten()
            .map(|f| callee_of(cx, f).0.display());
        LocalAssign { name: cx.text(name), value_text: cx.norm(value), value_call, span: cx.span(whole) }
    }

    /// `x.f = fn;` gives a FieldAssign; `local = value;` a LocalAssign.
    fn assignment_facts(&self, n: Node, left: Node, right: Node, out: &mut Vec<Event>) {
        let cx = self.cx();
        match left.kind() {
            "field_expression" => {
                let base = left.child_by_field_name("argument").map(|b| cx.norm(b)).unwrap_or_default();
                let field = left.child_by_field_name("field").map(|f| cx.text(f)).unwrap_or_default();
                let (value_ident, _) = super::extract::arg_ident(&cx.norm(right));
                out.push(Event::FieldAssign(FieldAssign { base, field, value_ident, span: cx.span(n) }));
            }
            "identifier" if self.locals.contains(cx.bytes(left)) => {
                out.push(Event::LocalAssign(self.local_assign(left, right, n)));
            }
            _ => {}
        }
    }

    fn call(&self, n: Node, out: &mut Vec<Event>, depth: usize) {
        let cx = self.cx();
        let Some(func) = n.child_by_field_name("function") else {
            return;
        };
        let (callee, inner_arg) = callee_of(cx, func);
        match func.kind() {
            "identifier" => {}
            "field_expression" => {
                if let Some(b) = func.child_by_field_name("argument") {
                    self.events(b, out, AccessKind::Read, depth);
                }
            }
            _ if is_macro_call_shape(func) => {}
            _ => self.events(func, out, AccessKind::Read, depth),
        }
        let mut args = Vec::new();
        if let Some(a) = inner_arg {
            args.push(cx.arg(a.start_byte(), a.end_byte()));
        }
        if let Some(al) = n.child_by_field_name("arguments") {
            let mut cur = al.walk();
            for a in al.named_children(&mut cur) {
                if a.kind() == "comment" {
                    continue;
                }
                self.events(a, out, AccessKind::Read, depth);
                args.push(cx.arg(a.start_byte(), a.end_byte()));
            }
        }
        out.push(Event::Call(CallSite {
            callee,
            args,
            span: cx.span(n),
            callee_span: cx.span(func),
            condition: self.cond(n.start_byte()),
        }));
    }
}

fn is_statement(kind: &str) -> bool {
    matches!(
        kind,
        "compound_statement"
            | "expression_statement"
            | "declaration"
            | "if_statement"
            | "while_statement"
            | "for_statement"
            | "do_statement"
            | "switch_statement"
            | "case_statement"
            | "return_statement"
            | "goto_statement"
            | "labeled_statement"
            | "break_statement"
            | "continue_statement"
            | "preproc_if"
            | "preproc_ifdef"
    )
}

/// Whether a returned expression is a literal: a number (also negated:
/// `-1`), `true`, `false`.
fn literal_value(n: Node) -> bool {
    match n.kind() {
        "number_literal" | "true" | "false" | "null" => true,
        "unary_expression" => {
            n.named_child_count() == 1 && n.named_child(0).is_some_and(|c| c.kind() == "number_literal")
        }
        _ => false,
    }
}
