//! File-scope facts: functions, prototypes, globals, initializers, enums,
//! top-level macros and diagnostics, from the tree of the masked bytes.
//!
//! All text comes from the original bytes (identical to the masked ones
//! wherever a node's text matters, since masking only blanks idioms).

use tree_sitter::{Node, Tree};

use super::mask::{AnnotationKind, Masked};
use super::text::{self, LineIndex};
use crate::facts::*;

/// Diagnostics kept per file: the first ones locate the problem.
const MAX_DIAGNOSTICS: usize = 64;

/// Shared read-only context of one file's extraction.
pub(crate) struct Cx<'a> {
    pub src: &'a [u8],
    pub m: &'a Masked,
    pub lines: LineIndex,
}

impl<'a> Cx<'a> {
    pub fn span(&self, n: Node) -> Span {
        self.lines.span(n.start_byte(), n.end_byte())
    }
    pub fn bytes(&self, n: Node) -> &'a [u8] {
        text::slice(self.src, n.start_byte(), n.end_byte())
    }
    pub fn text(&self, n: Node) -> String {
        text::text(self.src, n.start_byte(), n.end_byte())
    }
    pub fn norm(&self, n: Node) -> String {
        text::normalized(self.src, n.start_byte(), n.end_byte())
    }
    pub fn cond(&self, offset: usize) -> Condition {
        self.m.conds.at(text::clamp_u32(offset)).to_vec()
    }

    /// An [`Arg`] for the byte range `start..end`.
    pub fn arg(&self, start: usize, end: usize) -> Arg {
        let t = text::text(self.src, start, end);
        let (ident, address_of) = arg_ident(&t);
        Arg { text: t, span: self.lines.span(start, end), ident, address_of }
    }

    /// Start of the blank run before `pos` in the masked bytes: masked
    /// annotations written before a definition lie in it.
    fn header_start(&self, pos: usize) -> usize {
        let b = &self.m.bytes;
        let mut k = pos.min(b.len());
        while k > 0 && b[k - 1].is_ascii_whitespace() {
            k -= 1;
        }
        k
    }

    /// Attributes recorded by the masker in `start..end`, minus the ones
    /// inside `skip` (a parameter list).
    fn attributes(&self, start: usize, end: usize, skip: Option<(usize, usize)>) -> Vec<String> {
        self.m
            .annotations_in(text::clamp_u32(start), text::clamp_u32(end))
            .iter()
            .filter(|a| a.kind == AnnotationKind::Attribute)
            .filter(|a| skip.is_none_or(|(s, e)| (a.start as usize) < s || (a.start as usize) >= e))
            .map(|a| a.text.clone())
            .collect()
    }
}

/// `kvm`, `&kvm->lock`, `kvm_x86_ops.hardware_enable`: the identifier or
/// member path an argument names, and whether it is taken by address.
pub(crate) fn arg_ident(t: &str) -> (Option<String>, bool) {
    let mut s = t.trim();
    let mut addr = false;
    if let Some(r) = s.strip_prefix('&') {
        addr = true;
        s = r.trim_start();
    }
    // Drop redundant parentheses: `&(kvm->lock)`.
    while s.starts_with('(') && s.ends_with(')') && s.len() >= 2 {
        s = s[1..s.len() - 1].trim();
    }
    let mut out = String::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    let mut expect_ident = true;
    while i < b.len() {
        let c = b[i];
        if expect_ident {
            if !text::is_ident_start(c) {
                return (None, addr);
            }
            while i < b.len() && text::is_ident_char(b[i]) {
                out.push(b[i] as char);
                i += 1;
            }
            expect_ident = false;
        } else if c.is_ascii_whitespace() {
            i += 1;
        } else if c == b'.' {
            out.push('.');
            i += 1;
            expect_ident = true;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
        } else if c == b'-' && b.get(i + 1) == Some(&b'>') {
            out.push_str("->");
            i += 2;
            expect_ident = true;
            while i < b.len() && b[i].is_ascii_whitespace() {
                i += 1;
            }
        } else {
            return (None, addr);
        }
    }
    if expect_ident || out.is_empty() || matches!(out.as_str(), "NULL" | "true" | "false") {
        return (None, addr);
    }
    (Some(out), addr)
}

