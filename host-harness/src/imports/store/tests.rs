//! The store's query strategies against naive answers: counts by
//! complement, pages found by walking documents, intersections, and the
//! term statistics they rely on staying right through replaces and deletes.
//! The contract tests run on both databases: SQLite, and PostgreSQL in a
//! throwaway cluster this test process starts (and stops when it exits).

use super::*;
use crate::bindings::lms::scim::store::{Bound, Clause, Host as _, Term, TermQuery};
use crate::db::{self, Checkpoints};

const N: usize = 3000;

#[path = "../../../../tests/support/postgres.rs"]
mod cluster;

/// Which database a contract test runs on.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named test (a function taking a [`Backend`]) on both
/// databases, as `<name>::sqlite` and `<name>::postgres`.
macro_rules! on_both {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[test]
            fn sqlite() {
                super::$name(super::Backend::Sqlite)
            }
            #[test]
            fn postgres() {
                super::$name(super::Backend::Postgres)
            }
        }
    )*};
}

mod contract;
mod props;

on_both!(
    counts_and_pages_match_the_naive_answer,
    term_statistics_follow_replaces_and_deletes,
    a_replace_rewrites_only_the_terms_that_changed,
    groups_of_nested_says_which_groups_are_themselves_in_a_group,
);

struct Fixture {
    store: SqlStore,
    _dir: tempfile::TempDir,
}

/// An empty database on `backend` with one connection.
fn database(backend: Backend) -> (tempfile::TempDir, db::Pool) {
    match backend {
        Backend::Sqlite => db::scratch(),
        Backend::Postgres => {
            let url = cluster::shared().create_database();
            let pool = db::open(&db::Location::Postgres(url), 1, Checkpoints::InCommit).unwrap();
            (tempfile::tempdir().unwrap(), pool)
        }
    }
}

/// `user{i:05}` for every document; an `email` term for two of every three
/// (two for the even ones); the body says "manager" for multiples of 5.
fn fixture(backend: Backend) -> Fixture {
    let (dir, pool) = database(backend);
    let conn = pool.get().unwrap();
    db::add_tenant(&conn, "t").unwrap();
    assert_eq!(db::tenant_id(&conn, "t").unwrap(), 1);
    conn.begin(db::Begin::Write(Some(1))).unwrap();
    let mut store = SqlStore::new(conn, 1);
    for i in 0..N {
        store.insert("User".into(), doc(i, 0)).unwrap();
    }
    Fixture { store, _dir: dir }
}

fn doc(i: usize, generation: usize) -> NewDocument {
    let term = |name: &str, value: String| Term {
        name: name.into(),
        value,
        unique: false,
    };
    let mut terms = vec![term("userName", format!("user{i:05}"))];
    if !i.is_multiple_of(3) {
        terms.push(term("email", format!("a{i}@x{generation}")));
        if i.is_multiple_of(2) {
            terms.push(term("email", format!("b{i}@x{generation}")));
        }
    }
    let title = if i.is_multiple_of(5) {
        "Manager"
    } else {
        "Engineer"
    };
    NewDocument {
        id: format!("id{i}"),
        body: format!("{{\"title\":\"{title}\",\"n\":{i}}}"),
        label: None,
        terms,
    }
}

fn q(name: &str, m: TermMatch) -> TermQuery {
    TermQuery {
        name: name.into(),
        match_: m,
    }
}

fn ids(store: &mut SqlStore, s: Selection, offset: u64, limit: u32) -> Vec<String> {
    let page = Page {
        after: None,
        offset,
        limit,
        descending: false,
    };
    store
        .scan_keys("User".into(), s, page)
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect()
}

/// The ids a predicate over document numbers selects, in creation order.
fn naive(keep: impl Fn(usize) -> bool) -> Vec<String> {
    (0..N)
        .filter(|&i| keep(i))
        .map(|i| format!("id{i}"))
        .collect()
}

fn counts_and_pages_match_the_naive_answer(backend: Backend) {
    let mut f = fixture(backend);
    let prefix = |p: &str| Selection::Term(q("userName", TermMatch::Prefix(p.into())));
    let cases: Vec<(Selection, Vec<String>)> = vec![
        // Every document: counted by complement, paged by walking documents.
        (prefix("user"), naive(|_| true)),
        (prefix("user0"), naive(|i| i < 10_000)),
        (prefix("user01"), naive(|i| (1000..2000).contains(&i))),
        (prefix("nobody"), naive(|_| false)),
        (
            Selection::Term(q(
                "userName",
                TermMatch::Range((
                    Some(Bound {
                        value: "user00100".into(),
                        inclusive: false,
                    }),
                    Some(Bound {
                        value: "user02900".into(),
                        inclusive: true,
                    }),
                )),
            )),
            naive(|i| i > 100 && i <= 2900),
        ),
        // Several terms per document: a distinct count.
        (
            Selection::Term(q("email", TermMatch::Prefix("".into()))),
            naive(|i| i % 3 != 0),
        ),
        // Intersections: a union of two lookups and a body pre-filter.
        (
            Selection::Matching(vec![
                Clause::AnyTerm(vec![
                    q("userName", TermMatch::Prefix("user00".into())),
                    q("email", TermMatch::Exact("a2999@x0".into())),
                ]),
                Clause::BodyContains("manager".into()),
            ]),
            naive(|i| (i < 1000 || i == 2999) && i % 5 == 0),
        ),
        (
            Selection::Matching(vec![
                Clause::BodyContains("manager".into()),
                Clause::AnyTerm(vec![q("email", TermMatch::Contains("9@".into()))]),
            ]),
            naive(|i| i % 5 == 0 && i % 3 != 0 && i % 10 == 9),
        ),
    ];
    for (selection, want) in cases {
        let n = f.store.count("User".into(), selection.clone()).unwrap();
        assert_eq!(n as usize, want.len(), "{selection:?}");
        for (offset, limit) in [(0, 50), (7, 3), (want.len() as u64, 10), (990, 20)] {
            let got = ids(&mut f.store, selection.clone(), offset, limit);
            let expected: Vec<String> = want
                .iter()
                .skip(offset as usize)
                .take(limit as usize)
                .cloned()
                .collect();
            assert_eq!(got, expected, "{selection:?} offset {offset} limit {limit}");
        }
    }
}

