//! SCIM filters (RFC 7644 §3.4.2.2): the syntax tree, its parser, and its
//! evaluation against a resource with the schema's comparison rules.

mod parse;

use serde_json::Value;
use time::OffsetDateTime;

use crate::path::Path;
use crate::schema::{AttrType, Attribute};

pub use parse::{MAX_DEPTH, MAX_LEN, parse, parse_value_filter};

/// Comparison operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompareOp {
    Eq,
    Ne,
    Co,
    Sw,
    Ew,
    Gt,
    Ge,
    Lt,
    Le,
}

impl CompareOp {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "eq" => CompareOp::Eq,
            "ne" => CompareOp::Ne,
            "co" => CompareOp::Co,
            "sw" => CompareOp::Sw,
            "ew" => CompareOp::Ew,
            "gt" => CompareOp::Gt,
            "ge" => CompareOp::Ge,
            "lt" => CompareOp::Lt,
            "le" => CompareOp::Le,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CompareOp::Eq => "eq",
            CompareOp::Ne => "ne",
            CompareOp::Co => "co",
            CompareOp::Sw => "sw",
            CompareOp::Ew => "ew",
            CompareOp::Gt => "gt",
            CompareOp::Ge => "ge",
            CompareOp::Lt => "lt",
            CompareOp::Le => "le",
        }
    }

    fn holds(self, ord: std::cmp::Ordering) -> bool {
        use std::cmp::Ordering::*;
        match self {
            CompareOp::Eq => ord == Equal,
            CompareOp::Ne => ord != Equal,
            CompareOp::Gt => ord == Greater,
            CompareOp::Ge => ord != Less,
            CompareOp::Lt => ord == Less,
            CompareOp::Le => ord != Greater,
            CompareOp::Co | CompareOp::Sw | CompareOp::Ew => false,
        }
    }
}

/// A comparison value, already converted to the attribute's type by the
/// parser; strings of case-insensitive attributes are already lower case.
#[derive(Debug, Clone, PartialEq)]
pub enum Literal {
    Str(String),
    Num(f64),
    Bool(bool),
    Time(OffsetDateTime),
    Null,
}

/// A parsed, schema-resolved filter.
#[derive(Debug, Clone)]
pub enum Filter {
    Compare {
        path: Path,
        op: CompareOp,
        value: Literal,
        /// The literal as the client wrote it (case kept), for PATCH, which
        /// creates elements from value filters.
        original: Value,
    },
    Present(Path),
    And(Vec<Filter>),
    Or(Vec<Filter>),
    Not(Box<Filter>),
    /// `attr[filter]`: some element of the multi-valued (or the singular)
    /// complex attribute satisfies `filter`, whose paths name sub-attributes.
    ValuePath {
        path: Path,
        filter: Box<Filter>,
    },
}

impl Filter {
    /// Whether a stored resource matches.
    pub fn matches(&self, resource: &Value) -> bool {
        self.eval(resource, None)
    }

    /// Whether one element of a complex attribute matches a value filter
    /// (from [`parse_value_filter`]).
    pub fn matches_element(&self, element: &Value) -> bool {
        self.eval(&Value::Null, Some(element))
    }

    fn eval(&self, resource: &Value, element: Option<&Value>) -> bool {
        match self {
            Filter::Compare {
                path, op, value, ..
            } => candidate_values(path, resource, element)
                .into_iter()
                .any(|v| compare(path.leaf().ty, path.leaf().case_exact, *op, v, value)),
            Filter::Present(path) => candidate_values(path, resource, element)
                .into_iter()
                .any(is_present),
            Filter::And(fs) => fs.iter().all(|f| f.eval(resource, element)),
            Filter::Or(fs) => fs.iter().any(|f| f.eval(resource, element)),
            Filter::Not(f) => !f.eval(resource, element),
            Filter::ValuePath { path, filter } => match path.attr_value(resource) {
                Some(Value::Array(items)) => items.iter().any(|e| filter.eval(resource, Some(e))),
                Some(single @ Value::Object(_)) => filter.eval(resource, Some(single)),
                _ => false,
            },
        }
    }

