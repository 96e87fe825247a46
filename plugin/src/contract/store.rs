//! The `store` contract (see `wit/store.wit`): documents, versions, unique
//! terms, selections and pages, savepoints, and the membership relation.
//!
//! [`run_all`] runs every check, each on a fresh, empty store for one
//! tenant from `fresh`.

use crate::memstore::term_matches;
use crate::store::{
    Bound, Clause, MemberRef, NewDocument, Page, Selection, Store, StoreError, Term, TermMatch,
    TermQuery,
};

/// A check: takes an empty store.
pub type Check = fn(&mut dyn Store);

/// Every check, by name.
pub const CHECKS: &[(&str, Check)] = &[
    (
        "documents_have_versions_and_seqs",
        documents_have_versions_and_seqs,
    ),
    (
        "writes_check_versions_and_existence",
        writes_check_versions_and_existence,
    ),
    (
        "unique_terms_are_unique_per_kind",
        unique_terms_are_unique_per_kind,
    ),
    (
        "selections_count_and_page_as_specified",
        selections_count_and_page_as_specified,
    ),
    (
        "replaced_terms_and_deleted_documents_leave_selections",
        replaced_terms_and_deleted_documents_leave_selections,
    ),
    ("savepoints_nest", savepoints_nest),
    (
        "membership_adds_removes_and_lists",
        membership_adds_removes_and_lists,
    ),
    (
        "membership_follows_deletes_and_labels",
        membership_follows_deletes_and_labels,
    ),
    (
        "groups_of_answers_for_many_members",
        groups_of_answers_for_many_members,
    ),
];

/// Runs every check, each on a store made by `fresh`.
pub fn run_all<S: Store>(mut fresh: impl FnMut() -> S) {
    for (name, check) in CHECKS {
        let mut store = fresh();
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&mut store)));
        if let Err(e) = result {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            panic!("store contract '{name}' failed: {msg}");
        }
    }
}

const USER: &str = "User";
const GROUP: &str = "Group";

fn term(name: &str, value: &str, unique: bool) -> Term {
    Term {
        name: name.into(),
        value: value.into(),
        unique,
    }
}

fn doc(id: &str, body: &str, terms: Vec<Term>) -> NewDocument {
    NewDocument {
        id: id.into(),
        body: body.into(),
        label: Some(format!("label {id}")),
        terms,
    }
}

