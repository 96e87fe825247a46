//! Property: whatever the documents, the writes since and the window, the
//! SQLite store's indexed answer to a selection (count, page of keys, page
//! of documents) is the naive one: every live document tested in turn. The
//! generalisation of `counts_and_pages_match_the_naive_answer` to generated
//! terms, selections, pages and interleaved replaces and deletes.

use proptest::prelude::*;
use scim_engine::memstore::term_matches;
use scim_engine::store as ns;

use super::*;

/// A document of the model: number, terms (name, value), body.
#[derive(Debug, Clone)]
struct Doc {
    n: usize,
    terms: Vec<(String, String)>,
    body: String,
}

const VALUES: &[&str] = &["a", "ab", "abc", "b", "ba", "B", "ç", "a%", "a_b", "z"];

fn term() -> impl Strategy<Value = (String, String)> {
    (
        prop::sample::select(vec!["userName", "email", "title"]),
        prop::sample::select(VALUES),
        0u8..3,
    )
        .prop_map(|(name, v, n)| (name.to_string(), format!("{v}{n}")))
}

fn body() -> impl Strategy<Value = String> {
    prop::sample::select(vec![
        "Manager",
        "engineer",
        "MANAGER x",
        "Ingénieur",
        "50%_off",
    ])
    .prop_map(|t| format!("{{\"title\":\"{t}\"}}"))
}

/// A document's terms (name, value) and body.
type Content = (Vec<(String, String)>, String);

fn docs() -> impl Strategy<Value = Vec<Content>> {
    prop::collection::vec((prop::collection::vec(term(), 0..4), body()), 0..30)
}

/// A write after the first inserts: (document index, new terms and body, or
/// a delete).
fn writes() -> impl Strategy<Value = Vec<(usize, Option<Content>)>> {
    prop::collection::vec(
        (
            any::<usize>(),
            prop::option::weighted(0.7, (prop::collection::vec(term(), 0..4), body())),
        ),
        0..6,
    )
}

fn term_match() -> impl Strategy<Value = ns::TermMatch> {
    let v = || prop::sample::select(VALUES).prop_map(str::to_string);
    let bound =
        || (v(), any::<bool>()).prop_map(|(value, inclusive)| ns::Bound { value, inclusive });
    prop_oneof![
        (v(), 0u8..3).prop_map(|(v, n)| ns::TermMatch::Exact(format!("{v}{n}"))),
        v().prop_map(ns::TermMatch::Prefix),
        v().prop_map(ns::TermMatch::Contains),
        (prop::option::of(bound()), prop::option::of(bound()))
            .prop_map(|(lo, hi)| ns::TermMatch::Range(lo, hi)),
    ]
}

fn query() -> impl Strategy<Value = ns::TermQuery> {
    (
        prop::sample::select(vec!["userName", "email", "title"]),
        term_match(),
    )
        .prop_map(|(name, matches)| ns::TermQuery {
            name: name.into(),
            matches,
        })
}

fn needle() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["manager", "ENGINEER", "%_", "title", "x"]).prop_map(str::to_string)
}

fn selection() -> impl Strategy<Value = ns::Selection> {
    let clause = prop_oneof![
        prop::collection::vec(query(), 1..3).prop_map(ns::Clause::AnyTerm),
        needle().prop_map(ns::Clause::BodyContains),
    ];
    prop_oneof![
        Just(ns::Selection::All),
        query().prop_map(ns::Selection::Term),
        needle().prop_map(ns::Selection::BodyContains),
        prop::collection::vec(clause, 1..3).prop_map(ns::Selection::Matching),
    ]
}

fn page() -> impl Strategy<Value = (Option<usize>, u64, u32, bool)> {
    (
        prop::option::of(any::<usize>()),
        0u64..6,
        0u32..12,
        any::<bool>(),
    )
}

fn body_contains(body: &str, needle: &str) -> bool {
    !body.is_ascii()
        || body
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
}

fn selects(s: &ns::Selection, d: &Doc) -> bool {
    let has = |q: &ns::TermQuery| {
        d.terms
            .iter()
            .any(|(name, value)| *name == q.name && term_matches(value, &q.matches))
    };
    match s {
        ns::Selection::All => true,
        ns::Selection::Term(q) => has(q),
        ns::Selection::BodyContains(n) => body_contains(&d.body, n),
        ns::Selection::Matching(cs) => cs.iter().all(|c| match c {
            ns::Clause::AnyTerm(qs) => qs.iter().any(has),
            ns::Clause::BodyContains(n) => body_contains(&d.body, n),
        }),
    }
}

fn new_doc(n: usize, terms: &[(String, String)], body: &str) -> NewDocument {
    NewDocument {
        id: format!("id{n}"),
        body: body.into(),
        label: None,
        terms: terms
            .iter()
            .map(|(name, value)| Term {
                name: name.clone(),
                value: value.clone(),
                unique: false,
            })
            .collect(),
    }
}

