//! The WIT `store` interface over SQLite, scoped to one tenant and running
//! inside the request's transaction. It matches index terms as opaque
//! strings and knows nothing of SCIM. [`SqlStore`] also carries the
//! request's [`Journal`] for the `lms`, `outbox` and `sync-log` imports.

use std::collections::HashMap;

use crate::db::sql::{Connection, OptionalExtension, ToSql, params, params_from_iter};

use crate::bindings::lms::scim::store::{
    self as wit, Document, MemberEntry, MemberRef, NewDocument, Page, Selection, StoreError, Term,
    TermMatch, Written,
};
use crate::db::Conn;

/// Store calls made by one request, for the log line.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stats {
    pub calls: u32,
    pub rows: u64,
}

/// One request's view of the database.
pub struct SqlStore {
    /// `None` for the detached store used while rendering host errors.
    conn: Option<Conn>,
    tenant: i64,
    savepoints: u32,
    pub stats: Stats,
    /// Counts of term selections computed in this request, until the next
    /// write: a walk over a selection asks for one page at a time.
    counts: HashMap<String, u64>,
    pub journal: Journal,
    /// Which mapping plugin the `plugin` import runs, if any.
    pub plugin: Option<super::plugin::PluginCtx>,
}

/// What the engine recorded during one request or background batch, kept
/// until the host commits it.
#[derive(Debug, Default)]
pub struct Journal {
    /// Shared by everything one request caused, its background re-mapping
    /// included.
    pub change_id: String,
    /// Sync-log events, written just before commit.
    pub events: Vec<crate::events::EventRow>,
    /// Outbox tasks queued.
    pub enqueued: u32,
    /// LMS effects applied, by kind.
    pub effects: HashMap<&'static str, u64>,
    /// Set when an import could not do its part; the host must roll back.
    pub failed: Option<String>,
    /// Index in `events` of each learner's event, so that everything one
    /// request or batch does to a learner is one event.
    learner_events: HashMap<String, usize>,
}

impl Journal {
    /// Room for `n` more learner events, so a batch's thousands of events
    /// do not rehash the index as it grows.
    pub fn reserve(&mut self, n: usize) {
        self.events.reserve(n);
        self.learner_events.reserve(n);
    }

    /// Adds what one change did to a learner, merging it into the event of
    /// an earlier change to the same learner. The action says the most
    /// telling thing that happened: create, then a status change, then update.
    pub fn learner_event(&mut self, row: crate::events::EventRow) {
        let rank = |a: &str| match a {
            "create" => 3,
            "suspend" | "reactivate" | "remove" => 2,
            _ => 1,
        };
        match self.learner_events.get(&row.resource_id) {
            Some(&i) => {
                let e = &mut self.events[i];
                if rank(&row.action) > rank(&e.action) {
                    e.action = row.action;
                }
                if e.resource_name.is_none() {
                    e.resource_name = row.resource_name;
                }
                e.changes.extend(row.changes);
            }
            None => {
                self.learner_events
                    .insert(row.resource_id.clone(), self.events.len());
                self.events.push(row);
            }
        }
    }
}

type R<T> = Result<T, StoreError>;

fn unavailable(e: crate::db::sql::Error) -> StoreError {
    StoreError::Unavailable(e.to_string())
}

fn is_unique_violation(e: &crate::db::sql::Error) -> bool {
    e.is_unique_violation()
}

/// `body-contains`: `LIKE` compares ASCII letters case-insensitively and
/// nothing else, so bodies that are not pure ASCII (flagged when written)
/// are always included and left to the engine.
const BODY_CONTAINS: &str = "(d.ascii = 0 OR d.body LIKE ? ESCAPE '\\')";

/// The `LIKE` pattern for a substring, with its wildcards escaped.
fn like_pattern(needle: &str) -> String {
    let mut p = String::with_capacity(needle.len() + 2);
    p.push('%');
    for c in needle.chars() {
        if matches!(c, '%' | '_' | '\\') {
            p.push('\\');
        }
        p.push(c);
    }
    p.push('%');
    p
}

/// A member entry from the columns `id, kind, label, seq` starting at `at`.
fn member_entry(r: &crate::db::sql::Row<'_>, at: usize) -> crate::db::sql::Result<MemberEntry> {
    Ok(MemberEntry {
        id: r.get(at)?,
        kind: r.get(at + 1)?,
        label: r.get(at + 2)?,
        seq: r.get::<_, i64>(at + 3)? as u64,
    })
}

/// The SQL condition for a selection over `terms` (as `t`), with its
/// parameters appended to `args`.
fn term_condition(q: &wit::TermQuery, args: &mut Vec<Box<dyn ToSql>>) -> String {
    args.push(Box::new(q.name.clone()));
    let mut cond = String::from("t.name = ?");
    match &q.match_ {
        TermMatch::Exact(v) => {
            cond.push_str(" AND t.value = ?");
            args.push(Box::new(v.clone()));
        }
        TermMatch::Prefix(p) => {
            // A range the index can walk, then the exact prefix test.
            cond.push_str(
                " AND t.value >= ? AND t.value < ? AND substr(t.value, 1, length(?)) = ?",
            );
            args.push(Box::new(p.clone()));
            args.push(Box::new(format!("{p}\u{10FFFF}")));
            args.push(Box::new(p.clone()));
            args.push(Box::new(p.clone()));
        }
        TermMatch::Contains(s) => {
            cond.push_str(" AND instr(t.value, ?) > 0");
            args.push(Box::new(s.clone()));
        }
        TermMatch::Range((lo, hi)) => {
            if let Some(b) = lo {
                cond.push_str(if b.inclusive {
                    " AND t.value >= ?"
                } else {
                    " AND t.value > ?"
                });
                args.push(Box::new(b.value.clone()));
            }
            if let Some(b) = hi {
                cond.push_str(if b.inclusive {
                    " AND t.value <= ?"
                } else {
                    " AND t.value < ?"
                });
                args.push(Box::new(b.value.clone()));
            }
        }
    }
    cond
}