/// Fill `facts` from the tree of one chunk of a file (see
/// [`Masked::chunks`]): `src` and `m` are the chunk's bytes and what the
/// masker found in it, offsets from its start.
pub(crate) fn extract_chunk(facts: &mut FileFacts, src: &[u8], m: &Masked, tree: &Tree) {
    let cx = Cx { src, m, lines: LineIndex::new(src) };
    let root = tree.root_node();
    top(&cx, root, facts);
    facts.parse_quality.error_nodes_recovered = super::count_errors(tree);
    if root.has_error() {
        diagnostics(&cx, root, &mut facts.diagnostics);
    }
}

/// Add the file-scope macro statements the masker blanked to the facts of
/// the whole file (`src`, `m` and `lines` of the whole file), and sort the
/// top-level macros by place.
pub(crate) fn file_macros(facts: &mut FileFacts, src: &[u8], m: &Masked, lines: LineIndex) {
    let cx = Cx { src, m, lines };
    for tm in &m.top_macros {
        facts.top_level_macros.push(MacroUse {
            name: tm.name.clone(),
            args: tm.args.iter().map(|&(s, e)| cx.arg(s as usize, e as usize)).collect(),
            span: cx.lines.span(tm.start as usize, tm.end as usize),
            condition: cx.cond(tm.start as usize),
        });
    }
    facts.top_level_macros.sort_by_key(|mu| mu.span.start);
    facts.diagnostics.truncate(MAX_DIAGNOSTICS);
}