/// The engine's selection in the host's WIT types.
fn wit_selection(s: &ns::Selection) -> Selection {
    let q = |q: &ns::TermQuery| TermQuery {
        name: q.name.clone(),
        match_: match &q.matches {
            ns::TermMatch::Exact(v) => TermMatch::Exact(v.clone()),
            ns::TermMatch::Prefix(v) => TermMatch::Prefix(v.clone()),
            ns::TermMatch::Contains(v) => TermMatch::Contains(v.clone()),
            ns::TermMatch::Range(lo, hi) => {
                let b = |b: &ns::Bound| Bound {
                    value: b.value.clone(),
                    inclusive: b.inclusive,
                };
                TermMatch::Range((lo.as_ref().map(b), hi.as_ref().map(b)))
            }
        },
    };
    match s {
        ns::Selection::All => Selection::All,
        ns::Selection::Term(t) => Selection::Term(q(t)),
        ns::Selection::BodyContains(n) => Selection::BodyContains(n.clone()),
        ns::Selection::Matching(cs) => Selection::Matching(
            cs.iter()
                .map(|c| match c {
                    ns::Clause::AnyTerm(qs) => Clause::AnyTerm(qs.iter().map(q).collect()),
                    ns::Clause::BodyContains(n) => Clause::BodyContains(n.clone()),
                })
                .collect(),
        ),
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(48),
        ..ProptestConfig::default()
    })]

    #[test]
    fn indexed_selections_count_and_page_as_a_naive_scan(
        docs in docs(),
        writes in writes(),
        queries in prop::collection::vec((selection(), page()), 1..6),
    ) {
        let (_dir, pool) = db::scratch();
        let conn = pool.get().unwrap();
        db::add_tenant(&conn, "t").unwrap();
        conn.begin(db::Begin::Write(Some(1))).unwrap();
        let mut store = SqlStore::new(conn, 1);
        // Live documents of the model, with their seqs.
        let mut live: Vec<(u64, Doc)> = Vec::new();
        for (n, (terms, body)) in docs.into_iter().enumerate() {
            let w = store.insert("User".into(), new_doc(n, &terms, &body)).unwrap();
            live.push((w.seq, Doc { n, terms, body }));
        }
        // A first count, so that a count kept from before the writes would show.
        let _ = store.count("User".into(), Selection::All).unwrap();
        for (at, write) in writes {
            if live.is_empty() {
                break;
            }
            let i = at % live.len();
            let n = live[i].1.n;
            match write {
                Some((terms, body)) => {
                    store.replace("User".into(), new_doc(n, &terms, &body), None).unwrap();
                    live[i].1 = Doc { n, terms, body };
                }
                None => {
                    store.delete("User".into(), format!("id{n}"), None).unwrap();
                    live.remove(i);
                }
            }
        }
        for (sel, (after, offset, limit, descending)) in queries {
            let matching: Vec<(String, u64)> = live
                .iter()
                .filter(|(_, d)| selects(&sel, d))
                .map(|(seq, d)| (format!("id{}", d.n), *seq))
                .collect();
            let after = after.and_then(|a| (!live.is_empty()).then(|| live[a % live.len()].0));
            let mut window = matching.clone();
            if descending {
                window.reverse();
            }
            let window: Vec<(String, u64)> = window
                .into_iter()
                .filter(|(_, seq)| match after {
                    None => true,
                    Some(a) if descending => *seq < a,
                    Some(a) => *seq > a,
                })
                .skip(offset as usize)
                .take(limit as usize)
                .collect();
            let page = Page { after, offset, limit, descending };
            let wit = wit_selection(&sel);
            prop_assert_eq!(store.count("User".into(), wit.clone()).unwrap(), matching.len() as u64, "{:?}", sel);
            prop_assert_eq!(&store.scan_keys("User".into(), wit.clone(), page).unwrap(), &window, "{:?} {:?}", sel, page);
            let scanned: Vec<(String, u64)> = store
                .scan("User".into(), wit, page)
                .unwrap()
                .into_iter()
                .map(|d| (d.id, d.seq))
                .collect();
            prop_assert_eq!(scanned, window, "{:?} {:?}", sel, page);
        }
    }
}

on_both!(a_matching_selection_counts_a_document_with_two_matching_terms_once);

/// Regression: a `matching` selection whose driving clause is one term
/// query listed and counted a document once per matching term (two work
/// emails), where `UNION` had merged them only across several queries.
fn a_matching_selection_counts_a_document_with_two_matching_terms_once(backend: Backend) {
    let (_dir, pool) = database(backend);
    let conn = pool.get().unwrap();
    db::add_tenant(&conn, "t").unwrap();
    let tenant = db::tenant_id(&conn, "t").unwrap();
    conn.begin(db::Begin::Write(Some(tenant))).unwrap();
    let mut store = SqlStore::new(conn, tenant);
    let terms = ["a@x.example", "b@x.example"].map(|v| ("email".to_string(), v.to_string()));
    store
        .insert("User".into(), new_doc(0, &terms, "{\"title\":\"Manager\"}"))
        .unwrap();
    let sel = Selection::Matching(vec![
        Clause::AnyTerm(vec![TermQuery {
            name: "email".into(),
            match_: TermMatch::Contains("x.example".into()),
        }]),
        Clause::BodyContains("manager".into()),
    ]);
    assert_eq!(store.count("User".into(), sel.clone()).unwrap(), 1);
    let page = Page {
        after: None,
        offset: 0,
        limit: 10,
        descending: false,
    };
    let keys = store.scan_keys("User".into(), sel.clone(), page).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    assert_eq!(store.scan("User".into(), sel, page).unwrap().len(), 1);
}
