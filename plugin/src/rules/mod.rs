//! The mapping rules language: a per-tenant document (TOML, or the same
//! structure as JSON) that maps users' attributes and group memberships to
//! LMS roles, teams and learning paths. It replaces the default mapping
//! behind the same [`Mapper`] trait. The README documents the format.
//!
//! [`parse`] reads and checks a document and reports every problem with its
//! line and column; [`Rules::evaluate`] maps one user and, for explain,
//! traces every test.

pub mod attr;
pub mod eval;
pub mod model;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use serde::Serialize;

use crate::mapper::{Explanation, Facts, MapError, Mapper};
use crate::mapper::{Grant, GrantKind};
pub use eval::DEFAULT_ROLE_SOURCE;
use model::{Condition, Document, Part, Template};

/// The most rules one document may hold: rules run for every user mapped.
pub const MAX_RULES: usize = 1000;

/// The largest document accepted, in bytes.
pub const MAX_DOCUMENT: usize = 256 * 1024;

/// A problem in a rules document, where it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    pub severity: Severity,
    /// 1-based; 0 when the problem has no single place.
    pub line: u32,
    pub column: u32,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The document is refused.
    Error,
    /// The document works, but something in it will be skipped.
    Warning,
}

impl Diagnostic {
    fn error(text: &str, offset: Option<usize>, message: String) -> Diagnostic {
        let (line, column) = offset.map_or((0, 0), |o| line_col(text, o));
        Diagnostic {
            severity: Severity::Error,
            line,
            column,
            message,
        }
    }
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sev = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        if self.line > 0 {
            write!(f, "{}:{}: {sev}: {}", self.line, self.column, self.message)
        } else {
            write!(f, "{sev}: {}", self.message)
        }
    }
}

/// A checked rules document, ready to map users.
#[derive(Debug)]
pub struct Rules {
    doc: Document,
    needs_group_external_ids: bool,
    reads_group_names: bool,
}

/// Reads rules installed earlier (checked then, normally as [`normalized`]
/// JSON): the same as [`parse`], with regular expressions compiled when
/// first used.
pub fn parse_installed(text: &str) -> Result<Rules, Vec<Diagnostic>> {
    model::trusted(|| parse(text))
}

/// A checked document as compact JSON, the form to store for
/// [`parse_installed`]: reading it costs a fraction of reading TOML.
pub fn normalized(text: &str) -> Option<String> {
    if text.trim_start().starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(text).ok()?;
        return Some(v.to_string());
    }
    let v: serde_json::Value = toml::from_str(text).ok()?;
    Some(v.to_string())
}

