//! Query planning: choosing how to find a filter's candidates in the host.
//!
//! The host can only match index terms (see `resource::terms`), so the
//! planner looks for a conjunct of the filter that every match must satisfy
//! and that an index term can answer: `eq` (exact), `sw` (prefix), ordering
//! on a dateTime (range) or `co` (substring) on an indexed attribute, also
//! inside a value filter (`emails[type eq "work"].value eq "x"` has the
//! conjunct `emails.value eq "x"`). `id eq` reads one document, and
//! `members.value eq` (or `members[value eq …]`) reads the groups that
//! contain that member. A substring-like test on an unindexed attribute lets
//! the host pre-filter document bodies (`body-contains`). Anything else is a
//! scan of every document of the type, in pages. Whatever the plan, the
//! engine evaluates the whole filter on every candidate, so results are
//! exact; the plan only decides how many documents are read.

use crate::filter::{CompareOp, Filter, Literal};
use crate::path::Path;
use crate::resource::render::relation_attribute;
use crate::resource::terms::{fold, instant_key};
use crate::schema::{AttrType, Relation, ResourceType};
use crate::store::{Bound, Selection, TermMatch, TermQuery};

/// How candidates are found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// `id eq "x"`: at most one document.
    Id(String),
    /// The groups that directly contain this member.
    ContainersOf(String),
    /// The documents with a matching index term.
    Index(TermQuery),
    /// Documents whose body contains this ASCII text (case-insensitively).
    Text(String),
    /// Every document of the type.
    Scan,
}

impl Plan {
    /// A short name for logs.
    pub fn name(&self) -> &'static str {
        match self {
            Plan::Id(_) => "id",
            Plan::ContainersOf(_) => "members",
            Plan::Index(_) => "index",
            Plan::Text(_) => "text",
            Plan::Scan => "scan",
        }
    }

    /// The host selection this plan scans (`Id` and `ContainersOf` read
    /// documents by id instead).
    pub fn selection(&self) -> Selection {
        match self {
            Plan::Index(q) => Selection::Term(q.clone()),
            Plan::Text(t) => Selection::BodyContains(t.clone()),
            _ => Selection::All,
        }
    }
}

/// Plans a filter (`None`: list everything).
pub fn plan(rt: &ResourceType, filter: Option<&Filter>) -> Plan {
    let Some(filter) = filter else {
        return Plan::Scan;
    };
    let mut best: Option<(u8, Plan)> = None;
    let mut consider = |rank: u8, p: Plan| {
        if best.as_ref().is_none_or(|(r, _)| rank < *r) {
            best = Some((rank, p));
        }
    };
    for c in filter.conjuncts() {
        let inner: &[Filter] = match c {
            Filter::ValuePath { filter, .. } => filter.conjuncts(),
            other => std::slice::from_ref(other),
        };
        for f in inner {
            if let Filter::Compare {
                path, op, value, ..
            } = f
                && let Some((rank, p)) = term_plan(rt, path, *op, value)
            {
                consider(rank, p);
            }
        }
    }
    best.map_or(Plan::Scan, |(_, p)| p)
}

/// The lookup for one comparison, ranked (lower is more selective).
fn term_plan(rt: &ResourceType, path: &Path, op: CompareOp, value: &Literal) -> Option<(u8, Plan)> {
    let name = path.display();
    if let (CompareOp::Eq, Literal::Str(s)) = (op, value) {
        if name == "id" {
            return Some((0, Plan::Id(s.clone())));
        }
        if name == "members.value" && rt.relation == Relation::Members {
            return Some((1, Plan::ContainersOf(s.clone())));
        }
    }
    if !rt
        .indexed
        .iter()
        .any(|raw| Path::resolve(rt, raw).is_ok_and(|p| p.display() == name))
    {
        return text_plan(rt, path, op, value);
    }
    let key = match value {
        Literal::Str(s) => fold(path.leaf(), s),
        Literal::Bool(b) => b.to_string(),
        Literal::Time(t) => instant_key(*t),
        Literal::Num(_) | Literal::Null => return None,
    };
    let bound = |inclusive| {
        Some(Bound {
            value: key.clone(),
            inclusive,
        })
    };
    let (rank, matches) = match op {
        CompareOp::Eq => (1, TermMatch::Exact(key.clone())),
        CompareOp::Sw => (2, TermMatch::Prefix(key.clone())),
        CompareOp::Gt => (3, TermMatch::Range(bound(false), None)),
        CompareOp::Ge => (3, TermMatch::Range(bound(true), None)),
        CompareOp::Lt => (3, TermMatch::Range(None, bound(false))),
        CompareOp::Le => (3, TermMatch::Range(None, bound(true))),
        CompareOp::Co => (4, TermMatch::Contains(key.clone())),
        CompareOp::Ew | CompareOp::Ne => return None,
    };
    Some((rank, Plan::Index(TermQuery { name, matches })))
}

