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
use crate::resource::terms::{fold, instant_key};
use crate::schema::{AttrType, Relation, ResourceType};
use crate::store::{Bound, Clause, Selection, TermMatch, TermQuery};

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
    /// Documents that pass every clause, each a condition every match must
    /// meet: an index lookup, an `or` of index lookups, or a body
    /// pre-filter. The host intersects them.
    Matching(Vec<Clause>),
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
            Plan::Matching(_) => "intersect",
            Plan::Scan => "scan",
        }
    }

    /// The host selection this plan scans (`Id` and `ContainersOf` read
    /// documents by id instead).
    pub fn selection(&self) -> Selection {
        match self {
            Plan::Index(q) => Selection::Term(q.clone()),
            Plan::Text(t) => Selection::BodyContains(t.clone()),
            Plan::Matching(clauses) => Selection::Matching(clauses.clone()),
            _ => Selection::All,
        }
    }
}

/// The host selection that holds exactly the filter's matches, when there
/// is one: no filter (every document), or a filter whose every essential
/// conjunct (see [`essential`]) is a comparison the index answers as the
/// engine would (`userName sw "b"`, `active eq false`, a dateTime range) or
/// an `or` of such comparisons. Then the host counts the matches and reads
/// just a page of them, instead of the engine reading every match: a
/// filter matching half of a million users costs a count, not half a
/// million documents.
///
/// Conjuncts of a multi-valued attribute are independent in a filter
/// (`emails.value eq "a" and emails.type eq "work"` asks for some email
/// valued "a" and some email of type work), so intersecting index lookups
/// is exact; inside a value filter (`emails[…]`) both must hold for the
/// same element, which the index cannot tell, so those are not exact.
pub fn exact_selection(rt: &ResourceType, filter: Option<&Filter>) -> Option<Selection> {
    let Some(filter) = filter else {
        return Some(Selection::All);
    };
    let mut clauses: Vec<(u8, Vec<TermQuery>)> = Vec::new();
    for c in essential(filter.conjuncts()) {
        clauses.push(match c {
            Filter::Or(alternatives) => term_union(rt, alternatives)?,
            other => {
                let (rank, queries) = term_union(rt, std::slice::from_ref(other))?;
                (rank - 1, queries)
            }
        });
    }
    // The most selective clause first: the host drives from it.
    clauses.sort_by_key(|(rank, _)| *rank);
    match clauses.as_mut_slice() {
        [] => None,
        [(_, queries)] if queries.len() == 1 => queries.pop().map(Selection::Term),
        _ => Some(Selection::Matching(
            clauses
                .into_iter()
                .map(|(_, q)| Clause::AnyTerm(q))
                .collect(),
        )),
    }
}

/// The conjuncts that decide a filter: duplicates dropped, and an `or`
/// dropped when one of its alternatives is itself a conjunct, which implies
/// it (`a and (b or a)` is `a`). Planning on what is left can turn an
/// intersection into one index lookup, which the host counts cheaply.
pub fn essential(conjuncts: &[Filter]) -> Vec<&Filter> {
    let mut kept: Vec<&Filter> = Vec::with_capacity(conjuncts.len());
    for c in conjuncts {
        if !kept.iter().any(|k| same(k, c)) {
            kept.push(c);
        }
    }
    let implied = |f: &Filter| match f {
        Filter::Or(alternatives) => alternatives.iter().any(|a| {
            !matches!(a, Filter::Or(_))
                && kept
                    .iter()
                    .any(|k| !matches!(k, Filter::Or(_)) && same(k, a))
        }),
        _ => false,
    };
    let implied: Vec<bool> = kept.iter().map(|f| implied(f)).collect();
    kept.into_iter()
        .zip(implied)
        .filter(|(_, implied)| !implied)
        .map(|(f, _)| f)
        .collect()
}