fn ids_of(docs: Vec<crate::store::Document>) -> Vec<String> {
    docs.into_iter().map(|d| d.id).collect()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn all(limit: u32) -> Page {
    Page::after(None, limit)
}

pub fn documents_have_versions_and_seqs(s: &mut dyn Store) {
    let a = s
        .insert(USER, doc("a", "{\"n\":1}", vec![]))
        .expect("insert a");
    let b = s
        .insert(USER, doc("b", "{\"n\":2}", vec![]))
        .expect("insert b");
    let g = s
        .insert(GROUP, doc("a", "{\"g\":1}", vec![]))
        .expect("same id, other kind");
    assert_eq!((a.version, b.version, g.version), (1, 1, 1));
    assert!(
        a.seq < b.seq && b.seq < g.seq,
        "seqs follow creation: {a:?} {b:?} {g:?}"
    );
    let got = s.get(USER, "a").expect("get").expect("a exists");
    assert_eq!(
        (got.id.as_str(), got.seq, got.version, got.body.as_str()),
        ("a", a.seq, 1, "{\"n\":1}")
    );
    assert_eq!(s.get(USER, "nobody").expect("get"), None);
    assert_eq!(s.get(GROUP, "b").expect("get"), None, "kinds are apart");
    let many = s
        .get_many(USER, &["b".into(), "ghost".into(), "a".into()])
        .expect("get_many");
    assert_eq!(sorted(ids_of(many)), ["a", "b"], "missing ids are skipped");
    let w = s
        .replace(USER, doc("a", "{\"n\":10}", vec![]), Some(1))
        .expect("replace");
    assert_eq!(
        (w.seq, w.version),
        (a.seq, 2),
        "a replace keeps seq, bumps version"
    );
    let w = s
        .replace(USER, doc("a", "{\"n\":11}", vec![]), None)
        .expect("replace");
    assert_eq!(w.version, 3);
    let got = s.get(USER, "a").expect("get").expect("a exists");
    assert_eq!((got.version, got.body.as_str()), (3, "{\"n\":11}"));
    assert_eq!(s.count(USER, &Selection::All).expect("count"), 2);
    assert_eq!(s.count(GROUP, &Selection::All).expect("count"), 1);
    assert_eq!(s.count("Other", &Selection::All).expect("count"), 0);
}

pub fn writes_check_versions_and_existence(s: &mut dyn Store) {
    s.insert(USER, doc("a", "{}", vec![])).expect("insert");
    assert_eq!(
        s.insert(USER, doc("a", "{}", vec![])),
        Err(StoreError::Conflict(0)),
        "an existing id"
    );
    assert_eq!(
        s.replace(USER, doc("a", "{\"x\":1}", vec![]), Some(7)),
        Err(StoreError::Conflict(1)),
        "a stale version carries the current one"
    );
    assert_eq!(
        s.replace(USER, doc("ghost", "{}", vec![]), None),
        Err(StoreError::NotFound)
    );
    assert_eq!(s.delete(USER, "a", Some(5)), Err(StoreError::Conflict(1)));
    assert_eq!(
        s.get(USER, "a").expect("get").map(|d| d.body),
        Some("{}".into()),
        "failed writes change nothing"
    );
    assert_eq!(s.delete(USER, "ghost", None), Err(StoreError::NotFound));
    s.delete(USER, "a", Some(1))
        .expect("delete at the right version");
    assert_eq!(s.get(USER, "a").expect("get"), None);
    assert_eq!(s.delete(USER, "a", None), Err(StoreError::NotFound));
    // The id is free again.
    assert_eq!(
        s.insert(USER, doc("a", "{}", vec![]))
            .expect("insert")
            .version,
        1
    );
}

pub fn unique_terms_are_unique_per_kind(s: &mut dyn Store) {
    s.insert(USER, doc("a", "{}", vec![term("userName", "ada", true)]))
        .expect("insert");
    assert_eq!(
        s.insert(USER, doc("b", "{}", vec![term("userName", "ada", true)])),
        Err(StoreError::UniqueViolation("userName".into()))
    );
    assert_eq!(
        s.get(USER, "b").expect("get"),
        None,
        "a refused insert writes nothing"
    );
    // Another kind, a non-unique term of the same value, another value: fine.
    s.insert(GROUP, doc("g", "{}", vec![term("userName", "ada", true)]))
        .expect("other kind");
    s.insert(USER, doc("c", "{}", vec![term("userName", "ada", false)]))
        .expect("not unique");
    s.insert(USER, doc("b", "{}", vec![term("userName", "bob", true)]))
        .expect("other value");
    assert_eq!(
        s.replace(
            USER,
            doc("b", "{\"x\":1}", vec![term("userName", "ada", true)]),
            None
        ),
        Err(StoreError::UniqueViolation("userName".into()))
    );
    assert_eq!(s.get(USER, "b").expect("get").expect("b").version, 1);
    // A document may keep its own unique value; a freed value can be taken.
    s.replace(
        USER,
        doc("a", "{\"x\":1}", vec![term("userName", "ada", true)]),
        None,
    )
    .expect("keeps its own value");
    s.replace(
        USER,
        doc("a", "{}", vec![term("userName", "ada2", true)]),
        None,
    )
    .expect("rename");
    s.replace(
        USER,
        doc("b", "{}", vec![term("userName", "ada", true)]),
        None,
    )
    .expect("the freed value");
    s.delete(USER, "b", None).expect("delete");
    s.insert(USER, doc("d", "{}", vec![term("userName", "ada", true)]))
        .expect("freed by delete");
}

/// The corpus of [`selections_count_and_page_as_specified`]: (id, terms,
/// body). Values cover prefixes, ranges, bytes above ASCII and repeats.
fn corpus() -> Vec<(String, Vec<Term>, String)> {
    let names = [
        "ada", "adam", "bob", "Bob", "b", "ça", "zed", "ad%_", "a\\b", "",
    ];
    let titles = [
        "Manager",
        "engineer",
        "MANAGER of things",
        "Ingénieur",
        "x_y%z",
    ];
    (0..24)
        .map(|i| {
            let mut terms = vec![term(
                "userName",
                &format!("{}{i:02}", names[i % names.len()]),
                true,
            )];
            if i % 3 != 0 {
                terms.push(term(
                    "email",
                    &format!("u{i}@{}", ["x.example", "y.example"][i % 2]),
                    false,
                ));
                if i % 2 == 0 {
                    terms.push(term("email", &format!("alt{i}@x.example"), false));
                }
            }
            if i % 4 == 1 {
                terms.push(term(
                    "created",
                    &format!("2024-01-{:02}T00:00:00Z", 1 + i),
                    false,
                ));
            }
            let body = format!("{{\"title\":\"{}\",\"n\":{i}}}", titles[i % titles.len()]);
            (format!("id{i:02}"), terms, body)
        })
        .collect()
}

/// The selections the engine asks for.
fn selections() -> Vec<Selection> {
    let q = |name: &str, m: TermMatch| TermQuery {
        name: name.into(),
        matches: m,
    };
    let bound = |v: &str, inclusive: bool| {
        Some(Bound {
            value: v.into(),
            inclusive,
        })
    };
    vec![
        Selection::All,
        Selection::Term(q("userName", TermMatch::Exact("bob02".into()))),
        Selection::Term(q("userName", TermMatch::Prefix("ad".into()))),
        Selection::Term(q("userName", TermMatch::Prefix("ad%".into()))),
        Selection::Term(q("userName", TermMatch::Prefix("a\\".into()))),
        Selection::Term(q("userName", TermMatch::Prefix("ç".into()))),
        Selection::Term(q("userName", TermMatch::Prefix("".into()))),
        Selection::Term(q("userName", TermMatch::Contains("b".into()))),
        Selection::Term(q("userName", TermMatch::Contains("%_".into()))),
        Selection::Term(q("email", TermMatch::Contains("x.example".into()))),
        Selection::Term(q("email", TermMatch::Exact("nobody".into()))),
        Selection::Term(q(
            "created",
            TermMatch::Range(bound("2024-01-06T00:00:00Z", false), None),
        )),
        Selection::Term(q(
            "created",
            TermMatch::Range(
                bound("2024-01-02T00:00:00Z", true),
                bound("2024-01-14T00:00:00Z", true),
            ),
        )),
        Selection::Term(q(
            "created",
            TermMatch::Range(None, bound("2024-01-10T00:00:00Z", false)),
        )),
        Selection::Term(q(
            "userName",
            TermMatch::Range(bound("b", true), bound("bob", false)),
        )),
        Selection::BodyContains("manager".into()),
        Selection::BodyContains("y_%".into()),
        Selection::BodyContains("nothing".into()),
        Selection::Matching(vec![
            Clause::AnyTerm(vec![q("email", TermMatch::Contains("x.example".into()))]),
            Clause::BodyContains("manager".into()),
        ]),
        Selection::Matching(vec![
            Clause::AnyTerm(vec![
                q("userName", TermMatch::Prefix("ad".into())),
                q("userName", TermMatch::Prefix("b".into())),
            ]),
            Clause::AnyTerm(vec![q("email", TermMatch::Prefix("u".into()))]),
        ]),
        Selection::Matching(vec![Clause::BodyContains("engineer".into())]),
        Selection::Matching(vec![]),
    ]
}

/// Whether `body` passes the body-contains pre-filter for `needle`.
fn body_contains(body: &str, needle: &str) -> bool {
    !body.is_ascii()
        || body
            .to_ascii_lowercase()
            .contains(&needle.to_ascii_lowercase())
}

fn selected(selection: &Selection, terms: &[Term], body: &str) -> bool {
    let has = |q: &TermQuery| {
        terms
            .iter()
            .any(|t| t.name == q.name && term_matches(&t.value, &q.matches))
    };
    match selection {
        Selection::All => true,
        Selection::Term(q) => has(q),
        Selection::BodyContains(n) => body_contains(body, n),
        Selection::Matching(clauses) => clauses.iter().all(|c| match c {
            Clause::AnyTerm(qs) => qs.iter().any(has),
            Clause::BodyContains(n) => body_contains(body, n),
        }),
    }
}

pub fn selections_count_and_page_as_specified(s: &mut dyn Store) {
    let corpus = corpus();
    let mut seqs = Vec::new();
    for (id, terms, body) in &corpus {
        seqs.push(
            s.insert(USER, doc(id, body, terms.clone()))
                .expect("insert")
                .seq,
        );
        // Noise of another kind with the same terms.
        s.insert(GROUP, doc(id, body, terms.clone()))
            .expect("insert group");
    }
    for sel in selections() {
        let want: Vec<(String, u64)> = corpus
            .iter()
            .zip(&seqs)
            .filter(|((_, terms, body), _)| selected(&sel, terms, body))
            .map(|((id, _, _), seq)| (id.clone(), *seq))
            .collect();
        assert_eq!(
            s.count(USER, &sel).expect("count"),
            want.len() as u64,
            "count of {sel:?}"
        );
        let pages = [
            Page::after(None, 1000),
            Page::after(None, 3),
            Page::after(Some(seqs[5]), 4),
            Page {
                after: None,
                offset: 2,
                limit: 5,
                descending: false,
            },
            Page {
                after: None,
                offset: 0,
                limit: 4,
                descending: true,
            },
            Page {
                after: Some(seqs[20]),
                offset: 1,
                limit: 3,
                descending: true,
            },
            Page {
                after: None,
                offset: 100,
                limit: 3,
                descending: false,
            },
            Page::after(None, 0),
        ];
        for page in pages {
            let mut window: Vec<(String, u64)> = want.clone();
            if page.descending {
                window.reverse();
            }
            let window: Vec<(String, u64)> = window
                .into_iter()
                .filter(|(_, seq)| match page.after {
                    None => true,
                    Some(a) if page.descending => *seq < a,
                    Some(a) => *seq > a,
                })
                .skip(page.offset as usize)
                .take(page.limit as usize)
                .collect();
            let keys = s.scan_keys(USER, &sel, page).expect("scan_keys");
            assert_eq!(keys, window, "scan_keys of {sel:?} over {page:?}");
            let docs = s.scan(USER, &sel, page).expect("scan");
            let got: Vec<(String, u64)> = docs.iter().map(|d| (d.id.clone(), d.seq)).collect();
            assert_eq!(got, window, "scan of {sel:?} over {page:?}");
            for d in docs {
                let (_, _, body) = corpus
                    .iter()
                    .find(|(id, _, _)| *id == d.id)
                    .expect("listed");
                assert_eq!((&d.body, d.version), (body, 1));
            }
        }
    }
}

pub fn replaced_terms_and_deleted_documents_leave_selections(s: &mut dyn Store) {
    let by = |v: &str| {
        Selection::Term(TermQuery {
            name: "dept".into(),
            matches: TermMatch::Exact(v.into()),
        })
    };
    for i in 0..6 {
        s.insert(
            USER,
            doc(&format!("u{i}"), "{}", vec![term("dept", "sales", false)]),
        )
        .expect("insert");
    }
    // Counted once, then written: the next count must see the write.
    assert_eq!(s.count(USER, &by("sales")).expect("count"), 6);
    s.replace(
        USER,
        doc("u1", "{}", vec![term("dept", "ops", false)]),
        None,
    )
    .expect("replace");
    s.replace(USER, doc("u2", "{}", vec![]), None)
        .expect("replace");
    s.delete(USER, "u3", None).expect("delete");
    assert_eq!(s.count(USER, &by("sales")).expect("count"), 3);
    assert_eq!(s.count(USER, &by("ops")).expect("count"), 1);
    let keys: Vec<String> = s
        .scan_keys(USER, &by("sales"), all(100))
        .expect("scan")
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(keys, ["u0", "u4", "u5"]);
    s.insert(USER, doc("u6", "{}", vec![term("dept", "sales", false)]))
        .expect("insert");
    assert_eq!(s.count(USER, &by("sales")).expect("count"), 4);
    assert_eq!(s.count(USER, &Selection::All).expect("count"), 6);
}

pub fn savepoints_nest(s: &mut dyn Store) {
    s.insert(USER, doc("base", "{}", vec![])).expect("insert");
    let outer = s.savepoint().expect("savepoint");
    s.insert(USER, doc("outer", "{}", vec![])).expect("insert");
    let inner = s.savepoint().expect("savepoint");
    s.insert(USER, doc("inner", "{}", vec![term("u", "x", true)]))
        .expect("insert");
    s.replace(USER, doc("base", "{\"changed\":true}", vec![]), None)
        .expect("replace");
    s.rollback_to(inner).expect("rollback");
    assert_eq!(s.get(USER, "inner").expect("get"), None);
    assert_eq!(s.get(USER, "base").expect("get").expect("base").body, "{}");
    assert!(
        s.get(USER, "outer").expect("get").is_some(),
        "the outer savepoint's writes stay"
    );
    // The rolled-back unique term is free.
    s.insert(USER, doc("again", "{}", vec![term("u", "x", true)]))
        .expect("free again");
    let inner = s.savepoint().expect("savepoint");
    s.insert(USER, doc("kept", "{}", vec![])).expect("insert");
    s.release(inner).expect("release");
    assert!(s.get(USER, "kept").expect("get").is_some());
    s.rollback_to(outer).expect("rollback");
    assert_eq!(
        sorted(ids_of(
            s.scan(USER, &Selection::All, all(10)).expect("scan")
        )),
        ["base"],
        "rolling back the outer savepoint undoes the released inner one"
    );
    assert_eq!(s.count(USER, &Selection::All).expect("count"), 1);
    let sp = s.savepoint().expect("savepoint");
    s.insert(USER, doc("last", "{}", vec![])).expect("insert");
    s.release(sp).expect("release");
    assert_eq!(s.count(USER, &Selection::All).expect("count"), 2);
}

fn member(id: &str, kind: &str) -> MemberRef {
    MemberRef {
        id: id.into(),
        kind: kind.into(),
    }
}

fn listed(s: &mut dyn Store, group: &str) -> Vec<String> {
    s.members_all(GROUP, group)
        .expect("members")
        .into_iter()
        .map(|e| e.id)
        .collect()
}

pub fn membership_adds_removes_and_lists(s: &mut dyn Store) {
    let mut seq = std::collections::HashMap::new();
    for id in ["u1", "u2", "u3", "u4", "u5"] {
        seq.insert(
            id,
            s.insert(USER, doc(id, "{}", vec![])).expect("insert").seq,
        );
    }
    s.insert(GROUP, doc("g", "{}", vec![])).expect("insert");
    s.insert(GROUP, doc("sub", "{}", vec![])).expect("insert");
    let added = s
        .members_add(
            GROUP,
            "g",
            &[member("u3", USER), member("u1", USER), member("sub", GROUP)],
        )
        .expect("add");
    assert_eq!(sorted(added), ["sub", "u1", "u3"]);
    let added = s
        .members_add(GROUP, "g", &[member("u1", USER), member("u2", USER)])
        .expect("add");
    assert_eq!(added, ["u2"], "members already present are left alone");
    assert_eq!(
        s.members_add(GROUP, "g", &[member("u4", USER), member("ghost", USER)]),
        Err(StoreError::Missing(vec!["ghost".into()]))
    );
    assert_eq!(
        s.members_count(GROUP, "g").expect("count"),
        4,
        "a refused add adds nothing"
    );
    assert_eq!(
        s.members_add(GROUP, "nogroup", &[member("u1", USER)]),
        Err(StoreError::NotFound)
    );
    // Listed in member seq order, paged.
    let entries = s.members_list(GROUP, "g", None, 10).expect("list");
    let order: Vec<(&str, &str, Option<&str>)> = entries
        .iter()
        .map(|e| (e.id.as_str(), e.kind.as_str(), e.label.as_deref()))
        .collect();
    assert_eq!(
        order,
        [
            ("u1", USER, Some("label u1")),
            ("u2", USER, Some("label u2")),
            ("u3", USER, Some("label u3")),
            ("sub", GROUP, Some("label sub")),
        ]
    );
    assert_eq!(entries[0].seq, seq["u1"]);
    let page = s
        .members_list(GROUP, "g", Some(entries[0].seq), 2)
        .expect("list");
    assert_eq!(ids_of_entries(page), ["u2", "u3"]);
    let mut contains = s
        .members_contains(
            GROUP,
            "g",
            &["u5".into(), "u2".into(), "sub".into(), "ghost".into()],
        )
        .expect("contains");
    contains.sort();
    assert_eq!(contains, ["sub", "u2"]);
    let removed = s
        .members_remove(GROUP, "g", &["u2".into(), "u5".into(), "ghost".into()])
        .expect("remove");
    assert_eq!(removed, ["u2"], "absent ids are ignored");
    assert_eq!(listed(s, "g"), ["u1", "u3", "sub"]);
    assert_eq!(s.members_clear(GROUP, "g").expect("clear"), 3);
    assert_eq!(s.members_count(GROUP, "g").expect("count"), 0);
    assert_eq!(s.members_clear(GROUP, "g").expect("clear"), 0);
    // Re-added members come back in member seq order, not insertion order.
    s.members_add(GROUP, "g", &[member("u5", USER), member("u2", USER)])
        .expect("add");
    assert_eq!(listed(s, "g"), ["u2", "u5"]);
}

fn ids_of_entries(entries: Vec<crate::store::MemberEntry>) -> Vec<String> {
    entries.into_iter().map(|e| e.id).collect()
}

pub fn membership_follows_deletes_and_labels(s: &mut dyn Store) {
    for id in ["u1", "u2"] {
        s.insert(USER, doc(id, "{}", vec![])).expect("insert");
    }
    for id in ["g1", "g2"] {
        s.insert(GROUP, doc(id, "{}", vec![])).expect("insert");
    }
    s.members_add(
        GROUP,
        "g1",
        &[member("u1", USER), member("u2", USER), member("g2", GROUP)],
    )
    .expect("add");
    s.members_add(GROUP, "g2", &[member("u1", USER)])
        .expect("add");
    // A member's label follows its replace.
    let mut renamed = doc("u1", "{}", vec![]);
    renamed.label = Some("Ada".into());
    s.replace(USER, renamed, None).expect("replace");
    let first = s.members_list(GROUP, "g1", None, 1).expect("list");
    assert_eq!(first[0].label.as_deref(), Some("Ada"));
    // Deleting a member removes it from every group; deleting a group
    // removes its rows both ways.
    s.delete(USER, "u1", None).expect("delete");
    assert_eq!(listed(s, "g1"), ["u2", "g2"]);
    assert_eq!(s.members_count(GROUP, "g2").expect("count"), 0);
    s.delete(GROUP, "g2", None).expect("delete");
    assert_eq!(listed(s, "g1"), ["u2"]);
    assert!(
        s.groups_of(GROUP, &["g2".into()])
            .expect("groups_of")
            .is_empty()
    );
    s.delete(GROUP, "g1", None).expect("delete");
    assert!(
        s.groups_of(GROUP, &["u2".into()])
            .expect("groups_of")
            .is_empty()
    );
}

pub fn groups_of_answers_for_many_members(s: &mut dyn Store) {
    for id in ["u1", "u2", "u3"] {
        s.insert(USER, doc(id, "{}", vec![])).expect("insert");
    }
    for id in ["g1", "g2", "g3", "top"] {
        s.insert(GROUP, doc(id, "{}", vec![])).expect("insert");
    }
    s.members_add(GROUP, "g2", &[member("u1", USER), member("u2", USER)])
        .expect("add");
    s.members_add(GROUP, "g1", &[member("u1", USER)])
        .expect("add");
    s.members_add(GROUP, "g3", &[member("u2", USER)])
        .expect("add");
    s.members_add(GROUP, "top", &[member("g3", GROUP)])
        .expect("add");
    let pairs: Vec<(String, String)> = s
        .groups_of(
            GROUP,
            &["u1".into(), "u2".into(), "u3".into(), "ghost".into()],
        )
        .expect("groups_of")
        .into_iter()
        .map(|(m, g)| (m, g.id))
        .collect();
    let for_member = |m: &str| -> Vec<&str> {
        pairs
            .iter()
            .filter(|(x, _)| x == m)
            .map(|(_, g)| g.as_str())
            .collect()
    };
    assert_eq!(for_member("u1"), ["g1", "g2"], "in group seq order");
    assert_eq!(for_member("u2"), ["g2", "g3"]);
    assert!(for_member("u3").is_empty() && for_member("ghost").is_empty());
    let nested = s
        .groups_of_nested(GROUP, &["u2".into()])
        .expect("groups_of_nested");
    let flags: Vec<(&str, bool)> = nested.iter().map(|(_, g, n)| (g.id.as_str(), *n)).collect();
    assert_eq!(flags, [("g2", false), ("g3", true)]);
    let label = &nested[0].1.label;
    assert_eq!(label.as_deref(), Some("label g2"));
    assert_eq!(
        ids_of_entries(s.groups_of_one(GROUP, "g3").expect("groups_of_one")),
        ["top"]
    );
}