/// A body pre-filter for a string comparison on an unindexed attribute:
/// every match's stored JSON contains the literal verbatim, provided the
/// literal has nothing JSON would escape and the attribute is stored in the
/// body (not `meta`, computed at read time, nor the membership relation).
fn text_plan(rt: &ResourceType, path: &Path, op: CompareOp, value: &Literal) -> Option<(u8, Plan)> {
    let Literal::Str(s) = value else { return None };
    if path.attr.name == "meta" || std::ptr::eq(path.attr, relation_attribute(rt)) {
        return None;
    }
    let stringy = matches!(
        path.leaf().ty,
        AttrType::String | AttrType::Reference | AttrType::Binary
    );
    let needle = s.to_ascii_lowercase();
    let plain = !needle.is_empty()
        && needle.is_ascii()
        && !needle.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20);
    let substring = matches!(
        op,
        CompareOp::Eq | CompareOp::Co | CompareOp::Sw | CompareOp::Ew
    );
    (stringy && plain && substring).then_some((5, Plan::Text(needle)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::parse;
    use crate::schema::{GROUP_TYPE, USER_TYPE};

    fn p(f: &str) -> Plan {
        plan(&USER_TYPE, Some(&parse(&USER_TYPE, f).unwrap()))
    }

    fn exact(name: &str, v: &str) -> Plan {
        Plan::Index(TermQuery {
            name: name.into(),
            matches: TermMatch::Exact(v.into()),
        })
    }

    #[test]
    fn picks_the_most_selective_indexed_conjunct() {
        assert_eq!(p(r#"userName eq "BJensen""#), exact("userName", "bjensen"));
        assert_eq!(p(r#"externalId eq "AbC""#), exact("externalId", "AbC"));
        assert_eq!(
            p(r#"emails[type eq "work"].value eq "A@x""#),
            exact("emails.value", "a@x")
        );
        assert_eq!(
            p(r#"title co "x" and userName sw "b" and externalId eq "e""#),
            exact("externalId", "e")
        );
        assert_eq!(
            p(r#"id eq "42" and userName eq "x""#),
            Plan::Id("42".into())
        );
        assert!(matches!(
            p(r#"meta.lastModified gt "2011-05-13T04:42:34Z""#),
            Plan::Index(TermQuery {
                matches: TermMatch::Range(Some(_), None),
                ..
            })
        ));
    }

    #[test]
    fn relation_and_text_plans() {
        assert_eq!(
            plan(
                &GROUP_TYPE,
                Some(&parse(&GROUP_TYPE, r#"members[value eq "U1"]"#).unwrap())
            ),
            Plan::ContainersOf("U1".into())
        );
        assert_eq!(p(r#"title co "Tour""#), Plan::Text("tour".into()));
        assert_eq!(p(r#"title co "say \"hi\"""#), Plan::Scan);
        assert_eq!(p(r#"title co "é""#), Plan::Scan);
    }

    #[test]
    fn falls_back_to_scan() {
        assert_eq!(p(r#"nickName pr"#), Plan::Scan);
        assert_eq!(p(r#"userName eq "a" or userName eq "b""#), Plan::Scan);
        assert_eq!(p(r#"not (userName eq "a")"#), Plan::Scan);
        assert_eq!(p(r#"userName ne "a""#), Plan::Scan);
        assert_eq!(p(r#"title ew "x" or title ew "y""#), Plan::Scan);
    }
}
