//! `enum cpuhp_state` from `include/linux/cpuhotplug.h`.
//!
//! The CPU hotplug state machine runs the callbacks of each state in enum
//! order, and where a state sits in the enum decides the context its
//! callbacks run in. The header documents three sections:
//!
//! - PREPARE: invoked on a control CPU, in process context, before the
//!   hotplugged CPU is started or after it has died.
//! - STARTING: invoked on the hotplugged CPU from the low-level bringup and
//!   teardown code, with interrupts disabled (atomic).
//! - ONLINE: invoked on the hotplugged CPU from the per-CPU hotplug thread,
//!   in process context, with the hotplug lock held for write by the
//!   control CPU.
//!
//! The boundaries are taken from the kernel's own predicates in
//! `kernel/cpu.c` rather than from naming conventions (some PREPARE states
//! are named `CPUHP_AP_*`, e.g. `CPUHP_AP_ARM_CACHE_B15_RAC_DEAD` in 6.1):
//!
//! ```c
//! static bool cpuhp_is_ap_state(enum cpuhp_state state)
//! {
//!         return state > CPUHP_BRINGUP_CPU && state != CPUHP_TEARDOWN_CPU;
//! }
//! static bool cpuhp_is_atomic_state(enum cpuhp_state state)
//! {
//!         return CPUHP_AP_IDLE_DEAD <= state && state < CPUHP_AP_ONLINE;
//! }
//! ```
//!
//! Only the marker states named in those predicates are known here; every
//! other state's section follows from its value in the parsed enum.

use std::fmt;

use serde::{Deserialize, Serialize};

/// The last PREPARE state: it runs on the control CPU (it kicks the new
/// CPU), and every later state except [`TEARDOWN_MARKER`] runs on the
/// hotplugged CPU (`cpuhp_is_ap_state()`).
pub const BRINGUP_MARKER: &str = "CPUHP_BRINGUP_CPU";
/// The first state after the STARTING section: STARTING callbacks run from
/// `notify_cpu_starting()` up to it with interrupts off, later ones from the
/// hotplug thread (`cpuhp_is_atomic_state()`).
pub const AP_ONLINE_MARKER: &str = "CPUHP_AP_ONLINE";
/// A state placed among the AP states whose step (`takedown_cpu()`) runs on
/// the control CPU; `cpuhp_is_ap_state()` excludes it explicitly, so it is
/// classified PREPARE. Optional: older trees may lack it.
pub const TEARDOWN_MARKER: &str = "CPUHP_TEARDOWN_CPU";

/// Where in the hotplug sequence a state's callbacks run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum CpuhpSection {
    /// On a control CPU, process context.
    Prepare,
    /// On the hotplugged CPU, interrupts disabled.
    Starting,
    /// On the hotplugged CPU in its hotplug thread, process context, with
    /// the CPU hotplug lock held for write by the control CPU.
    Online,
}

impl fmt::Display for CpuhpSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            CpuhpSection::Prepare => "PREPARE",
            CpuhpSection::Starting => "STARTING",
            CpuhpSection::Online => "ONLINE",
        })
    }
}

/// One enumerator of `enum cpuhp_state`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuhpState {
    /// `CPUHP_AP_KVM_STARTING`.
    pub name: String,
    /// Its value, with `= expr` initializers evaluated.
    pub index: i64,
    /// 1-based line of the enumerator in the header.
    pub line: u32,
    /// `None` only for states below `CPUHP_OFFLINE` (`CPUHP_INVALID = -1`),
    /// which are not part of the state machine.
    pub section: Option<CpuhpSection>,
}

/// The parsed `enum cpuhp_state`, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CpuhpEnum {
    /// The enumerators in declaration order.
    pub states: Vec<CpuhpState>,
}

/// Why `enum cpuhp_state` could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CpuhpError {
    /// The text has no `enum cpuhp_state { ... }` definition.
    #[error("{path}: no `enum cpuhp_state {{ ... }}` definition found")]
    NotFound {
        /// The file, as passed to the parser.
        path: String,
    },
    /// The enum (or a comment) is not closed before the end of the file.
    #[error("{path}:{line}: unterminated {what}: expected {expected} before the end of the file")]
    Unterminated {
        /// The file.
        path: String,
        /// Where the unterminated construct starts.
        line: u32,
        /// `enum cpuhp_state` or `comment`.
        what: String,
        /// The closing token expected.
        expected: String,
    },
    /// A token that does not fit the enum's grammar.
    #[error("{path}:{line}: expected {expected}, found {found}")]
    Unexpected {
        /// The file.
        path: String,
        /// The line of the offending token.
        line: u32,
        /// What the grammar allows here.
        expected: String,
        /// The token found.
        found: String,
    },
    /// An initializer (`= expr`) that cannot be evaluated.
    #[error("{path}:{line}: cannot evaluate the value of `{name}`: {reason}")]
    BadValue {
        /// The file.
        path: String,
        /// The line of the enumerator.
        line: u32,
        /// The enumerator.
        name: String,
        /// What is wrong with the expression.
        reason: String,
    },
    /// A section boundary state is missing, so sections cannot be told apart.
    #[error("{path}: `enum cpuhp_state` has no `{marker}`; expected it as the section boundary {role}")]
    MissingMarker {
        /// The file.
        path: String,
        /// The missing state.
        marker: String,
        /// Which boundary it marks.
        role: String,
    },
}