fn named(n: Node<'_>) -> Vec<Node<'_>> {
    let mut cur = n.walk();
    let v: Vec<Node> = n.named_children(&mut cur).collect();
    v
}

/// Walk the file-scope items, through preprocessor blocks and ERROR
/// nodes, in source order (explicit stack: nesting can be deep).
fn top(cx: &Cx, root: Node, facts: &mut FileFacts) {
    // (children of a node, index of the next child to visit)
    let mut stack = vec![(named(root), 0usize)];
    while let Some((children, from)) = stack.pop() {
        for k in from..children.len() {
            let child = children[k];
            match child.kind() {
                "function_definition" => {
                    if let Some(f) = function(cx, child) {
                        facts.functions.push(f);
                    }
                }
                "declaration" => declaration(cx, child, facts),
                "type_definition" => {
                    if let Some(t) = child.child_by_field_name("type") {
                        enums_in(cx, t, facts, 0);
                        struct_defs_in(cx, t, facts, 0);
                    }
                }
                "preproc_if"
                | "preproc_ifdef"
                | "preproc_else"
                | "preproc_elif"
                | "preproc_elifdef"
                | "ERROR"
                | "linkage_specification"
                | "declaration_list" => {
                    // Visit the container, then come back for the rest.
                    let inner = named(child);
                    stack.push((children, k + 1));
                    stack.push((inner, 0));
                    break;
                }
                "expression_statement" => {
                    // A macro statement the masker left (e.g. after an odd
                    // token): still a top-level macro use.
                    if let Some(call) = child.named_child(0).filter(|c| c.kind() == "call_expression") {
                        if let Some(mu) = macro_use(cx, call) {
                            facts.top_level_macros.push(mu);
                        }
                    }
                }
                "struct_specifier" | "union_specifier" | "enum_specifier" => {
                    enums_in(cx, child, facts, 0);
                    struct_defs_in(cx, child, facts, 0);
                }
                _ => {}
            }
        }
    }
}

fn macro_use(cx: &Cx, call: Node) -> Option<MacroUse> {
    let f = call.child_by_field_name("function")?;
    if f.kind() != "identifier" {
        return None;
    }
    let args = call.child_by_field_name("arguments")?;
    let mut cur = args.walk();
    let args = args
        .named_children(&mut cur)
        .filter(|a| a.kind() != "comment")
        .map(|a| cx.arg(a.start_byte(), a.end_byte()))
        .collect();
    Some(MacroUse { name: cx.text(f), args, span: cx.span(call), condition: cx.cond(call.start_byte()) })
}

/// Descend a declarator to the function declarator that names a
/// function: returns (name identifier, its function_declarator, pointer
/// levels on the way).
pub(crate) fn function_declarator(decl: Node) -> Option<(Node, Node, usize)> {
    let mut n = decl;
    let mut stars = 0;
    for _ in 0..64 {
        match n.kind() {
            "function_declarator" => {
                let inner = n.child_by_field_name("declarator")?;
                if inner.kind() == "identifier" {
                    return Some((inner, n, stars));
                }
                n = inner;
            }
            "pointer_declarator" => {
                stars += 1;
                n = n.child_by_field_name("declarator")?;
            }
            "parenthesized_declarator" | "attributed_declarator" => {
                n = n.named_child(0)?;
            }
            _ => return None,
        }
    }
    None
}

/// The identifier a (non-function) declarator declares.
pub(crate) fn declarator_name(decl: Node) -> Option<Node> {
    let mut n = decl;
    for _ in 0..64 {
        match n.kind() {
            "identifier" | "field_identifier" | "type_identifier" => return Some(n),
            "init_declarator" | "pointer_declarator" | "array_declarator" | "function_declarator" => {
                n = n.child_by_field_name("declarator")?;
            }
            "parenthesized_declarator" | "attributed_declarator" => n = n.named_child(0)?,
            _ => return None,
        }
    }
    None
}

fn has_specifier(cx: &Cx, node: Node, kinds: &[&str], words: &[&[u8]]) -> bool {
    let mut cur = node.walk();
    let found = node.children(&mut cur).any(|c| kinds.contains(&c.kind()) && words.contains(&cx.bytes(c)));
    found
}

fn qualified_type(cx: &Cx, node: Node) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut cur = node.walk();
    for c in node.children(&mut cur) {
        if c.kind() == "type_qualifier" {
            parts.push(cx.norm(c));
        }
    }
    if let Some(t) = node.child_by_field_name("type") {
        parts.push(cx.norm(t));
    }
    parts.join(" ")
}

fn function(cx: &Cx, node: Node) -> Option<Function> {
    let decl = node.child_by_field_name("declarator")?;
    let body = node.child_by_field_name("body")?;
    let (name, fdecl, stars) = function_declarator(decl)?;
    let params_node = fdecl.child_by_field_name("parameters");
    let mut ret = qualified_type(cx, node);
    if stars > 0 {
        ret.push(' ');
        ret.push_str(&"*".repeat(stars));
    }
    let hstart = cx.header_start(node.start_byte());
    let skip = params_node.map(|p| (p.start_byte(), p.end_byte()));
    let attributes = cx.attributes(hstart, body.start_byte(), skip);
    let start =
        cx.m.annotations_in(text::clamp_u32(hstart), text::clamp_u32(node.start_byte()))
            .first()
            .map(|a| a.start as usize)
            .unwrap_or(node.start_byte())
            .min(node.start_byte());
    let is_inline = has_specifier(
        cx,
        node,
        &["storage_class_specifier"],
        &[b"inline", b"__inline", b"__inline__", b"__forceinline"],
    ) || attributes.iter().any(|a| a == "__always_inline");
    let condition = cx.cond(start);
    let params = params_node.map(|p| params(cx, p)).unwrap_or_default();
    let (body_block, locals) = super::stmt::function_body(cx, body, params_node, &condition);
    Some(Function {
        name: cx.text(name),
        span: cx.lines.span(start, node.end_byte()),
        name_span: cx.span(name),
        body_span: cx.span(body),
        is_static: has_specifier(cx, node, &["storage_class_specifier"], &[b"static"]),
        is_inline,
        attributes,
        return_type: ret,
        params,
        condition,
        body: body_block,
        locals,
    })
}

