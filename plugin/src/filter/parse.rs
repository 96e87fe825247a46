//! Parser for the RFC 7644 §3.4.2.2 filter grammar, resolving every attribute
//! path against the schema and type-checking each comparison as it goes.
//!
//! Precedence is `not` > `and` > `or`; parentheses group; keywords are
//! case-insensitive. Nesting deeper than [`MAX_DEPTH`] is rejected so a
//! hostile filter cannot exhaust the stack.

use crate::error::{ScimError, ScimResult};
use crate::path::Path;
use crate::schema::{AttrType, ResourceType};

use super::{CompareOp, Filter, Literal};

/// Deepest nesting of parentheses, `not` and value filters accepted.
pub const MAX_DEPTH: usize = 32;

/// Longest filter accepted, in bytes.
pub const MAX_LEN: usize = 64 * 1024;

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    LParen,
    RParen,
    LBracket,
    RBracket,
    /// A run of characters that is not whitespace, a bracket, a paren or a quote.
    Word(String),
    /// A quoted string literal, unescaped.
    Str(String),
}

struct Lexed {
    tok: Tok,
    pos: usize,
    /// Whether the token follows whitespace (a `.sub` after `]` must not).
    spaced: bool,
}

fn error_at(pos: usize, msg: impl std::fmt::Display) -> ScimError {
    ScimError::invalid_filter(format!("Invalid filter at position {}: {msg}", pos + 1))
}

fn lex(input: &str) -> ScimResult<Vec<Lexed>> {
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let mut spaced = false;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let single = match c {
            b' ' | b'\t' | b'\r' | b'\n' => {
                spaced = true;
                i += 1;
                continue;
            }
            b'(' => Some(Tok::LParen),
            b')' => Some(Tok::RParen),
            b'[' => Some(Tok::LBracket),
            b']' => Some(Tok::RBracket),
            _ => None,
        };
        let tok = if let Some(t) = single {
            i += 1;
            t
        } else if c == b'"' {
            i += 1;
            loop {
                match bytes.get(i) {
                    None => return Err(error_at(start, "unterminated string literal")),
                    Some(b'\\') => i += 2,
                    Some(b'"') => break,
                    Some(_) => i += 1,
                }
            }
            i += 1;
            let raw = &input[start..i];
            let s: String = serde_json::from_str(raw)
                .map_err(|e| error_at(start, format!("invalid string literal {raw}: {e}")))?;
            Tok::Str(s)
        } else {
            while i < bytes.len()
                && !matches!(
                    bytes[i],
                    b' ' | b'\t' | b'\r' | b'\n' | b'(' | b')' | b'[' | b']' | b'"'
                )
            {
                i += 1;
            }
            Tok::Word(input[start..i].to_string())
        };
        out.push(Lexed {
            tok,
            pos: start,
            spaced,
        });
        spaced = false;
    }
    Ok(out)
}

struct Parser {
    rt: &'static ResourceType,
    toks: Vec<Lexed>,
    i: usize,
    end: usize,
}

/// Parses a filter for a resource type.
pub fn parse(rt: &'static ResourceType, input: &str) -> ScimResult<Filter> {
    parse_in(rt, None, input)
}

/// Parses the filter inside a value path (`emails[type eq "work"]`), whose
/// attribute names are sub-attributes of `outer`.
pub fn parse_value_filter(
    rt: &'static ResourceType,
    outer: &Path,
    input: &str,
) -> ScimResult<Filter> {
    parse_in(rt, Some(outer), input)
}

fn parse_in(rt: &'static ResourceType, within: Option<&Path>, input: &str) -> ScimResult<Filter> {
    if input.len() > MAX_LEN {
        return Err(ScimError::invalid_filter(format!(
            "The filter is longer than {MAX_LEN} bytes"
        )));
    }
    let toks = lex(input)?;
    if toks.is_empty() {
        return Err(ScimError::invalid_filter("The filter is empty"));
    }
    let mut p = Parser {
        rt,
        toks,
        i: 0,
        end: input.len(),
    };
    let f = p.or_expr(within, 0)?;
    if let Some(t) = p.peek() {
        return Err(error_at(
            t.pos,
            format!(
                "unexpected {}; expected 'and', 'or' or the end",
                describe(&t.tok)
            ),
        ));
    }
    Ok(f)
}