    /// Whether any comparison in the filter names this top-level attribute.
    pub fn mentions(&self, attr: &Attribute) -> bool {
        match self {
            Filter::Compare { path, .. }
            | Filter::Present(path)
            | Filter::ValuePath { path, .. } => std::ptr::eq(path.attr, attr),
            Filter::And(fs) | Filter::Or(fs) => fs.iter().any(|f| f.mentions(attr)),
            Filter::Not(f) => f.mentions(attr),
        }
    }

    /// The top-level keys of a stored resource the filter reads (an
    /// attribute's name, or its extension's URN), added to `keys` once each:
    /// a candidate need not be parsed beyond them to be tested.
    pub fn keys(&self, keys: &mut Vec<&'static str>) {
        match self {
            Filter::Compare { path, .. }
            | Filter::Present(path)
            | Filter::ValuePath { path, .. } => {
                let key = path.key();
                if !keys.contains(&key) {
                    keys.push(key);
                }
            }
            Filter::And(fs) | Filter::Or(fs) => fs.iter().for_each(|f| f.keys(keys)),
            Filter::Not(f) => f.keys(keys),
        }
    }

    /// The conjuncts of a top-level `and` (the filter itself otherwise).
    pub fn conjuncts(&self) -> &[Filter] {
        match self {
            Filter::And(fs) => fs,
            other => std::slice::from_ref(other),
        }
    }
}

/// The values a path names: in the resource, or inside the element of an
/// enclosing value filter.
fn candidate_values<'a>(
    path: &Path,
    resource: &'a Value,
    element: Option<&'a Value>,
) -> Vec<&'a Value> {
    match (element, path.sub) {
        (Some(e), Some(sub)) => e
            .get(sub.name)
            .filter(|v| !v.is_null())
            .into_iter()
            .collect(),
        _ => path.values(resource),
    }
}

/// RFC 7644: `pr` is false for null, empty strings, empty arrays and empty objects.
fn is_present(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => a.iter().any(is_present),
        Value::Object(o) => o.values().any(is_present),
        _ => true,
    }
}

/// Compares one stored value with a literal under the attribute's rules.
fn compare(ty: AttrType, case_exact: bool, op: CompareOp, stored: &Value, lit: &Literal) -> bool {
    match (lit, ty) {
        (Literal::Time(t), _) => stored
            .as_str()
            .and_then(parse_datetime)
            .is_some_and(|s| op.holds(s.cmp(t))),
        (Literal::Num(n), _) => stored
            .as_f64()
            .and_then(|s| s.partial_cmp(n))
            .is_some_and(|o| op.holds(o)),
        (Literal::Bool(b), _) => {
            let s = match stored {
                Value::Bool(s) => *s,
                Value::String(s) if s.eq_ignore_ascii_case("true") => true,
                Value::String(s) if s.eq_ignore_ascii_case("false") => false,
                _ => return false,
            };
            op.holds(s.cmp(b))
        }
        (Literal::Str(lit), _) => {
            let Some(s) = stored.as_str() else {
                return false;
            };
            if case_exact {
                compare_str(op, s, lit)
            } else {
                compare_str(op, &s.to_lowercase(), lit)
            }
        }
        (Literal::Null, _) => false,
    }
}

fn compare_str(op: CompareOp, s: &str, lit: &str) -> bool {
    match op {
        CompareOp::Co => s.contains(lit),
        CompareOp::Sw => s.starts_with(lit),
        CompareOp::Ew => s.ends_with(lit),
        _ => op.holds(s.cmp(lit)),
    }
}

/// Parses an `xsd:dateTime` (RFC 3339; a missing offset means UTC).
pub fn parse_datetime(s: &str) -> Option<OffsetDateTime> {
    use time::format_description::well_known::Rfc3339;
    OffsetDateTime::parse(s, &Rfc3339)
        .or_else(|_| OffsetDateTime::parse(&format!("{s}Z"), &Rfc3339))
        .ok()
}

#[cfg(test)]
mod tests;

#[cfg(test)]
mod proptests;