fn params(cx: &Cx, list: Node) -> Vec<Param> {
    let mut out = Vec::new();
    let mut cur = list.walk();
    for p in list.named_children(&mut cur) {
        match p.kind() {
            "parameter_declaration" => {
                let name = p.child_by_field_name("declarator").and_then(declarator_name);
                let Some(name) = name else {
                    // `void`, or an unnamed parameter: keep unnamed types.
                    let t = cx.norm(p);
                    if t != "void" {
                        out.push(Param { name: String::new(), type_text: t });
                    }
                    continue;
                };
                // The type is the declaration without the name.
                let mut t = text::normalized(cx.src, p.start_byte(), name.start_byte());
                let rest = text::normalized(cx.src, name.end_byte(), p.end_byte());
                if !rest.is_empty() {
                    if !t.is_empty() {
                        t.push(' ');
                    }
                    t.push_str(&rest);
                }
                out.push(Param { name: cx.text(name), type_text: t.trim().to_string() });
            }
            "variadic_parameter" => out.push(Param { name: "...".into(), type_text: "...".into() }),
            _ => {}
        }
    }
    out
}

fn declaration(cx: &Cx, node: Node, facts: &mut FileFacts) {
    let ty = node.child_by_field_name("type");
    if let Some(t) = ty {
        enums_in(cx, t, facts, 0);
        struct_defs_in(cx, t, facts, 0);
    }
    let define = ty.and_then(|t| cx.m.define_at(text::clamp_u32(t.start_byte())));
    let is_static = has_specifier(cx, node, &["storage_class_specifier"], &[b"static"]);
    let is_extern = has_specifier(cx, node, &["storage_class_specifier"], &[b"extern"])
        || define.is_some_and(|d| d.macro_name.starts_with("DECLARE_PER_CPU"));
    let hstart = cx.header_start(node.start_byte());
    let start =
        cx.m.annotations_in(text::clamp_u32(hstart), text::clamp_u32(node.start_byte()))
            .first()
            .map(|a| a.start as usize)
            .unwrap_or(node.start_byte())
            .min(node.start_byte());
    let condition = cx.cond(start);
    let type_text = match define {
        Some(d) => d.type_text.clone(),
        None => qualified_type(cx, node),
    };
    let mut cur = node.walk();
    let decls: Vec<Node> = node.children_by_field_name("declarator", &mut cur).collect();
    for d in decls {
        let (inner, value) = if d.kind() == "init_declarator" {
            (d.child_by_field_name("declarator"), d.child_by_field_name("value"))
        } else {
            (Some(d), None)
        };
        let Some(inner) = inner else { continue };
        if let Some((name, fdecl, _)) = function_declarator(inner) {
            let skip = fdecl.child_by_field_name("parameters").map(|p| (p.start_byte(), p.end_byte()));
            facts.prototypes.push(Prototype {
                name: cx.text(name),
                span: cx.lines.span(start, node.end_byte()),
                is_static,
                attributes: cx.attributes(hstart, node.end_byte(), skip),
                condition: condition.clone(),
            });
            continue;
        }
        let Some(name) = declarator_name(inner) else {
            continue;
        };
        let mut tt = type_text.clone();
        if define.is_none() {
            // Pointer and array parts of the declarator belong to the type.
            let stars = count_pointers(inner);
            if stars > 0 {
                tt.push(' ');
                tt.push_str(&"*".repeat(stars));
            }
        }
        let name_text = cx.text(name);
        facts.globals.push(Global {
            name: name_text.clone(),
            span: cx.lines.span(start, node.end_byte()),
            name_span: cx.span(name),
            define_macro: define.map(|d| d.macro_name.clone()),
            type_text: tt,
            is_static,
            is_extern,
            attributes: cx.attributes(hstart, node.end_byte(), None),
            condition: condition.clone(),
        });
        if let Some(v) = value {
            let st = ty.map(|t| struct_type(cx, t)).unwrap_or_default();
            initializer(cx, v, &name_text, &st, facts, 0);
        }
    }
}