/// Reads and checks a rules document: JSON when it starts with `{`, TOML
/// otherwise. Every error found is returned, each with its line.
pub fn parse(text: &str) -> Result<Rules, Vec<Diagnostic>> {
    if text.len() > MAX_DOCUMENT {
        return Err(vec![Diagnostic::error(
            text,
            None,
            format!(
                "the document has {} bytes; the limit is {MAX_DOCUMENT}",
                text.len()
            ),
        )]);
    }
    let doc: Document = if text.trim_start().starts_with('{') {
        serde_json::from_str(text).map_err(|e| {
            let message = e.to_string();
            let message = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(m, _)| m)
                .to_string();
            vec![Diagnostic {
                severity: Severity::Error,
                line: e.line() as u32,
                column: e.column() as u32,
                message,
            }]
        })?
    } else {
        toml::from_str(text).map_err(|e| {
            vec![Diagnostic::error(
                text,
                e.span().map(|s| s.start),
                e.message().trim().to_string(),
            )]
        })?
    };
    let mut errors = Vec::new();
    if doc.version != 1 {
        errors.push(Diagnostic::error(
            text,
            find_key(text, "version"),
            format!(
                "version {} is not supported; this engine reads version 1",
                doc.version
            ),
        ));
    }
    if doc.rules.len() > MAX_RULES {
        errors.push(Diagnostic::error(
            text,
            None,
            format!("{} rules; the limit is {MAX_RULES}", doc.rules.len()),
        ));
    }
    let mut seen = std::collections::HashMap::new();
    for rule in &doc.rules {
        let n = seen.entry(rule.name.0.as_str()).or_insert(0usize);
        let at = find_name(text, &rule.name.0, *n);
        *n += 1;
        if *n == 2 {
            errors.push(Diagnostic::error(
                text,
                at,
                format!(
                    "two rules are named '{}'; names must be unique (they appear in every grant's source)",
                    rule.name.0
                ),
            ));
        }
        if rule.grant.is_empty() {
            errors.push(Diagnostic::error(
                text,
                at,
                format!(
                    "rule '{}' grants nothing: give it a role, teams or learning_paths",
                    rule.name.0
                ),
            ));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let uses = |test: &dyn Fn(&attr::AttrRef) -> bool| {
        doc.rules.iter().any(|r| {
            r.when.as_ref().is_some_and(|c| condition_uses(c, test))
                || templates(r).any(|t| {
                    t.parts
                        .iter()
                        .any(|p| matches!(p, Part::Attr(a) if test(a)))
                })
        })
    };
    let needs_group_external_ids = uses(&|a| a.needs_group_external_ids());
    let reads_group_names = uses(&|a| a.reads_group_names());
    Ok(Rules {
        doc,
        needs_group_external_ids,
        reads_group_names,
    })
}

fn templates(r: &model::Rule) -> impl Iterator<Item = &Template> {
    r.grant
        .role
        .iter()
        .chain(&r.grant.teams)
        .chain(&r.grant.learning_paths)
}

/// Whether any test of a condition reads an attribute `test` picks out.
fn condition_uses(c: &Condition, test: &dyn Fn(&attr::AttrRef) -> bool) -> bool {
    match c {
        Condition::All(l) | Condition::Any(l) => l.iter().any(|c| condition_uses(c, test)),
        Condition::Not(c) => condition_uses(c, test),
        Condition::Test(t) => test(&t.attr),
    }
}

impl Rules {
    /// How many rules the document holds.
    pub fn len(&self) -> usize {
        self.doc.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.doc.rules.is_empty()
    }

    /// Literal roles and learning paths the rules name (for the catalogue
    /// check); names built from attributes are checked when they are made.
    pub fn named(&self, kind: GrantKind) -> Vec<(String, String)> {
        let mut out = Vec::new();
        let literal = |t: &Template| match t.parts.as_slice() {
            [Part::Text(s)] => Some(s.trim().to_string()),
            _ => None,
        };
        if kind == GrantKind::Role && !self.doc.default_role.is_empty() {
            out.push((self.doc.default_role.clone(), "default_role".into()));
        }
        for r in &self.doc.rules {
            let list: Vec<&Template> = match kind {
                GrantKind::Role => r.grant.role.iter().collect(),
                GrantKind::Team => r.grant.teams.iter().collect(),
                GrantKind::LearningPath => r.grant.learning_paths.iter().collect(),
            };
            for t in list {
                if let Some(name) = literal(t) {
                    out.push((name, format!("rule '{}'", r.name.0)));
                }
            }
        }
        out
    }

    /// Warnings for literal names the LMS catalogue lacks: such grants are
    /// skipped (and recorded) when they come up.
    pub fn catalogue_warnings(
        &self,
        text: &str,
        kind: GrantKind,
        known: &[String],
    ) -> Vec<Diagnostic> {
        self.named(kind)
            .into_iter()
            .filter(|(name, _)| !known.contains(name))
            .map(|(name, whose)| {
                let mut d = Diagnostic::error(
                    text,
                    find(text, &name, 0),
                    format!(
                        "{whose} names the {} '{name}', which is not in the LMS catalogue; it will be skipped until it is added",
                        kind.as_str()
                    ),
                );
                d.severity = Severity::Warning;
                d
            })
            .collect()
    }
}

impl Mapper for Rules {
    fn desired(&self, facts: &Facts) -> Result<Vec<Grant>, MapError> {
        Ok(self.evaluate(facts, false).grants)
    }

    fn explain(&self, facts: &Facts) -> Result<Explanation, MapError> {
        Ok(self.evaluate(facts, true))
    }

    fn needs_group_external_ids(&self) -> bool {
        self.needs_group_external_ids
    }

    fn reads_group_names(&self) -> bool {
        self.reads_group_names
    }

    fn exclusive_role(&self) -> bool {
        true
    }

    fn name(&self) -> &'static str {
        "rules"
    }
}

/// The byte offset of the `nth` quoted occurrence of `needle`: where a
/// checked value was written.
fn find(text: &str, needle: &str, nth: usize) -> Option<usize> {
    let mut count = 0;
    for (pos, _) in text.match_indices(needle) {
        let before = text[..pos].chars().next_back();
        let after = text[pos + needle.len()..].chars().next();
        if matches!(before, Some('"' | '\'')) && matches!(after, Some('"' | '\'')) {
            if count == nth {
                return Some(pos);
            }
            count += 1;
        }
    }
    None
}

/// The byte offset of the `nth` rule name `name` (`name = "…"`,
/// `"name": "…"`), so that the same text written as a group or a granted
/// name elsewhere is not taken for it.
fn find_name(text: &str, name: &str, nth: usize) -> Option<usize> {
    let mut count = 0;
    for (pos, _) in text.match_indices(name) {
        let after = text[pos + name.len()..].chars().next();
        let key = text[..pos]
            .strip_suffix(['"', '\''])
            .map(str::trim_end)
            .and_then(|b| b.strip_suffix(['=', ':']))
            .map(|b| b.trim_end().trim_end_matches(['"', '\'']));
        let is_name = key
            .and_then(|k| k.strip_suffix("name"))
            .is_some_and(|b| !b.ends_with(|c: char| c.is_alphanumeric() || c == '_' || c == '-'));
        if is_name && matches!(after, Some('"' | '\'')) {
            if count == nth {
                return Some(pos);
            }
            count += 1;
        }
    }
    None
}

/// The byte offset of a top-level key (`version = …`, `"version": …`).
fn find_key(text: &str, key: &str) -> Option<usize> {
    text.match_indices(key).map(|(p, _)| p).find(|&p| {
        let line_start = text[..p].rfind('\n').map_or(0, |i| i + 1);
        text[line_start..p]
            .trim_start_matches([' ', '\t', '"', '{'])
            .is_empty()
    })
}

/// 1-based line and column (in characters) of a byte offset.
fn line_col(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before
        .rsplit_once('\n')
        .map_or(before, |(_, l)| l)
        .chars()
        .count()
        + 1;
    (line as u32, col as u32)
}