/// Whether two filters are the same test, for [`essential`]: comparisons
/// and presence tests of one path, with one operator and literal;
/// compounds of such tests, in the same order. Anything else is treated
/// as different, which only costs a plan that could have been narrower.
fn same(a: &Filter, b: &Filter) -> bool {
    let same_path = |p: &Path, q: &Path| {
        std::ptr::eq(p.attr, q.attr)
            && std::ptr::eq(p.schema, q.schema)
            && match (p.sub, q.sub) {
                (None, None) => true,
                (Some(x), Some(y)) => std::ptr::eq(x, y),
                _ => false,
            }
    };
    let all_same = |xs: &[Filter], ys: &[Filter]| {
        xs.len() == ys.len() && xs.iter().zip(ys).all(|(x, y)| same(x, y))
    };
    match (a, b) {
        (
            Filter::Compare {
                path: p,
                op: o,
                value: v,
                ..
            },
            Filter::Compare {
                path: q,
                op: r,
                value: w,
                ..
            },
        ) => same_path(p, q) && o == r && v == w,
        (Filter::Present(p), Filter::Present(q)) => same_path(p, q),
        (Filter::And(xs), Filter::And(ys)) | (Filter::Or(xs), Filter::Or(ys)) => all_same(xs, ys),
        (Filter::Not(x), Filter::Not(y)) => same(x, y),
        _ => false,
    }
}

/// Plans a filter (`None`: list everything).
pub fn plan(rt: &ResourceType, filter: Option<&Filter>) -> Plan {
    let Some(filter) = filter else {
        return Plan::Scan;
    };
    // Every condition each match must meet that the host can test, ranked.
    let mut conditions: Vec<(u8, Plan)> = Vec::new();
    for c in essential(filter.conjuncts()) {
        let inner: &[Filter] = match c {
            Filter::ValuePath { filter, .. } => filter.conjuncts(),
            other => std::slice::from_ref(other),
        };
        for f in inner {
            match f {
                Filter::Compare {
                    path, op, value, ..
                } => conditions.extend(term_plan(rt, path, *op, value)),
                Filter::Or(alternatives) => conditions.extend(any_term(rt, alternatives)),
                _ => {}
            }
        }
    }
    conditions.sort_by_key(|(rank, _)| *rank);
    let clauses: Vec<Clause> = conditions
        .iter()
        .filter_map(|(_, p)| match p {
            Plan::Index(q) => Some(Clause::AnyTerm(vec![q.clone()])),
            Plan::Matching(c) => c.first().cloned(),
            Plan::Text(t) => Some(Clause::BodyContains(t.clone())),
            _ => None,
        })
        .collect();
    match conditions.into_iter().next() {
        None => Plan::Scan,
        // An id or a member is as narrow as it gets; so is one condition.
        Some((_, p @ (Plan::Id(_) | Plan::ContainersOf(_)))) => p,
        // An exact lookup finds a handful: nothing to gain from more.
        Some((rank, p)) if clauses.len() < 2 || rank <= 1 => p,
        Some(_) => Plan::Matching(clauses),
    }
}

/// An `or` whose every branch is an index lookup: one clause that any of
/// them satisfies (`name.familyName eq "F7" or active eq false`).
fn any_term(rt: &ResourceType, alternatives: &[Filter]) -> Option<(u8, Plan)> {
    let (rank, queries) = term_union(rt, alternatives)?;
    Some((rank, Plan::Matching(vec![Clause::AnyTerm(queries)])))
}