fn count_pointers(decl: Node) -> usize {
    let mut n = decl;
    let mut stars = 0;
    for _ in 0..64 {
        match n.kind() {
            "pointer_declarator" => {
                stars += 1;
                match n.child_by_field_name("declarator") {
                    Some(d) => n = d,
                    None => break,
                }
            }
            "array_declarator" | "init_declarator" => match n.child_by_field_name("declarator") {
                Some(d) => n = d,
                None => break,
            },
            _ => break,
        }
    }
    stars
}

/// `syscore_ops` for `struct syscore_ops`, the typedef name otherwise.
fn struct_type(cx: &Cx, t: Node) -> String {
    match t.kind() {
        "struct_specifier" | "union_specifier" | "enum_specifier" => {
            t.child_by_field_name("name").map(|n| cx.text(n)).unwrap_or_default()
        }
        _ => cx.norm(t),
    }
}

/// Designated initializers of `var` (and nested ones as `var.field`,
/// array elements as `var[i]`).
fn initializer(cx: &Cx, value: Node, var: &str, st: &str, facts: &mut FileFacts, depth: usize) {
    if depth > 16 {
        return;
    }
    let list = match value.kind() {
        "initializer_list" => value,
        "compound_literal_expression" => {
            let t = value
                .child_by_field_name("type")
                .and_then(|td| td.child_by_field_name("type"))
                .map(|t| struct_type(cx, t))
                .unwrap_or_default();
            if let Some(v) = value.child_by_field_name("value") {
                initializer(cx, v, var, &t, facts, depth + 1);
            }
            return;
        }
        "pointer_expression" | "parenthesized_expression" | "cast_expression" => {
            if let Some(v) = value
                .child_by_field_name("argument")
                .or_else(|| value.child_by_field_name("value"))
                .or_else(|| value.named_child(0))
            {
                initializer(cx, v, var, st, facts, depth + 1);
            }
            return;
        }
        _ => return,
    };
    let mut fields = Vec::new();
    let mut nested: Vec<(Node, String)> = Vec::new();
    let mut index = 0usize;
    collect_pairs(cx, list, var, &mut fields, &mut nested, &mut index, 0);
    if !fields.is_empty() {
        facts.initializers.push(StructInit {
            var_name: var.to_string(),
            struct_type: st.to_string(),
            span: cx.span(value),
            fields,
            condition: cx.cond(value.start_byte()),
        });
    }
    for (n, path) in nested {
        // Array elements share the element type; nested fields' types are
        // not known syntactically.
        let t = if path.ends_with(']') { st.to_string() } else { String::new() };
        initializer(cx, n, &path, &t, facts, depth + 1);
    }
}

fn collect_pairs<'t>(
    cx: &Cx,
    list: Node<'t>,
    var: &str,
    fields: &mut Vec<FieldBinding>,
    nested: &mut Vec<(Node<'t>, String)>,
    index: &mut usize,
    depth: usize,
) {
    if depth > 8 {
        return;
    }
    let mut cur = list.walk();
    for item in list.named_children(&mut cur) {
        match item.kind() {
            "initializer_pair" => {
                let mut names = Vec::new();
                let mut dc = item.walk();
                for d in item.children_by_field_name("designator", &mut dc) {
                    match d.kind() {
                        "field_designator" => {
                            if let Some(f) = d.named_child(0) {
                                if !names.is_empty() {
                                    names.push(".".to_string());
                                }
                                names.push(cx.text(f));
                            }
                        }
                        "field_identifier" => names.push(cx.text(d)),
                        _ => names.push(cx.norm(d)),
                    }
                }
                let field: String = names.concat();
                let Some(v) = item.child_by_field_name("value") else {
                    continue;
                };
                let value_text = cx.norm(v);
                let (ident, _) = arg_ident(&value_text);
                fields.push(FieldBinding {
                    field: field.clone(),
                    value_text,
                    value_ident: ident,
                    span: cx.span(item),
                    condition: cx.cond(item.start_byte()),
                });
                let sep = if field.starts_with('[') { "" } else { "." };
                match v.kind() {
                    "initializer_list" | "compound_literal_expression" | "pointer_expression" => {
                        nested.push((v, format!("{var}{sep}{field}")))
                    }
                    _ => {}
                }
            }
            "initializer_list" => {
                nested.push((item, format!("{var}[{index}]")));
                *index += 1;
            }
            "ERROR" | "preproc_if" | "preproc_ifdef" | "preproc_else" | "preproc_elif" => {
                collect_pairs(cx, item, var, fields, nested, index, depth + 1)
            }
            "comment" => {}
            _ => *index += 1,
        }
    }
}