fn term_statistics_follow_replaces_and_deletes(backend: Backend) {
    let mut f = fixture(backend);
    // Give every document one email: the name becomes single-valued.
    for i in 0..N {
        let mut d = doc(i, 1);
        d.terms.retain(|t| t.name == "userName");
        d.terms.push(Term {
            name: "email".into(),
            value: format!("only{i:05}"),
            unique: false,
        });
        f.store.replace("User".into(), d, None).unwrap();
    }
    for i in (0..N).step_by(4) {
        f.store
            .delete("User".into(), format!("id{i}"), None)
            .unwrap();
    }
    let stats: (i64, i64) = db(&f.store.conn)
        .unwrap()
        .query_row(
            "SELECT terms, docs FROM term_stats WHERE name = 'email'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let left = (N - N.div_ceil(4)) as i64;
    assert_eq!(stats, (left, left));
    let all = Selection::Term(q("email", TermMatch::Prefix("only".into())));
    assert_eq!(f.store.count("User".into(), all).unwrap() as i64, left);
    let some = Selection::Term(q("email", TermMatch::Prefix("only01".into())));
    assert_eq!(
        f.store.count("User".into(), some).unwrap() as usize,
        (1000..2000).filter(|i| i % 4 != 0).count()
    );
}

/// The terms of document `i` as stored: (rowid, name, value, unique).
fn stored_terms(store: &SqlStore, i: usize) -> Vec<(i64, String, String, bool)> {
    let conn = db(&store.conn).unwrap();
    let mut stmt = conn
        .prepare(
            "SELECT t.rowid, t.name, t.value, t.is_unique FROM terms t
             JOIN documents d ON d.seq = t.seq WHERE d.id = ?1 ORDER BY t.rowid",
        )
        .unwrap();
    stmt.query_map([format!("id{i}")], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
    })
    .unwrap()
    .collect::<crate::db::sql::Result<_>>()
    .unwrap()
}

fn a_replace_rewrites_only_the_terms_that_changed(backend: Backend) {
    let mut f = fixture(backend);
    // Document 4 has a userName and two emails.
    let before = stored_terms(&f.store, 4);
    assert_eq!(before.len(), 3);
    let mut d = doc(4, 0);
    d.terms[2].value = "changed@x".into();
    // A duplicate of a kept term is a term of its own.
    d.terms.push(d.terms[1].clone());
    f.store.replace("User".into(), d, None).unwrap();
    let after = stored_terms(&f.store, 4);
    assert_eq!(after.len(), 4);
    assert_eq!(after[..2], before[..2], "unchanged terms keep their rows");
    assert!(after[2..].iter().all(|t| t.0 > before[2].0));
    let by_value = |v: &str| Selection::Term(q("email", TermMatch::Exact(v.into())));
    assert_eq!(ids(&mut f.store, by_value("changed@x"), 0, 10), ["id4"]);
    assert!(ids(&mut f.store, by_value("b4@x0"), 0, 10).is_empty());

    // A term that becomes unique is rewritten and then guarded.
    let mut d = doc(4, 0);
    d.terms[0].unique = true;
    f.store.replace("User".into(), d, None).unwrap();
    let terms = stored_terms(&f.store, 4);
    assert_eq!(terms.len(), 3);
    assert!(terms.iter().any(|t| t.1 == "userName" && t.3));
    let mut other = doc(5, 0);
    other.terms[0] = Term {
        name: "userName".into(),
        value: "user00004".into(),
        unique: true,
    };
    assert!(matches!(
        f.store.replace("User".into(), other, None),
        Err(StoreError::UniqueViolation(_))
    ));
    assert_eq!(
        stored_terms(&f.store, 5).len(),
        2,
        "a failed replace changes nothing"
    );
}