/// `FROM … WHERE …` (ending in a condition, so more can follow with `AND`)
/// over the documents `d` that pass every clause. The `driver` clause (an
/// `any-term` one; see [`SqlStore::driver`]) drives: its terms' documents
/// are collected (a union when it has several queries) and joined to
/// `documents` by seq; every other clause is checked on those rows only.
fn matching_from(
    tenant: i64,
    kind: &str,
    clauses: &[wit::Clause],
    driver: Option<usize>,
    args: &mut Vec<Box<dyn ToSql>>,
) -> String {
    let mut sql = match driver.map(|i| &clauses[i]) {
        Some(wit::Clause::AnyTerm(queries)) if !queries.is_empty() => {
            // One row per document: a document may hold several matching
            // terms (two work emails); `UNION` merges them across parts,
            // `DISTINCT` within a lone part.
            let select = if queries.len() == 1 {
                "SELECT DISTINCT t.seq"
            } else {
                "SELECT t.seq"
            };
            let parts: Vec<String> = queries
                .iter()
                .map(|q| {
                    args.push(Box::new(tenant));
                    args.push(Box::new(kind.to_string()));
                    let cond = term_condition(q, args);
                    format!("{select} FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {cond}")
                })
                .collect();
            let union = parts.join(" UNION ");
            format!("FROM ({union}) m CROSS JOIN documents d ON d.seq = m.seq WHERE TRUE")
        }
        _ => {
            args.push(Box::new(tenant));
            args.push(Box::new(kind.to_string()));
            "FROM documents d WHERE d.tenant = ? AND d.kind = ?".to_string()
        }
    };
    for (i, clause) in clauses.iter().enumerate() {
        if Some(i) == driver {
            continue;
        }
        match clause {
            wit::Clause::AnyTerm(queries) if queries.is_empty() => sql.push_str(" AND FALSE"),
            wit::Clause::AnyTerm(queries) => {
                // An exact value is one seek in the lookup index; the others
                // test the document's own terms.
                let (exact, other): (Vec<_>, Vec<_>) = queries
                    .iter()
                    .partition(|q| matches!(q.match_, TermMatch::Exact(_)));
                let mut any: Vec<String> = exact
                    .iter()
                    .map(|q| {
                        args.push(Box::new(tenant));
                        args.push(Box::new(kind.to_string()));
                        let cond = term_condition(q, args);
                        format!(
                            "EXISTS (SELECT 1 FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {cond} AND t.seq = d.seq)"
                        )
                    })
                    .collect();
                if !other.is_empty() {
                    let conds: Vec<String> = other
                        .iter()
                        .map(|q| format!("({})", term_condition(q, args)))
                        .collect();
                    any.push(format!(
                        "EXISTS (SELECT 1 FROM terms t WHERE t.seq = d.seq AND ({}))",
                        conds.join(" OR ")
                    ));
                }
                sql.push_str(&format!(" AND ({})", any.join(" OR ")));
            }
            wit::Clause::BodyContains(needle) => {
                sql.push_str(&format!(" AND {BODY_CONTAINS}"));
                args.push(Box::new(like_pattern(needle)));
            }
        }
    }
    sql
}

/// Terms counted at most, per query, to tell which clause of a
/// [`Selection::Matching`] is narrowest.
const DRIVER_ESTIMATE_CAP: i64 = 2000;

/// Matching terms counted one by one before the count switches to
/// counting the terms outside the range.
const DIRECT_COUNT_CAP: i64 = 2000;

/// A range end: the value, and whether it is inside the range.
type End = Option<(String, bool)>;

/// The values a match covers, as a range in the host's byte order (`None`
/// for `contains`, which is not one). A prefix ends before the prefix
/// followed by the largest character, as in [`term_condition`].
fn value_range(m: &TermMatch) -> Option<(End, End)> {
    match m {
        TermMatch::Exact(v) => Some((Some((v.clone(), true)), Some((v.clone(), true)))),
        TermMatch::Prefix(p) => Some((
            Some((p.clone(), true)),
            Some((format!("{p}\u{10FFFF}"), false)),
        )),
        TermMatch::Range((lo, hi)) => {
            let end = |b: &Option<wit::Bound>| b.as_ref().map(|b| (b.value.clone(), b.inclusive));
            Some((end(lo), end(hi)))
        }
        TermMatch::Contains(_) => None,
    }
}

/// The connection, unless the store is detached.
fn db(conn: &Option<Conn>) -> R<&Conn> {
    conn.as_ref()
        .ok_or_else(|| StoreError::Unavailable("no database in this context".into()))
}

impl SqlStore {
    pub fn new(conn: Conn, tenant: i64) -> Self {
        SqlStore {
            conn: Some(conn),
            tenant,
            savepoints: 0,
            stats: Stats::default(),
            counts: HashMap::new(),
            journal: Journal::default(),
            plugin: None,
        }
    }

    /// Lets the `plugin` import run plugins (see [`super::plugin::PluginMode`]).
    pub fn with_plugins(
        mut self,
        plugins: std::sync::Arc<crate::sandbox::plugin::Plugins>,
        mode: super::plugin::PluginMode,
    ) -> Self {
        self.plugin = Some(super::plugin::PluginCtx::new(plugins, mode));
        self
    }