/// A declarator's type: the declaration's base type plus the declarator's
/// pointer levels (`struct kvm` and `*kvm` give `struct kvm *`).
pub(crate) fn pointer_type(base: &str, declarator: Node) -> String {
    let stars = count_pointers(declarator);
    if stars == 0 {
        return base.to_string();
    }
    format!("{base} {}", "*".repeat(stars))
}

/// Named struct and union definitions in a type (and the named ones nested
/// in its members), with their members' types.
fn struct_defs_in(cx: &Cx, t: Node, facts: &mut FileFacts, depth: usize) {
    if depth > 8 || !matches!(t.kind(), "struct_specifier" | "union_specifier") {
        return;
    }
    let Some(body) = t.child_by_field_name("body") else { return };
    let mut members = Vec::new();
    struct_members(cx, body, facts, &mut members, depth);
    if let Some(name) = t.child_by_field_name("name") {
        facts.structs.push(StructDef {
            name: cx.text(name),
            span: cx.span(t),
            members,
            condition: cx.cond(t.start_byte()),
        });
    }
}

/// The members of a struct body; members of anonymous nested structs and
/// unions are flattened into it, named nested ones are recorded on their own.
fn struct_members(cx: &Cx, body: Node, facts: &mut FileFacts, out: &mut Vec<Param>, depth: usize) {
    if depth > 8 {
        return;
    }
    let mut cur = body.walk();
    for f in body.named_children(&mut cur) {
        match f.kind() {
            "field_declaration" => {
                let Some(ft) = f.child_by_field_name("type") else { continue };
                let mut c2 = f.walk();
                let decls: Vec<Node> = f.children_by_field_name("declarator", &mut c2).collect();
                let anonymous = ft.child_by_field_name("name").is_none();
                if decls.is_empty() && anonymous && ft.child_by_field_name("body").is_some() {
                    // `union { struct mutex a; spinlock_t b; };`
                    if let Some(inner) = ft.child_by_field_name("body") {
                        struct_members(cx, inner, facts, out, depth + 1);
                    }
                    continue;
                }
                struct_defs_in(cx, ft, facts, depth + 1);
                if anonymous && matches!(ft.kind(), "struct_specifier" | "union_specifier") {
                    // `struct { spinlock_t lock; ... } irqfds;`: its members
                    // under dotted names (`irqfds.lock`), the member itself
                    // with no type.
                    if let Some(inner) = ft.child_by_field_name("body") {
                        let mut nested = Vec::new();
                        struct_members(cx, inner, facts, &mut nested, depth + 1);
                        for d in &decls {
                            let Some(n) = declarator_name(*d) else { continue };
                            let name = cx.text(n);
                            out.extend(
                                nested.iter().map(|m| Param {
                                    name: format!("{name}.{}", m.name),
                                    type_text: m.type_text.clone(),
                                }),
                            );
                        }
                    }
                }
                let base = if ft.child_by_field_name("body").is_some() {
                    // `struct foo { ... } member;`: the tag, not the body.
                    let kw = if ft.kind() == "union_specifier" { "union" } else { "struct" };
                    ft.child_by_field_name("name").map(|n| format!("{kw} {}", cx.text(n))).unwrap_or_default()
                } else {
                    cx.norm(ft)
                };
                for d in decls {
                    if let Some(n) = declarator_name(d) {
                        out.push(Param { name: cx.text(n), type_text: pointer_type(&base, d) });
                    }
                }
            }
            "preproc_if" | "preproc_ifdef" | "preproc_else" | "preproc_elif" | "field_declaration_list" => {
                struct_members(cx, f, facts, out, depth + 1);
            }
            _ => {}
        }
    }
}