fn describe(t: &Tok) -> String {
    match t {
        Tok::LParen => "'('".into(),
        Tok::RParen => "')'".into(),
        Tok::LBracket => "'['".into(),
        Tok::RBracket => "']'".into(),
        Tok::Word(w) => format!("'{w}'"),
        Tok::Str(s) => format!("string \"{s}\""),
    }
}

fn is_keyword(t: &Tok, kw: &str) -> bool {
    matches!(t, Tok::Word(w) if w.eq_ignore_ascii_case(kw))
}

impl Parser {
    fn peek(&self) -> Option<&Lexed> {
        self.toks.get(self.i)
    }

    fn pos(&self) -> usize {
        self.peek().map_or(self.end, |t| t.pos)
    }

    fn next(&mut self) -> Option<&Lexed> {
        let t = self.toks.get(self.i);
        self.i += 1;
        t
    }

    fn expect(&mut self, want: Tok, what: &str) -> ScimResult<()> {
        let pos = self.pos();
        match self.next() {
            Some(l) if l.tok == want => Ok(()),
            Some(l) => Err(error_at(
                pos,
                format!("expected {what}, found {}", describe(&l.tok)),
            )),
            None => Err(error_at(pos, format!("expected {what}, found the end"))),
        }
    }

    fn check_depth(&self, depth: usize) -> ScimResult<()> {
        if depth > MAX_DEPTH {
            return Err(error_at(
                self.pos(),
                format!("nesting deeper than {MAX_DEPTH} levels"),
            ));
        }
        Ok(())
    }