#[test]
fn a_first_release_database_is_migrated() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("old.db");
    {
        let pool = db::open_file(&path, 1, Checkpoints::InCommit).unwrap();
        let conn = pool.get().unwrap();
        db::add_tenant(&conn, "t").unwrap();
        let mut store = SqlStore::new(conn, 1);
        for i in 0..10 {
            store.insert("User".into(), doc(i, 0)).unwrap();
        }
        let conn = store.into_conn().unwrap();
        // What a database written by the first release looks like.
        conn.execute_batch(
            "DROP TABLE term_stats; DROP INDEX tenants_by_admin_token;
             ALTER TABLE tenants DROP COLUMN admin_token_hash;
             ALTER TABLE tenants DROP COLUMN on_delete;
             ALTER TABLE tenants DROP COLUMN drift;
             ALTER TABLE tenants DROP COLUMN confirm_threshold;
             ALTER TABLE tenants DROP COLUMN plugin_denied_roles;
             ALTER TABLE tenants DROP COLUMN max_concurrent;
             ALTER TABLE tenants DROP COLUMN rate_per_sec;
             DROP TABLE mappings; DROP TABLE mapper_components; DROP TABLE mappers;
             DROP TABLE mapper_failures;
             DROP TABLE learners; DROP TABLE catalogue; DROP TABLE assignments;
             DROP TABLE outbox; DROP TABLE events; DROP TABLE event_names;
             DROP TABLE admin_sessions; DROP TABLE alert_hooks; DROP TABLE alert_deliveries;
             DROP TABLE jobs;
             PRAGMA user_version = 0;",
        )
        .unwrap();
    }
    let pool = db::open_file(&path, 1, Checkpoints::InCommit).unwrap();
    let conn = pool.get().unwrap();
    let stats: Vec<(String, i64, i64)> = conn
        .prepare("SELECT name, terms, docs FROM term_stats ORDER BY name")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<crate::db::sql::Result<_>>()
        .unwrap();
    // Documents 1, 2, 4, 5, 7, 8 have an email; 2, 4, 8 have two.
    assert_eq!(
        stats,
        vec![("email".into(), 9, 6), ("userName".into(), 10, 10)]
    );
    let version: i64 = conn
        .sqlite()
        .unwrap()
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, 8);
    // Migrations 2 and 3 gave the existing tenant its LMS catalogue and a
    // policy.
    let (role, policy, drift): (String, String, String) = conn
        .query_row(
            "SELECT c.name, t.on_delete, t.drift FROM catalogue c JOIN tenants t ON t.id = c.tenant",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        (role.as_str(), policy.as_str(), drift.as_str()),
        ("learner", "suspend", "restore")
    );
    // Migration 4: no plugin, and no role denied to plugins.
    let denied: String = conn
        .query_row("SELECT plugin_denied_roles FROM tenants", [], |r| r.get(0))
        .unwrap();
    assert_eq!(denied, "[]");
    // Migration 6: the server's default share.
    let share: (Option<i64>, Option<f64>) = conn
        .query_row(
            "SELECT max_concurrent, rate_per_sec FROM tenants",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(share, (None, None));
}

fn groups_of_nested_says_which_groups_are_themselves_in_a_group(backend: Backend) {
    let Fixture { mut store, _dir } = fixture(backend);
    let group = |store: &mut SqlStore, id: &str| {
        let mut d = doc(0, 0);
        d.id = id.into();
        d.terms.clear();
        store.insert("Group".into(), d).unwrap();
    };
    group(&mut store, "g1");
    group(&mut store, "g2");
    group(&mut store, "g3");
    let add = |store: &mut SqlStore, g: &str, id: &str, kind: &str| {
        let member = MemberRef {
            id: id.into(),
            kind: kind.into(),
        };
        store
            .members_add("Group".into(), g.into(), vec![member])
            .unwrap();
    };
    // id0 is in g1 and g3; g1 is in g2.
    add(&mut store, "g1", "id0", "User");
    add(&mut store, "g3", "id0", "User");
    add(&mut store, "g2", "g1", "Group");
    let nested = |store: &mut SqlStore, members: &[&str]| {
        let members = members.iter().map(|m| m.to_string()).collect();
        store
            .groups_of_nested("Group".into(), members)
            .unwrap()
            .into_iter()
            .map(|(m, g, n)| (m, g.id, n))
            .collect::<Vec<_>>()
    };
    let t = |m: &str, g: &str, n: bool| (m.to_string(), g.to_string(), n);
    // One member (its own statement) and several (the IN list) agree.
    let direct = vec![t("id0", "g1", true), t("id0", "g3", false)];
    assert_eq!(nested(&mut store, &["id0"]), direct);
    assert_eq!(nested(&mut store, &["id0", "id1"]), direct);
    assert_eq!(nested(&mut store, &["g1"]), vec![t("g1", "g2", false)]);
    assert_eq!(nested(&mut store, &["id1"]), vec![]);
    // groups-of lists the same pairs.
    let plain = store.groups_of("Group".into(), vec!["id0".into()]).unwrap();
    let plain: Vec<_> = plain.into_iter().map(|(m, g)| (m, g.id)).collect();
    assert_eq!(
        plain,
        vec![("id0".into(), "g1".into()), ("id0".into(), "g3".into())]
    );
}