fn enums_in(cx: &Cx, t: Node, facts: &mut FileFacts, depth: usize) {
    if depth > 8 {
        return;
    }
    if t.kind() == "enum_specifier" {
        if let Some(body) = t.child_by_field_name("body") {
            let mut e = EnumDef {
                name: t.child_by_field_name("name").map(|n| cx.text(n)).unwrap_or_default(),
                span: cx.span(t),
                enumerators: Vec::new(),
                condition: cx.cond(t.start_byte()),
            };
            enumerators(cx, body, &mut e.enumerators, 0);
            facts.enums.push(e);
        }
        return;
    }
    // Enums nested in struct bodies.
    if let Some(body) = t.child_by_field_name("body") {
        let mut cur = body.walk();
        for f in body.named_children(&mut cur) {
            if let Some(ft) = f.child_by_field_name("type") {
                enums_in(cx, ft, facts, depth + 1);
            }
        }
    }
}

fn enumerators(cx: &Cx, list: Node, out: &mut Vec<Enumerator>, depth: usize) {
    if depth > 16 {
        return;
    }
    let mut cur = list.walk();
    for c in list.named_children(&mut cur) {
        match c.kind() {
            "enumerator" => {
                let Some(name) = c.child_by_field_name("name") else {
                    continue;
                };
                out.push(Enumerator {
                    name: cx.text(name),
                    value_text: c.child_by_field_name("value").map(|v| cx.norm(v)),
                    span: cx.span(c),
                    condition: cx.cond(c.start_byte()),
                });
            }
            "preproc_if" | "preproc_ifdef" | "preproc_else" | "preproc_elif" | "preproc_elifdef" | "ERROR" => {
                enumerators(cx, c, out, depth + 1)
            }
            _ => {}
        }
    }
}

/// One diagnostic per outermost ERROR node and per MISSING node.
fn diagnostics(cx: &Cx, root: Node, out: &mut Vec<ParseDiagnostic>) {
    let mut cur = root.walk();
    'outer: loop {
        let node = cur.node();
        let mut descend = node.has_error();
        if node.is_missing() {
            out.push(ParseDiagnostic {
                span: cx.span(node),
                message: format!("expected `{}` (inserted by error recovery)", node.kind()),
            });
        } else if node.is_error() {
            let what = match node.parent().map(|p| p.kind()) {
                Some("translation_unit") | None => "a declaration or definition",
                Some("compound_statement") => "a statement",
                Some("argument_list") => "an expression (macro argument?)",
                Some("initializer_list") => "an initializer",
                Some("field_declaration_list") => "a struct member declaration",
                Some("parameter_list") => "a parameter declaration",
                Some(_) => "valid C syntax",
            };
            let mut snippet = text::normalized(cx.src, node.start_byte(), node.end_byte());
            if snippet.len() > 40 {
                let mut cut = 40;
                while !snippet.is_char_boundary(cut) {
                    cut -= 1;
                }
                snippet.truncate(cut);
                snippet.push_str("...");
            }
            out.push(ParseDiagnostic {
                span: cx.span(node),
                message: format!("unparsed `{snippet}`: expected {what}"),
            });
            descend = false;
        }
        if out.len() >= MAX_DIAGNOSTICS {
            return;
        }
        if descend && cur.goto_first_child() {
            continue;
        }
        loop {
            if cur.goto_next_sibling() {
                continue 'outer;
            }
            if !cur.goto_parent() {
                break 'outer;
            }
        }
    }
}