/// The index lookups of comparisons any of which may hold, ranked after
/// the least selective of them (a union is wider than its parts); `None`
/// unless the index answers every one.
fn term_union(rt: &ResourceType, alternatives: &[Filter]) -> Option<(u8, Vec<TermQuery>)> {
    let mut queries = Vec::with_capacity(alternatives.len());
    let mut rank = 0;
    for f in alternatives {
        let Filter::Compare {
            path, op, value, ..
        } = f
        else {
            return None;
        };
        match term_plan(rt, path, *op, value)? {
            (r, Plan::Index(q)) => {
                rank = rank.max(r);
                queries.push(q);
            }
            _ => return None,
        }
    }
    Some((rank + 1, queries))
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
        // A boolean splits the users in two: any other lookup is narrower.
        CompareOp::Eq if matches!(value, Literal::Bool(_)) => (2, TermMatch::Exact(key.clone())),
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
    if path.attr.name == "meta" || std::ptr::eq(path.attr, rt.relation_attribute()) {
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
    fn exact_selections_only_where_the_index_is_the_filter() {
        let exact = |f: &str| exact_selection(&USER_TYPE, Some(&parse(&USER_TYPE, f).unwrap()));
        assert!(matches!(
            exact_selection(&USER_TYPE, None),
            Some(Selection::All)
        ));
        for f in [
            r#"userName sw "Bench0""#,
            r#"userName eq "x""#,
            r#"active eq false"#,
            r#"meta.created gt "2011-05-13T04:42:34Z""#,
            r#"emails.value co "example""#,
            // An `or` implied by another conjunct adds nothing.
            r#"active eq true and (name.familyName eq "F7" or active eq true)"#,
            r#"userName sw "b" and userName sw "b""#,
        ] {
            assert!(matches!(exact(f), Some(Selection::Term(_))), "{f}");
        }
        // Conjuncts the index answers intersect; the narrowest drives.
        for (f, clauses) in [
            (r#"userName sw "b" and active eq true"#, 2),
            (
                r#"name.familyName sw "F" and (name.familyName eq "F2" or active eq false)"#,
                2,
            ),
            (r#"userName eq "a" or externalId eq "b""#, 1),
            (r#"emails.value eq "a" and emails.value co "x""#, 2),
        ] {
            match exact(f) {
                Some(Selection::Matching(c)) => assert_eq!(c.len(), clauses, "{f}"),
                other => panic!("{f}: {other:?}"),
            }
        }
        match exact(r#"active eq true and userName eq "a""#) {
            Some(Selection::Matching(c)) => {
                assert!(matches!(&c[0], Clause::AnyTerm(q) if q[0].name == "userName"))
            }
            other => panic!("{other:?}"),
        }
        for f in [
            r#"title eq "Manager" and (name.familyName eq "F7" or title eq "Manager")"#,
            r#"userName sw "b" and title eq "x""#,
            r#"userName sw "b" and (active eq true or nickName eq "x")"#,
            r#"emails[type eq "work" and value eq "x"]"#,
            r#"emails[type eq "work"].value eq "x""#,
            r#"title eq "x""#,
            r#"id eq "x""#,
            r#"userName ew "x""#,
            r#"not (active eq true)"#,
        ] {
            assert!(exact(f).is_none(), "{f}");
        }
    }

    #[test]
    fn intersects_every_condition_the_host_can_test() {
        let f = r#"title eq "Manager" and (name.familyName eq "F7" or active eq false)"#;
        assert_eq!(
            p(f),
            Plan::Matching(vec![
                Clause::AnyTerm(vec![
                    TermQuery {
                        name: "name.familyName".into(),
                        matches: TermMatch::Exact("f7".into()),
                    },
                    TermQuery {
                        name: "active".into(),
                        matches: TermMatch::Exact("false".into()),
                    },
                ]),
                Clause::BodyContains("manager".into()),
            ])
        );
        // The most selective lookup comes first; an exact one stands alone.
        match p(r#"meta.created gt "2020-01-01T00:00:00Z" and userName sw "b" and nickName co "x""#)
        {
            Plan::Matching(c) => {
                assert!(matches!(&c[0], Clause::AnyTerm(q) if q[0].name == "userName"));
                assert_eq!(c.len(), 3);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            p(r#"userName sw "b" and externalId eq "e" and nickName co "x""#),
            exact("externalId", "e")
        );
        assert_eq!(
            p(r#"active eq true and userName eq "A""#),
            exact("userName", "a")
        );
        // An or of lookups is a union.
        assert!(matches!(
            p(r#"userName eq "a" or userName eq "b""#),
            Plan::Matching(c) if matches!(c.as_slice(), [Clause::AnyTerm(qs)] if qs.len() == 2)
        ));
        // An or with a branch the index cannot answer is no clause.
        assert_eq!(
            p(r#"title eq "x" and (userName eq "a" or nickName pr)"#),
            Plan::Text("x".into())
        );
    }

    #[test]
    fn an_implied_or_does_not_widen_the_plan() {
        assert_eq!(
            p(r#"externalId eq "e" and (userName eq "a" or externalId eq "e")"#),
            exact("externalId", "e")
        );
        assert_eq!(
            p(r#"title eq "Manager" and (name.familyName eq "F7" or title eq "Manager")"#),
            Plan::Text("manager".into())
        );
        // Not implied: the `or`'s alternative differs in its literal.
        assert!(matches!(
            p(r#"userName sw "b" and (userName sw "c" or active eq false)"#),
            Plan::Matching(c) if c.len() == 2
        ));
    }

    #[test]
    fn falls_back_to_scan() {
        assert_eq!(p(r#"nickName pr"#), Plan::Scan);
        assert_eq!(p(r#"userName eq "a" or nickName eq "b""#), Plan::Scan);
        assert_eq!(p(r#"not (userName eq "a")"#), Plan::Scan);
        assert_eq!(p(r#"userName ne "a""#), Plan::Scan);
        assert_eq!(p(r#"title ew "x" or title ew "y""#), Plan::Scan);
    }
}