    /// The request's change id (the request id, or the originating request's
    /// for background work).
    pub fn with_change_id(mut self, change_id: &str) -> Self {
        self.journal.change_id = change_id.to_string();
        self
    }

    /// The connection, unless detached.
    pub fn conn_ref(&self) -> Option<&crate::db::sql::Connection> {
        self.conn.as_deref()
    }

    /// The tenant every call is scoped to.
    pub fn tenant(&self) -> i64 {
        self.tenant
    }

    /// A store with no database, for instances that only render errors.
    pub fn detached() -> Self {
        SqlStore {
            conn: None,
            tenant: 0,
            savepoints: 0,
            stats: Stats::default(),
            counts: HashMap::new(),
            journal: Journal::default(),
            plugin: None,
        }
    }

    /// Gives the connection back (to commit or roll back).
    pub fn into_conn(self) -> Option<Conn> {
        self.conn
    }

    fn seq_of(&self, kind: &str, id: &str) -> R<Option<(i64, u64)>> {
        db(&self.conn)?
            .prepare_cached(
                "SELECT seq, version FROM documents WHERE tenant = ?1 AND kind = ?2 AND id = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![self.tenant, kind, id], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(unavailable)
    }

    /// The seq of a document of any kind by id.
    fn seq_of_any(&self, id: &str) -> R<Option<i64>> {
        db(&self.conn)?
            .prepare_cached("SELECT seq FROM documents WHERE tenant = ?1 AND id = ?2 LIMIT 1")
            .and_then(|mut s| {
                s.query_row(params![self.tenant, id], |r| r.get(0))
                    .optional()
            })
            .map_err(unavailable)
    }

    fn group_seq(&self, kind: &str, id: &str) -> R<i64> {
        self.seq_of(kind, id)?
            .map(|(s, _)| s)
            .ok_or(StoreError::NotFound)
    }

    /// Runs `f` inside a savepoint so a failed write changes nothing.
    fn atomic<T>(&mut self, f: impl FnOnce(&Connection, i64) -> R<T>) -> R<T> {
        self.stats.calls += 1;
        self.counts.clear();
        let tenant = self.tenant;
        let conn = self
            .conn
            .as_mut()
            .ok_or_else(|| StoreError::Unavailable("no database in this context".into()))?;
        let sp = conn.savepoint().map_err(unavailable)?;
        let out = f(&sp, tenant)?;
        sp.commit().map_err(unavailable)?;
        Ok(out)
    }

    fn adjust_count(conn: &Connection, tenant: i64, kind: &str, by: i64) -> R<()> {
        conn.prepare_cached(
            "INSERT INTO kind_counts (tenant, kind, n) VALUES (?1, ?2, ?3)
             ON CONFLICT (tenant, kind) DO UPDATE SET n = kind_counts.n + excluded.n",
        )
        .and_then(|mut s| s.execute(params![tenant, kind, by]))
        .map(|_| ())
        .map_err(unavailable)
    }

    /// Per term name of one document: how many terms it has.
    fn names_of_new(doc: &NewDocument) -> HashMap<&str, i64> {
        let mut m = HashMap::new();
        for t in &doc.terms {
            *m.entry(t.name.as_str()).or_insert(0) += 1;
        }
        m
    }

    /// Per term name of a stored document: how many terms it has.
    fn names_of_stored(conn: &Connection, seq: i64) -> R<HashMap<String, i64>> {
        conn.prepare_cached("SELECT name, count(*) FROM terms WHERE seq = ?1 GROUP BY name")
            .and_then(|mut s| {
                s.query_map([seq], |r| Ok((r.get(0)?, r.get(1)?)))?
                    .collect::<crate::db::sql::Result<HashMap<String, i64>>>()
            })
            .map_err(unavailable)
    }

    /// Moves `term_stats` from a document's old per-name term counts to its
    /// new ones, touching only the names whose counts changed.
    fn update_term_stats(
        conn: &Connection,
        tenant: i64,
        kind: &str,
        old: &HashMap<String, i64>,
        new: &HashMap<&str, i64>,
    ) -> R<()> {
        let mut stmt = conn
            .prepare_cached(
                "INSERT INTO term_stats (tenant, kind, name, terms, docs) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, kind, name) DO UPDATE
                 SET terms = term_stats.terms + excluded.terms, docs = term_stats.docs + excluded.docs",
            )
            .map_err(unavailable)?;
        let names = old
            .keys()
            .map(String::as_str)
            .chain(new.keys().copied())
            .collect::<std::collections::BTreeSet<&str>>();
        for name in names {
            let (o, n) = (
                old.get(name).copied().unwrap_or(0),
                new.get(name).copied().unwrap_or(0),
            );
            if o == n {
                continue;
            }
            let docs = i64::from(n > 0) - i64::from(o > 0);
            stmt.execute(params![tenant, kind, name, n - o, docs])
                .map_err(unavailable)?;
        }
        Ok(())
    }

    /// Brings a stored document's terms to `doc`'s, deleting and inserting
    /// only the terms that differ: a PATCH of one attribute rewrites one
    /// term's index entries, not every term's (each a page of the log).
    /// Returns the old per-name term counts, for `update_term_stats`.
    fn rewrite_terms(
        conn: &Connection,
        tenant: i64,
        kind: &str,
        seq: i64,
        doc: &NewDocument,
    ) -> R<HashMap<String, i64>> {
        let stored: Vec<(i64, String, String, bool)> = conn
            .prepare_cached("SELECT rowid, name, value, is_unique FROM terms WHERE seq = ?1")
            .and_then(|mut s| {
                s.query_map([seq], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?
                    .collect()
            })
            .map_err(unavailable)?;
        let mut old_names: HashMap<String, i64> = HashMap::new();
        // Stored terms by content; each new term equal to one keeps it.
        let mut unmatched: HashMap<(&str, &str, bool), Vec<i64>> = HashMap::new();
        for (rowid, name, value, unique) in &stored {
            *old_names.entry(name.clone()).or_insert(0) += 1;
            unmatched
                .entry((name.as_str(), value.as_str(), *unique))
                .or_default()
                .push(*rowid);
        }
        let added: Vec<&Term> = doc
            .terms
            .iter()
            .filter(|t| {
                unmatched
                    .get_mut(&(t.name.as_str(), t.value.as_str(), t.unique))
                    .and_then(Vec::pop)
                    .is_none()
            })
            .collect();
        // Deletions first, so a unique term that moved within the document
        // does not collide with itself.
        let mut delete = conn
            .prepare_cached("DELETE FROM terms WHERE rowid = ?1")
            .map_err(unavailable)?;
        for rowid in unmatched.values().flatten() {
            delete.execute([rowid]).map_err(unavailable)?;
        }
        Self::insert_terms(conn, tenant, kind, seq, added)?;
        Ok(old_names)
    }

    fn insert_terms<'t>(
        conn: &Connection,
        tenant: i64,
        kind: &str,
        seq: i64,
        terms: impl IntoIterator<Item = &'t Term>,
    ) -> R<()> {
        let mut stmt = conn
            .prepare_cached("INSERT INTO terms (tenant, kind, name, value, seq, is_unique) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
            .map_err(unavailable)?;
        for t in terms {
            stmt.execute(params![tenant, kind, t.name, t.value, seq, t.unique])
                .map_err(|e| {
                    if is_unique_violation(&e) {
                        StoreError::UniqueViolation(t.name.clone())
                    } else {
                        unavailable(e)
                    }
                })?;
        }
        Ok(())
    }

    fn select_docs(
        &mut self,
        kind: &str,
        selection: &Selection,
        page: Page,
        bodies: bool,
    ) -> R<Vec<(String, i64, u64, String)>> {
        self.stats.calls += 1;
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        if !matches!(selection, Selection::Matching(_)) {
            args.push(Box::new(self.tenant));
            args.push(Box::new(kind.to_string()));
        }
        let (cmp, order) = if page.descending {
            ("<", "DESC")
        } else {
            (">", "ASC")
        };
        let after = page.after.map(|a| a as i64);
        let cols = if bodies {
            "d.id, d.seq, d.version, d.body"
        } else {
            "d.id, d.seq, 0, ''"
        };
        let sql = match selection {
            Selection::All | Selection::BodyContains(_) => {
                let mut sql =
                    format!("SELECT {cols} FROM documents d WHERE d.tenant = ? AND d.kind = ?");
                if let Selection::BodyContains(needle) = selection {
                    sql.push_str(&format!(" AND {BODY_CONTAINS}"));
                    args.push(Box::new(like_pattern(needle)));
                }
                if let Some(a) = after {
                    sql.push_str(&format!(" AND d.seq {cmp} ?"));
                    args.push(Box::new(a));
                }
                sql.push_str(&format!(" ORDER BY d.seq {order} LIMIT ? OFFSET ?"));
                sql
            }
            Selection::Matching(clauses) => {
                let mut sql = format!("SELECT {cols} ");
                let driver = self.driver(kind, clauses)?;
                sql.push_str(&matching_from(
                    self.tenant,
                    kind,
                    clauses,
                    driver,
                    &mut args,
                ));
                if let Some(a) = after {
                    sql.push_str(&format!(" AND d.seq {cmp} ?"));
                    args.push(Box::new(a));
                }
                sql.push_str(&format!(" ORDER BY d.seq {order} LIMIT ? OFFSET ?"));
                sql
            }
            Selection::Term(q) if self.walk_documents(kind, q, &page)? => {
                // Most documents match: walk them in seq order and keep
                // those with a matching term, instead of sorting every match.
                let cond = term_condition(q, &mut args);
                let mut sql = format!(
                    "SELECT {cols} FROM documents d WHERE d.tenant = ? AND d.kind = ?
                     AND EXISTS (SELECT 1 FROM terms t WHERE t.seq = d.seq AND {cond})"
                );
                if let Some(a) = after {
                    sql.push_str(&format!(" AND d.seq {cmp} ?"));
                    args.push(Box::new(a));
                }
                sql.push_str(&format!(" ORDER BY d.seq {order} LIMIT ? OFFSET ?"));
                sql
            }
            Selection::Term(q) => {
                let cond = term_condition(q, &mut args);
                let mut inner = format!(
                    "SELECT DISTINCT t.seq FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {cond}"
                );
                if let Some(a) = after {
                    inner.push_str(&format!(" AND t.seq {cmp} ?"));
                    args.push(Box::new(a));
                }
                inner.push_str(&format!(" ORDER BY t.seq {order} LIMIT ? OFFSET ?"));
                format!(
                    "SELECT {cols} FROM ({inner}) m JOIN documents d ON d.seq = m.seq ORDER BY d.seq {order}"
                )
            }
        };
        args.push(Box::new(page.limit as i64));
        args.push(Box::new(page.offset as i64));
        let mut stmt = db(&self.conn)?.prepare_cached(&sql).map_err(unavailable)?;
        let rows = stmt
            .query_map(params_from_iter(args.iter()), |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
            })
            .and_then(|rows| rows.collect::<crate::db::sql::Result<Vec<_>>>())
            .map_err(unavailable)?;
        self.stats.rows += rows.len() as u64;
        Ok(rows)
    }

    /// Whether a page of a term selection is cheaper to find by walking the
    /// kind's documents in seq order (expected visits: the rows wanted times
    /// documents per match) than by reading and sorting every matching term.
    /// An exact match is read from the index in seq order either way.
    fn walk_documents(&mut self, kind: &str, q: &wit::TermQuery, page: &Page) -> R<bool> {
        if matches!(q.match_, TermMatch::Exact(_)) {
            return Ok(false);
        }
        let matches = self.count_term(kind, q)?;
        if matches == 0 {
            return Ok(false);
        }
        let documents = self.kind_total(kind)?;
        let wanted = page.offset.saturating_add(u64::from(page.limit));
        Ok(wanted.saturating_mul(documents) / matches < matches)
    }

    /// Documents of a kind, from the counts every insert and delete keep.
    fn kind_total(&self, kind: &str) -> R<u64> {
        db(&self.conn)?
            .prepare_cached(
                "SELECT coalesce((SELECT n FROM kind_counts WHERE tenant = ?1 AND kind = ?2), 0)",
            )
            .and_then(|mut s| s.query_row(params![self.tenant, kind], |r| r.get::<_, i64>(0)))
            .map(|n| n.max(0) as u64)
            .map_err(unavailable)
    }

    /// The clause of a [`Selection::Matching`] whose terms are fewest, to
    /// drive its query: the engine orders clauses by the kind of lookup
    /// (`eq` before `sw`), which cannot know that `sw "a"` matches ten users
    /// and `active eq false` ten thousand. Each query's terms are counted up
    /// to [`DRIVER_ESTIMATE_CAP`]; ties keep the engine's order. The
    /// estimates last until the next write, like term counts.
    fn driver(&mut self, kind: &str, clauses: &[wit::Clause]) -> R<Option<usize>> {
        let candidates: Vec<usize> = clauses
            .iter()
            .enumerate()
            .filter(|(_, c)| matches!(c, wit::Clause::AnyTerm(qs) if !qs.is_empty()))
            .map(|(i, _)| i)
            .collect();
        if candidates.len() < 2 {
            return Ok(candidates.first().copied());
        }
        let mut best: Option<(usize, u64)> = None;
        for i in candidates {
            let wit::Clause::AnyTerm(queries) = &clauses[i] else {
                continue;
            };
            let mut estimate = 0u64;
            for q in queries {
                let key = format!("estimate\u{0}{kind}\u{0}{}\u{0}{:?}", q.name, q.match_);
                let n = match self.counts.get(&key) {
                    Some(n) => *n,
                    None => {
                        let mut args: Vec<Box<dyn ToSql>> =
                            vec![Box::new(self.tenant), Box::new(kind.to_string())];
                        let cond = term_condition(q, &mut args);
                        args.push(Box::new(DRIVER_ESTIMATE_CAP));
                        let n: i64 = db(&self.conn)?
                            .prepare_cached(&format!(
                                "SELECT count(*) FROM (SELECT 1 FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {cond} LIMIT ?) c"
                            ))
                            .and_then(|mut s| {
                                s.query_row(params_from_iter(args.iter()), |r| r.get(0))
                            })
                            .map_err(unavailable)?;
                        self.counts.insert(key, n as u64);
                        n as u64
                    }
                };
                estimate += n;
            }
            if best.is_none_or(|(_, b)| estimate < b) {
                best = Some((i, estimate));
            }
        }
        Ok(best.map(|(i, _)| i))
    }

    /// Documents with a term matching `q`. When every document carries at
    /// most one term of the name (`term_stats`) and the match is a value
    /// range, a large count is the total minus the terms outside the range,
    /// which the index counts in O(outside): a prefix that matches a million
    /// users costs no more than one that matches fifty.
    fn count_term(&mut self, kind: &str, q: &wit::TermQuery) -> R<u64> {
        let key = format!("{kind}\u{0}{}\u{0}{:?}", q.name, q.match_);
        if let Some(n) = self.counts.get(&key) {
            return Ok(*n);
        }
        let conn = db(&self.conn)?;
        let stats: Option<(i64, i64)> = conn
            .prepare_cached(
                "SELECT terms, docs FROM term_stats WHERE tenant = ?1 AND kind = ?2 AND name = ?3",
            )
            .and_then(|mut s| {
                s.query_row(params![self.tenant, kind, q.name], |r| {
                    Ok((r.get(0)?, r.get(1)?))
                })
                .optional()
            })
            .map_err(unavailable)?;
        let count = |sql: &str, args: Vec<Box<dyn ToSql>>| -> R<i64> {
            conn.prepare_cached(sql)
                .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get(0)))
                .map_err(unavailable)
        };
        let scope = |tenant: i64| -> Vec<Box<dyn ToSql>> {
            vec![Box::new(tenant), Box::new(kind.to_string())]
        };
        let n = match (stats, value_range(&q.match_)) {
            (Some((terms, docs)), Some((lo, hi))) if terms == docs => {
                let mut args = scope(self.tenant);
                let cond = term_condition(q, &mut args);
                args.push(Box::new(DIRECT_COUNT_CAP));
                let direct = count(
                    &format!(
                        "SELECT count(*) FROM (SELECT 1 FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {cond} LIMIT ?) c"
                    ),
                    args,
                )?;
                if direct < DIRECT_COUNT_CAP {
                    direct
                } else {
                    let mut outside = 0;
                    for (bound, below) in [(lo, true), (hi, false)] {
                        let Some((value, inclusive)) = bound else {
                            continue;
                        };
                        let op = match (below, inclusive) {
                            (true, true) => "<",
                            (true, false) => "<=",
                            (false, true) => ">",
                            (false, false) => ">=",
                        };
                        let mut args = scope(self.tenant);
                        args.push(Box::new(q.name.clone()));
                        args.push(Box::new(value));
                        outside += count(
                            &format!(
                                "SELECT count(*) FROM terms t WHERE t.tenant = ? AND t.kind = ? AND t.name = ? AND t.value {op} ?"
                            ),
                            args,
                        )?;
                    }
                    terms - outside
                }
            }
            (None, _) => 0,
            _ => {
                let mut args = scope(self.tenant);
                let cond = term_condition(q, &mut args);
                count(
                    &format!(
                        "SELECT count(DISTINCT t.seq) FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {cond}"
                    ),
                    args,
                )?
            }
        };
        let n = n.max(0) as u64;
        self.counts.insert(key, n);
        Ok(n)
    }

    fn entries(&mut self, sql: &str, args: &[&dyn ToSql]) -> R<Vec<MemberEntry>> {
        self.stats.calls += 1;
        let mut stmt = db(&self.conn)?.prepare_cached(sql).map_err(unavailable)?;
        let rows = stmt
            .query_map(args, |r| member_entry(r, 0))
            .and_then(|rows| rows.collect::<crate::db::sql::Result<Vec<_>>>())
            .map_err(unavailable)?;
        self.stats.rows += rows.len() as u64;
        Ok(rows)
    }
}