impl CpuhpEnum {
    /// Parses the text of `include/linux/cpuhotplug.h`. `path` only names
    /// the file in errors. Preprocessor lines inside the enum are skipped
    /// (enumerators of all branches are kept, in order, as the kernel
    /// config is unknown).
    pub fn parse(path: &str, bytes: &[u8]) -> Result<CpuhpEnum, CpuhpError> {
        let text = String::from_utf8_lossy(bytes);
        let tokens = lex(path, &text)?;
        let states = parse_enum(path, &tokens)?;
        classify(path, states)
    }

    /// The state named `name`.
    pub fn get(&self, name: &str) -> Option<&CpuhpState> {
        self.states.iter().find(|s| s.name == name)
    }

    /// The section of the state named `name`; `None` if there is no such
    /// state or it is outside the state machine (`CPUHP_INVALID`).
    pub fn section_of(&self, name: &str) -> Option<CpuhpSection> {
        self.get(name).and_then(|s| s.section)
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident(String),
    Number(String),
    Punct(char),
}

impl fmt::Display for Tok {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Tok::Ident(s) | Tok::Number(s) => write!(f, "`{s}`"),
            Tok::Punct(c) => write!(f, "`{c}`"),
        }
    }
}

/// A C lexer just good enough for enum definitions: identifiers, numbers
/// and single-character punctuation, skipping comments, string and char
/// literals (whose contents could contain braces) and preprocessor lines.
fn lex(path: &str, text: &str) -> Result<Vec<(Tok, u32)>, CpuhpError> {
    let b = text.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut line: u32 = 1;
    // True while only whitespace has been seen on the current line, so a
    // `#` starts a preprocessor directive.
    let mut line_start = true;
    while i < b.len() {
        let c = b[i];
        match c {
            b'\n' => {
                line += 1;
                line_start = true;
                i += 1;
            }
            b' ' | b'\t' | b'\r' | 0x0b | 0x0c => i += 1,
            b'/' if b.get(i + 1) == Some(&b'*') => {
                let start = line;
                i += 2;
                loop {
                    if i + 1 >= b.len() {
                        return Err(CpuhpError::Unterminated {
                            path: path.to_string(),
                            line: start,
                            what: "comment".to_string(),
                            expected: "`*/`".to_string(),
                        });
                    }
                    if b[i] == b'*' && b[i + 1] == b'/' {
                        i += 2;
                        break;
                    }
                    if b[i] == b'\n' {
                        line += 1;
                    }
                    i += 1;
                }
            }
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            b'#' if line_start => {
                // A directive runs to the end of the line, including
                // backslash-continued lines.
                while i < b.len() && b[i] != b'\n' {
                    if b[i] == b'\\' && b.get(i + 1) == Some(&b'\n') {
                        line += 1;
                        i += 1;
                    }
                    i += 1;
                }
            }
            b'"' | b'\'' => {
                i += 1;
                while i < b.len() && b[i] != c && b[i] != b'\n' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
                line_start = false;
            }
            c if c == b'_' || c.is_ascii_alphabetic() => {
                let s = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push((Tok::Ident(text[s..i].to_string()), line));
                line_start = false;
            }
            c if c.is_ascii_digit() => {
                let s = i;
                while i < b.len() && (b[i] == b'_' || b[i].is_ascii_alphanumeric()) {
                    i += 1;
                }
                out.push((Tok::Number(text[s..i].to_string()), line));
                line_start = false;
            }
            c if c.is_ascii() => {
                out.push((Tok::Punct(c as char), line));
                line_start = false;
                i += 1;
            }
            _ => {
                // Non-ASCII (including U+FFFD from lossy decoding): not C
                // syntax; skip the whole UTF-8 sequence.
                i += 1;
                while i < b.len() && (b[i] & 0xC0) == 0x80 {
                    i += 1;
                }
                line_start = false;
            }
        }
    }
    Ok(out)
}