    /// `or` binds loosest. `within` is the complex attribute of an enclosing
    /// value filter (`emails[...]`).
    fn or_expr(&mut self, within: Option<&Path>, depth: usize) -> ScimResult<Filter> {
        let mut terms = vec![self.and_expr(within, depth)?];
        while self.peek().is_some_and(|t| is_keyword(&t.tok, "or")) {
            self.i += 1;
            terms.push(self.and_expr(within, depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Filter::Or(terms)
        })
    }

    fn and_expr(&mut self, within: Option<&Path>, depth: usize) -> ScimResult<Filter> {
        let mut terms = vec![self.unary(within, depth)?];
        while self.peek().is_some_and(|t| is_keyword(&t.tok, "and")) {
            self.i += 1;
            terms.push(self.unary(within, depth)?);
        }
        Ok(if terms.len() == 1 {
            terms.pop().expect("one term")
        } else {
            Filter::And(terms)
        })
    }

    fn unary(&mut self, within: Option<&Path>, depth: usize) -> ScimResult<Filter> {
        self.check_depth(depth)?;
        let pos = self.pos();
        let Some(t) = self.peek() else {
            return Err(error_at(pos, "expected an expression, found the end"));
        };
        if is_keyword(&t.tok, "not") {
            self.i += 1;
            let inner = self.unary(within, depth + 1)?;
            return Ok(Filter::Not(Box::new(inner)));
        }
        if t.tok == Tok::LParen {
            self.i += 1;
            let inner = self.or_expr(within, depth + 1)?;
            self.expect(Tok::RParen, "')'")?;
            return Ok(inner);
        }
        let Tok::Word(word) = &t.tok else {
            return Err(error_at(
                pos,
                format!("expected an attribute path, found {}", describe(&t.tok)),
            ));
        };
        let word = word.clone();
        self.i += 1;
        if self.peek().is_some_and(|t| t.tok == Tok::LBracket) {
            if within.is_some() {
                return Err(error_at(pos, "value filters cannot be nested"));
            }
            return self.value_path(&word, pos, depth);
        }
        let path = self.resolve(within, &word, pos)?;
        self.attr_expr(path)
    }

    /// `attr[valFilter]`, optionally followed by `.sub op value` (the form
    /// identity providers send: `emails[type eq "work"].value eq "x"`).
    fn value_path(&mut self, word: &str, pos: usize, depth: usize) -> ScimResult<Filter> {
        let outer = self.resolve(None, word, pos)?;
        if outer.sub.is_some() || !outer.attr.is_complex() {
            return Err(error_at(
                pos,
                format!(
                    "'{}' is not a complex attribute and cannot take a value filter",
                    outer.display()
                ),
            ));
        }
        self.i += 1; // '['
        let inner = self.or_expr(Some(&outer), depth + 1)?;
        self.expect(Tok::RBracket, "']'")?;
        let inner = match self.peek() {
            Some(Lexed {
                tok: Tok::Word(w),
                spaced: false,
                pos,
            }) if w.starts_with('.') => {
                let (w, pos) = (w[1..].to_string(), *pos);
                self.i += 1;
                let sub = Path::resolve_within(&outer, &w).map_err(|e| error_at(pos + 1, e))?;
                let cmp = self.attr_expr(sub)?;
                Filter::And(vec![inner, cmp])
            }
            _ => inner,
        };
        Ok(Filter::ValuePath {
            path: outer,
            filter: Box::new(inner),
        })
    }

    fn resolve(&self, within: Option<&Path>, word: &str, pos: usize) -> ScimResult<Path> {
        let resolved = match within {
            Some(outer) => Path::resolve_within(outer, word),
            None => Path::resolve(self.rt, word),
        };
        resolved.map_err(|e| error_at(pos, e))
    }

    /// `path pr` or `path op value`.
    fn attr_expr(&mut self, path: Path) -> ScimResult<Filter> {
        let pos = self.pos();
        let op_word = match self.next() {
            Some(Lexed {
                tok: Tok::Word(w), ..
            }) => w.to_ascii_lowercase(),
            Some(l) => {
                return Err(error_at(
                    pos,
                    format!(
                        "expected an operator after '{}', found {}",
                        path.display(),
                        describe(&l.tok)
                    ),
                ));
            }
            None => {
                return Err(error_at(
                    pos,
                    format!("expected an operator after '{}'", path.display()),
                ));
            }
        };
        if op_word == "pr" {
            return Ok(Filter::Present(path));
        }
        let op = CompareOp::parse(&op_word).ok_or_else(|| {
            error_at(
                pos,
                format!("unknown operator '{op_word}'; expected eq, ne, co, sw, ew, gt, ge, lt, le or pr"),
            )
        })?;
        let vpos = self.pos();
        let mut bare = None;
        let value = match self.next().map(|l| l.tok.clone()) {
            Some(Tok::Str(s)) => Literal::Str(s),
            // Entra ID and Microsoft's reference checks send unquoted values
            // (`userName eq bjensen@example.com`): a bare token that is not a
            // keyword or a number is a string.
            Some(Tok::Word(w)) => {
                let literal = parse_bare_literal(&w).unwrap_or_else(|| Literal::Str(w.clone()));
                bare = Some(w);
                literal
            }
            Some(t) => {
                return Err(error_at(
                    vpos,
                    format!("expected a value after '{op_word}', found {}", describe(&t)),
                ));
            }
            None => {
                return Err(error_at(
                    vpos,
                    format!("expected a value after '{op_word}'"),
                ));
            }
        };
        let original = match &value {
            Literal::Str(s) => serde_json::Value::String(s.clone()),
            Literal::Num(n) => serde_json::json!(n),
            Literal::Bool(b) => serde_json::Value::Bool(*b),
            Literal::Null | Literal::Time(_) => serde_json::Value::Null,
        };
        check_comparison(&path, op, value, original, bare, pos)
    }
}

fn parse_bare_literal(w: &str) -> Option<Literal> {
    match w.to_ascii_lowercase().as_str() {
        "true" => Some(Literal::Bool(true)),
        "false" => Some(Literal::Bool(false)),
        "null" => Some(Literal::Null),
        _ => {
            let n: serde_json::Number = serde_json::from_str(w).ok()?;
            Some(Literal::Num(n.as_f64()?))
        }
    }
}

/// A string literal as a case-insensitive attribute compares it: lower case.
fn fold_case(case_exact: bool, s: String) -> Literal {
    if case_exact {
        Literal::Str(s)
    } else {
        Literal::Str(s.to_lowercase())
    }
}

/// Type-checks `path op value` and normalises the literal to the attribute's
/// type, so evaluation never has to guess.
fn check_comparison(
    path: &Path,
    op: CompareOp,
    value: Literal,
    mut original: serde_json::Value,
    bare: Option<String>,
    pos: usize,
) -> ScimResult<Filter> {
    let name = path.display();
    let Some(target) = path.comparable() else {
        return Err(error_at(
            pos,
            format!("'{name}' is complex; compare one of its sub-attributes"),
        ));
    };
    if value == Literal::Null {
        return match op {
            CompareOp::Eq => Ok(Filter::Not(Box::new(Filter::Present(target)))),
            CompareOp::Ne => Ok(Filter::Present(target)),
            _ => Err(error_at(
                pos,
                format!("'{}' cannot compare with null", op.as_str()),
            )),
        };
    }
    let ty = target.leaf().ty;
    let ordering = matches!(
        op,
        CompareOp::Gt | CompareOp::Ge | CompareOp::Lt | CompareOp::Le
    );
    let substring = matches!(op, CompareOp::Co | CompareOp::Sw | CompareOp::Ew);
    let bad_type = |want: &str| {
        error_at(
            pos,
            format!(
                "'{name}' is of type {}; compare it with {want}",
                ty.as_str()
            ),
        )
    };
    let value = match ty {
        AttrType::Boolean => {
            if ordering || substring {
                return Err(error_at(
                    pos,
                    format!(
                        "'{}' is not defined for boolean attribute '{name}'; use eq, ne or pr",
                        op.as_str()
                    ),
                ));
            }
            match value {
                Literal::Bool(b) => Literal::Bool(b),
                Literal::Str(s) if s.eq_ignore_ascii_case("true") => Literal::Bool(true),
                Literal::Str(s) if s.eq_ignore_ascii_case("false") => Literal::Bool(false),
                _ => return Err(bad_type("true or false")),
            }
        }
        AttrType::Integer | AttrType::Decimal => {
            if substring {
                return Err(error_at(
                    pos,
                    format!(
                        "'{}' is not defined for numeric attribute '{name}'",
                        op.as_str()
                    ),
                ));
            }
            match value {
                Literal::Num(n) => Literal::Num(n),
                _ => return Err(bad_type("a number")),
            }
        }
        AttrType::DateTime => {
            if substring {
                return Err(error_at(
                    pos,
                    format!(
                        "'{}' is not defined for dateTime attribute '{name}'",
                        op.as_str()
                    ),
                ));
            }
            match value {
                Literal::Str(s) => {
                    let t = super::parse_datetime(&s).ok_or_else(|| {
                        error_at(pos, format!("\"{s}\" is not a valid dateTime (RFC 3339)"))
                    })?;
                    Literal::Time(t)
                }
                _ => return Err(bad_type("a quoted dateTime")),
            }
        }
        AttrType::Binary => {
            if ordering || substring {
                return Err(error_at(
                    pos,
                    format!(
                        "'{}' is not defined for binary attribute '{name}'",
                        op.as_str()
                    ),
                ));
            }
            match value {
                Literal::Str(s) => Literal::Str(s),
                _ => return Err(bad_type("a quoted string")),
            }
        }
        AttrType::String | AttrType::Reference => match (value, bare) {
            // An unquoted number compared with a string attribute compares
            // as the text the client wrote (`employeeNumber eq 701984`).
            (Literal::Num(_), Some(text)) => {
                original = serde_json::Value::String(text.clone());
                fold_case(target.leaf().case_exact, text)
            }
            (Literal::Str(s), _) => fold_case(target.leaf().case_exact, s),
            (Literal::Num(_) | Literal::Bool(_), _) => return Err(bad_type("a quoted string")),
            (Literal::Null | Literal::Time(_), _) => unreachable!("handled above"),
        },
        AttrType::Complex => unreachable!("comparable() returns a simple leaf"),
    };
    Ok(Filter::Compare {
        path: target,
        op,
        value,
        original,
    })
}