impl wit::Host for SqlStore {
    fn get(&mut self, kind: String, id: String) -> R<Option<Document>> {
        self.stats.calls += 1;
        let doc = db(&self.conn)?
            .prepare_cached("SELECT id, seq, version, body FROM documents WHERE tenant = ?1 AND kind = ?2 AND id = ?3")
            .and_then(|mut stmt| stmt.query_row(params![self.tenant, kind, id], document).optional())
            .map_err(unavailable)?;
        self.stats.rows += u64::from(doc.is_some());
        Ok(doc)
    }

    fn get_many(&mut self, kind: String, ids: Vec<String>) -> R<Vec<Document>> {
        self.stats.calls += 1;
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(crate::db::IN_LIST_CHUNK) {
            let marks = crate::db::placeholders(chunk.len());
            let sql = format!(
                "SELECT id, seq, version, body FROM documents WHERE tenant = ? AND kind = ? AND id IN ({marks})"
            );
            let mut args: Vec<&dyn ToSql> = vec![&self.tenant, &kind];
            args.extend(chunk.iter().map(|id| id as &dyn ToSql));
            let mut stmt = db(&self.conn)?.prepare_cached(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(args.as_slice(), document)
                .map_err(unavailable)?;
            for doc in rows {
                out.push(doc.map_err(unavailable)?);
            }
        }
        self.stats.rows += out.len() as u64;
        Ok(out)
    }

    fn insert(&mut self, kind: String, doc: NewDocument) -> R<Written> {
        self.atomic(|conn, tenant| {
            // The new `seq` is the rowid just assigned (`RETURNING` would
            // build and tear down an ephemeral table on every insert).
            const INSERT: &str = "INSERT INTO documents (tenant, kind, id, version, label, body, ascii) VALUES (?1, ?2, ?3, 1, ?4, ?5, ?6)";
            let args = params![tenant, kind, doc.id, doc.label, doc.body, doc.body.is_ascii()];
            let conflict = |e| if is_unique_violation(&e) { StoreError::Conflict(0) } else { unavailable(e) };
            let seq: i64 = match conn.sqlite() {
                Some(c) => {
                    conn.prepare_cached(INSERT).and_then(|mut s| s.execute(args)).map_err(conflict)?;
                    c.last_insert_rowid()
                }
                // One round trip on PostgreSQL.
                None => conn
                    .query_row(&format!("{INSERT} RETURNING seq"), args, |r| r.get(0))
                    .map_err(conflict)?,
            };
            Self::insert_terms(conn, tenant, &kind, seq, &doc.terms)?;
            Self::update_term_stats(conn, tenant, &kind, &HashMap::new(), &Self::names_of_new(&doc))?;
            Self::adjust_count(conn, tenant, &kind, 1)?;
            Ok(Written { seq: seq as u64, version: 1 })
        })
    }

    fn replace(
        &mut self,
        kind: String,
        doc: NewDocument,
        expected_version: Option<u64>,
    ) -> R<Written> {
        let (seq, current) = self.seq_of(&kind, &doc.id)?.ok_or(StoreError::NotFound)?;
        if expected_version.is_some_and(|v| v != current) {
            return Err(StoreError::Conflict(current));
        }
        self.atomic(|conn, tenant| {
            conn.prepare_cached(
                "UPDATE documents SET version = version + 1, label = ?2, body = ?3, ascii = ?4 WHERE seq = ?1",
            )
            .and_then(|mut s| s.execute(params![seq, doc.label, doc.body, doc.body.is_ascii()]))
            .map_err(unavailable)?;
            let old = Self::rewrite_terms(conn, tenant, &kind, seq, &doc)?;
            Self::update_term_stats(conn, tenant, &kind, &old, &Self::names_of_new(&doc))?;
            Ok(Written {
                seq: seq as u64,
                version: current + 1,
            })
        })
    }

    fn delete(&mut self, kind: String, id: String, expected_version: Option<u64>) -> R<()> {
        let (seq, current) = self.seq_of(&kind, &id)?.ok_or(StoreError::NotFound)?;
        if expected_version.is_some_and(|v| v != current) {
            return Err(StoreError::Conflict(current));
        }
        self.atomic(|conn, tenant| {
            let old = Self::names_of_stored(conn, seq)?;
            Self::update_term_stats(conn, tenant, &kind, &old, &HashMap::new())?;
            for sql in [
                "DELETE FROM terms WHERE seq = ?1",
                "DELETE FROM members WHERE group_seq = ?1",
                "DELETE FROM members WHERE member_seq = ?1",
                "DELETE FROM documents WHERE seq = ?1",
            ] {
                conn.prepare_cached(sql)
                    .and_then(|mut s| s.execute([seq]))
                    .map_err(unavailable)?;
            }
            Self::adjust_count(conn, tenant, &kind, -1)
        })
    }

    fn scan(&mut self, kind: String, selection: Selection, page: Page) -> R<Vec<Document>> {
        Ok(self
            .select_docs(&kind, &selection, page, true)?
            .into_iter()
            .map(|(id, seq, version, body)| Document {
                id,
                seq: seq as u64,
                version,
                body,
            })
            .collect())
    }

    fn scan_keys(
        &mut self,
        kind: String,
        selection: Selection,
        page: Page,
    ) -> R<Vec<(String, u64)>> {
        Ok(self
            .select_docs(&kind, &selection, page, false)?
            .into_iter()
            .map(|(id, seq, _, _)| (id, seq as u64))
            .collect())
    }

    fn count(&mut self, kind: String, selection: Selection) -> R<u64> {
        self.stats.calls += 1;
        let mut args: Vec<Box<dyn ToSql>> = Vec::new();
        let sql = match &selection {
            Selection::All => return self.kind_total(&kind),
            Selection::Term(q) => return self.count_term(&kind, q),
            Selection::BodyContains(needle) => {
                args.push(Box::new(self.tenant));
                args.push(Box::new(kind.clone()));
                args.push(Box::new(like_pattern(needle)));
                format!(
                    "SELECT count(*) FROM documents d WHERE d.tenant = ? AND d.kind = ? AND {BODY_CONTAINS}"
                )
            }
            Selection::Matching(clauses) => {
                let driver = self.driver(&kind, clauses)?;
                format!(
                    "SELECT count(*) {}",
                    matching_from(self.tenant, &kind, clauses, driver, &mut args)
                )
            }
        };
        db(&self.conn)?
            .prepare_cached(&sql)
            .and_then(|mut s| s.query_row(params_from_iter(args.iter()), |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .map_err(unavailable)
    }

    fn savepoint(&mut self) -> R<u32> {
        self.savepoints += 1;
        let n = self.savepoints;
        db(&self.conn)?
            .execute_batch(&format!("SAVEPOINT engine_{n}"))
            .map_err(unavailable)?;
        Ok(n)
    }

    fn rollback_to(&mut self, savepoint: u32) -> R<()> {
        self.counts.clear();
        db(&self.conn)?
            .execute_batch(&format!(
                "ROLLBACK TO engine_{savepoint}; RELEASE engine_{savepoint}"
            ))
            .map_err(unavailable)
    }

    fn release(&mut self, savepoint: u32) -> R<()> {
        db(&self.conn)?
            .execute_batch(&format!("RELEASE engine_{savepoint}"))
            .map_err(unavailable)
    }

    fn members_add(
        &mut self,
        group_kind: String,
        group: String,
        members: Vec<MemberRef>,
    ) -> R<Vec<String>> {
        let g = self.group_seq(&group_kind, &group)?;
        let mut seqs = Vec::with_capacity(members.len());
        let mut missing = Vec::new();
        for m in &members {
            match self.seq_of(&m.kind, &m.id)? {
                Some((s, _)) => seqs.push((s, &m.id)),
                None => missing.push(m.id.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(StoreError::Missing(missing));
        }
        self.atomic(|conn, _| {
            let mut stmt = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO members (group_seq, member_seq) VALUES (?1, ?2)",
                )
                .map_err(unavailable)?;
            let mut added = Vec::new();
            for (s, id) in seqs {
                if stmt.execute([g, s]).map_err(unavailable)? == 1 {
                    added.push(id.clone());
                }
            }
            Ok(added)
        })
    }

    fn members_remove(
        &mut self,
        group_kind: String,
        group: String,
        ids: Vec<String>,
    ) -> R<Vec<String>> {
        let g = self.group_seq(&group_kind, &group)?;
        let mut seqs = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(s) = self.seq_of_any(id)? {
                seqs.push((s, id));
            }
        }
        self.atomic(|conn, _| {
            let mut stmt = conn
                .prepare_cached("DELETE FROM members WHERE group_seq = ?1 AND member_seq = ?2")
                .map_err(unavailable)?;
            let mut removed = Vec::new();
            for (s, id) in seqs {
                if stmt.execute([g, s]).map_err(unavailable)? == 1 {
                    removed.push(id.clone());
                }
            }
            Ok(removed)
        })
    }

    fn members_clear(&mut self, group_kind: String, group: String) -> R<u64> {
        let g = self.group_seq(&group_kind, &group)?;
        self.atomic(|conn, _| {
            conn.prepare_cached("DELETE FROM members WHERE group_seq = ?1")
                .and_then(|mut s| s.execute([g]))
                .map(|n| n as u64)
                .map_err(unavailable)
        })
    }

    fn members_contains(
        &mut self,
        group_kind: String,
        group: String,
        ids: Vec<String>,
    ) -> R<Vec<String>> {
        self.stats.calls += 1;
        let g = self.group_seq(&group_kind, &group)?;
        let mut stmt = db(&self.conn)?
            .prepare_cached(
                "SELECT 1 FROM members m JOIN documents d ON d.seq = m.member_seq
                 WHERE m.group_seq = ?1 AND d.tenant = ?2 AND d.id = ?3",
            )
            .map_err(unavailable)?;
        let mut out = Vec::new();
        for id in ids {
            if stmt
                .exists(params![g, self.tenant, id])
                .map_err(unavailable)?
            {
                out.push(id);
            }
        }
        Ok(out)
    }

    fn members_list(
        &mut self,
        group_kind: String,
        group: String,
        after: Option<u64>,
        limit: u32,
    ) -> R<Vec<MemberEntry>> {
        let g = self.group_seq(&group_kind, &group)?;
        let after = after.map_or(-1, |a| a as i64);
        self.entries(
            "SELECT d.id, d.kind, d.label, d.seq FROM members m JOIN documents d ON d.seq = m.member_seq
             WHERE m.group_seq = ?1 AND m.member_seq > ?2 ORDER BY m.member_seq LIMIT ?3",
            &[&g, &after, &(limit as i64)],
        )
    }

    fn members_count(&mut self, group_kind: String, group: String) -> R<u64> {
        self.stats.calls += 1;
        let g = self.group_seq(&group_kind, &group)?;
        db(&self.conn)?
            .prepare_cached("SELECT count(*) FROM members WHERE group_seq = ?1")
            .and_then(|mut s| s.query_row([g], |r| r.get::<_, i64>(0)))
            .map(|n| n as u64)
            .map_err(unavailable)
    }

    fn groups_of(
        &mut self,
        group_kind: String,
        members: Vec<String>,
    ) -> R<Vec<(String, MemberEntry)>> {
        let rows = self.containing(&group_kind, &members, false)?;
        Ok(rows.into_iter().map(|(m, g, _)| (m, g)).collect())
    }

    fn groups_of_nested(
        &mut self,
        group_kind: String,
        members: Vec<String>,
    ) -> R<Vec<(String, MemberEntry, bool)>> {
        self.containing(&group_kind, &members, true)
    }
}

/// The select list's last column when asked: whether the group `d` is
/// itself in a group (an index probe per row).
macro_rules! nested_column {
    () => {
        "EXISTS (SELECT 1 FROM members p WHERE p.member_seq = d.seq)"
    };
}

/// The groups of one member. A fixed statement that walks the member's
/// index entries in group order, so SQLite needs no sort.
macro_rules! groups_of_one {
    ($nested:expr) => {
        concat!(
            "SELECT d.id, d.kind, d.label, d.seq, ",
            $nested,
            " FROM members m JOIN documents d ON d.seq = m.group_seq
             WHERE m.member_seq =
                   (SELECT seq FROM documents WHERE tenant = ?1 AND id = ?3 LIMIT 1)
               AND d.kind = ?2
             ORDER BY m.group_seq"
        )
    };
}

impl SqlStore {
    /// `groups-of` and `groups-of-nested`: (member, group, whether the group
    /// is itself in a group; false unless `nested` was asked for).
    fn containing(
        &mut self,
        group_kind: &str,
        members: &[String],
        nested: bool,
    ) -> R<Vec<(String, MemberEntry, bool)>> {
        self.stats.calls += 1;
        if let [member] = members {
            let sql = if nested {
                groups_of_one!(nested_column!())
            } else {
                groups_of_one!("0")
            };
            let mut stmt = db(&self.conn)?.prepare_cached(sql).map_err(unavailable)?;
            let out = stmt
                .query_map(params![self.tenant, group_kind, member], |r| {
                    Ok((member.clone(), member_entry(r, 0)?, r.get(4)?))
                })
                .and_then(|rows| rows.collect::<crate::db::sql::Result<Vec<_>>>())
                .map_err(unavailable)?;
            self.stats.rows += out.len() as u64;
            return Ok(out);
        }
        let flag = if nested { nested_column!() } else { "0" };
        let mut out = Vec::new();
        for chunk in members.chunks(crate::db::IN_LIST_CHUNK) {
            let marks = crate::db::placeholders(chunk.len());
            let sql = format!(
                "SELECT dm.id, d.id, d.kind, d.label, d.seq, {flag}
                 FROM documents dm
                 JOIN members m ON m.member_seq = dm.seq
                 JOIN documents d ON d.seq = m.group_seq
                 WHERE dm.tenant = ? AND d.kind = ? AND dm.id IN ({marks})
                 ORDER BY d.seq"
            );
            let mut args: Vec<&dyn ToSql> = vec![&self.tenant, &group_kind];
            args.extend(chunk.iter().map(|id| id as &dyn ToSql));
            let mut stmt = db(&self.conn)?.prepare_cached(&sql).map_err(unavailable)?;
            let rows = stmt
                .query_map(args.as_slice(), |r| {
                    Ok((r.get(0)?, member_entry(r, 1)?, r.get(5)?))
                })
                .and_then(|rows| rows.collect::<crate::db::sql::Result<Vec<_>>>())
                .map_err(unavailable)?;
            out.extend(rows);
        }
        self.stats.rows += out.len() as u64;
        Ok(out)
    }
}

impl crate::bindings::lms::scim::types::Host for SqlStore {}

/// A document from a row of `id, seq, version, body`.
fn document(r: &crate::db::sql::Row) -> crate::db::sql::Result<Document> {
    Ok(Document {
        id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        version: r.get(2)?,
        body: r.get(3)?,
    })
}

#[cfg(test)]
mod tests;