/// Finds `enum cpuhp_state {` and reads its enumerators.
fn parse_enum(path: &str, toks: &[(Tok, u32)]) -> Result<Vec<CpuhpState>, CpuhpError> {
    let start = toks
        .windows(3)
        .position(|w| {
            w[0].0 == Tok::Ident("enum".into())
                && w[1].0 == Tok::Ident("cpuhp_state".into())
                && w[2].0 == Tok::Punct('{')
        })
        .ok_or_else(|| CpuhpError::NotFound { path: path.to_string() })?;
    let enum_line = toks[start].1;
    let unterminated = || CpuhpError::Unterminated {
        path: path.to_string(),
        line: enum_line,
        what: "`enum cpuhp_state`".to_string(),
        expected: "`}`".to_string(),
    };
    let mut i = start + 3;
    let mut states: Vec<CpuhpState> = Vec::new();
    let mut next: i64 = 0;
    loop {
        let (tok, line) = toks.get(i).ok_or_else(unterminated)?;
        let name = match tok {
            Tok::Punct('}') => break,
            Tok::Ident(name) => name.clone(),
            other => {
                return Err(CpuhpError::Unexpected {
                    path: path.to_string(),
                    line: *line,
                    expected: "an enumerator name or `}`".to_string(),
                    found: other.to_string(),
                })
            }
        };
        let line = *line;
        i += 1;
        let mut value = next;
        if toks.get(i).map(|t| &t.0) == Some(&Tok::Punct('=')) {
            i += 1;
            let s = i;
            let mut depth = 0usize;
            loop {
                match toks.get(i).map(|t| &t.0) {
                    None => return Err(unterminated()),
                    Some(Tok::Punct('(')) => depth += 1,
                    Some(Tok::Punct(')')) => depth = depth.saturating_sub(1),
                    Some(Tok::Punct(',' | '}')) if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
            let expr: Vec<&Tok> = toks[s..i].iter().map(|t| &t.0).collect();
            value = eval(&expr, &states).map_err(|reason| CpuhpError::BadValue {
                path: path.to_string(),
                line,
                name: name.clone(),
                reason,
            })?;
        }
        states.push(CpuhpState { name, index: value, line, section: None });
        next = value.wrapping_add(1);
        match toks.get(i) {
            None => return Err(unterminated()),
            Some((Tok::Punct(','), _)) => i += 1,
            Some((Tok::Punct('}'), _)) => break,
            Some((other, l)) => {
                return Err(CpuhpError::Unexpected {
                    path: path.to_string(),
                    line: *l,
                    expected: "`,`, `=` or `}` after an enumerator".to_string(),
                    found: other.to_string(),
                })
            }
        }
    }
    Ok(states)
}

/// Evaluates a constant expression over integer literals and earlier
/// enumerators: `CPUHP_BP_PREPARE_DYN + 20`, `-1`, `(1 << 3)`.
fn eval(expr: &[&Tok], known: &[CpuhpState]) -> Result<i64, String> {
    if expr.is_empty() {
        return Err("empty expression after `=`".to_string());
    }
    let mut p = Eval { toks: expr, pos: 0, known };
    let v = p.binary(0)?;
    if p.pos != expr.len() {
        return Err(format!("unexpected {} in the expression", expr[p.pos]));
    }
    Ok(v)
}

struct Eval<'a> {
    toks: &'a [&'a Tok],
    pos: usize,
    known: &'a [CpuhpState],
}

impl Eval<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos).copied()
    }

    /// The binary operator at the cursor (possibly two characters), with
    /// its C precedence.
    fn operator(&self) -> Option<(&'static str, u8, usize)> {
        let c = match self.peek()? {
            Tok::Punct(c) => *c,
            _ => return None,
        };
        let next = match self.toks.get(self.pos + 1) {
            Some(Tok::Punct(n)) => Some(*n),
            _ => None,
        };
        Some(match (c, next) {
            ('<', Some('<')) => ("<<", 4, 2),
            ('>', Some('>')) => (">>", 4, 2),
            ('*', _) => ("*", 6, 1),
            ('/', _) => ("/", 6, 1),
            ('%', _) => ("%", 6, 1),
            ('+', _) => ("+", 5, 1),
            ('-', _) => ("-", 5, 1),
            ('&', _) => ("&", 3, 1),
            ('^', _) => ("^", 2, 1),
            ('|', _) => ("|", 1, 1),
            _ => return None,
        })
    }

    fn binary(&mut self, min_prec: u8) -> Result<i64, String> {
        let mut lhs = self.unary()?;
        while let Some((op, prec, width)) = self.operator() {
            if prec < min_prec {
                break;
            }
            self.pos += width;
            let rhs = self.binary(prec + 1)?;
            lhs = match op {
                "*" => lhs.wrapping_mul(rhs),
                "/" | "%" if rhs == 0 => return Err("division by zero".to_string()),
                "/" => lhs.wrapping_div(rhs),
                "%" => lhs.wrapping_rem(rhs),
                "+" => lhs.wrapping_add(rhs),
                "-" => lhs.wrapping_sub(rhs),
                "<<" => lhs.wrapping_shl(rhs as u32),
                ">>" => lhs.wrapping_shr(rhs as u32),
                "&" => lhs & rhs,
                "^" => lhs ^ rhs,
                _ => lhs | rhs,
            };
        }
        Ok(lhs)
    }

    fn unary(&mut self) -> Result<i64, String> {
        let tok = self.peek().ok_or("the expression ends early")?.clone();
        self.pos += 1;
        match tok {
            Tok::Punct('-') => Ok(self.unary()?.wrapping_neg()),
            Tok::Punct('+') => self.unary(),
            Tok::Punct('~') => Ok(!self.unary()?),
            Tok::Punct('(') => {
                let v = self.binary(0)?;
                match self.peek() {
                    Some(Tok::Punct(')')) => {
                        self.pos += 1;
                        Ok(v)
                    }
                    _ => Err("missing `)`".to_string()),
                }
            }
            Tok::Number(n) => parse_int(&n).ok_or_else(|| format!("`{n}` is not an integer literal")),
            Tok::Ident(name) => self
                .known
                .iter()
                .find(|s| s.name == name)
                .map(|s| s.index)
                .ok_or_else(|| format!("`{name}` is not an earlier enumerator of `enum cpuhp_state`")),
            other => Err(format!("unexpected {other} in the expression")),
        }
    }
}

fn parse_int(lit: &str) -> Option<i64> {
    let digits = lit.trim_end_matches(['u', 'U', 'l', 'L']);
    let (radix, body) = if let Some(h) = digits.strip_prefix("0x").or_else(|| digits.strip_prefix("0X")) {
        (16, h)
    } else if let Some(b) = digits.strip_prefix("0b").or_else(|| digits.strip_prefix("0B")) {
        (2, b)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    i64::from_str_radix(body, radix).ok()
}

/// Assigns sections from the marker states' values (see the module docs).
fn classify(path: &str, mut states: Vec<CpuhpState>) -> Result<CpuhpEnum, CpuhpError> {
    let value_of = |marker: &str, role: &str| {
        states.iter().find(|s| s.name == marker).map(|s| s.index).ok_or_else(|| CpuhpError::MissingMarker {
            path: path.to_string(),
            marker: marker.to_string(),
            role: role.to_string(),
        })
    };
    let bringup = value_of(BRINGUP_MARKER, "between PREPARE and STARTING")?;
    let ap_online = value_of(AP_ONLINE_MARKER, "between STARTING and ONLINE")?;
    for s in &mut states {
        s.section = if s.index < 0 {
            None
        } else if s.index <= bringup || s.name == TEARDOWN_MARKER {
            Some(CpuhpSection::Prepare)
        } else if s.index < ap_online {
            Some(CpuhpSection::Starting)
        } else {
            Some(CpuhpSection::Online)
        };
    }
    Ok(CpuhpEnum { states })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evaluates_initializers() {
        let text = "enum cpuhp_state {\n CPUHP_INVALID = -1,\n CPUHP_OFFLINE = 0,\n A,\n A_END = A + (1 << 2),\n#ifdef X\n CPUHP_BRINGUP_CPU,\n#endif\n CPUHP_AP_X, /* c */\n CPUHP_AP_ONLINE,\n CPUHP_TEARDOWN_CPU,\n CPUHP_AP_Y = 0x20,\n};\n";
        let e = CpuhpEnum::parse("t.h", text.as_bytes()).unwrap();
        let v: Vec<(&str, i64)> = e.states.iter().map(|s| (s.name.as_str(), s.index)).collect();
        assert_eq!(
            v,
            [
                ("CPUHP_INVALID", -1),
                ("CPUHP_OFFLINE", 0),
                ("A", 1),
                ("A_END", 5),
                ("CPUHP_BRINGUP_CPU", 6),
                ("CPUHP_AP_X", 7),
                ("CPUHP_AP_ONLINE", 8),
                ("CPUHP_TEARDOWN_CPU", 9),
                ("CPUHP_AP_Y", 32)
            ]
        );
        assert_eq!(e.section_of("CPUHP_INVALID"), None);
        assert_eq!(e.section_of("A_END"), Some(CpuhpSection::Prepare));
        assert_eq!(e.section_of("CPUHP_AP_X"), Some(CpuhpSection::Starting));
        assert_eq!(e.section_of("CPUHP_AP_ONLINE"), Some(CpuhpSection::Online));
        assert_eq!(e.section_of("CPUHP_TEARDOWN_CPU"), Some(CpuhpSection::Prepare));
        assert_eq!(e.section_of("CPUHP_AP_Y"), Some(CpuhpSection::Online));
        assert_eq!(e.get("CPUHP_AP_Y").unwrap().line, 12);
    }
}
