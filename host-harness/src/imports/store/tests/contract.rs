//! The engine's contract suites (`scim_engine::contract`) on the host's
//! `store`, `lms`, `outbox` and `sync-log`, on SQLite and PostgreSQL: the
//! same checks the engine's in-memory doubles pass. The host implements the
//! WIT interfaces, so a thin adapter turns each into the engine's native
//! trait, as the component's glue does across the wasm boundary.

use scim_engine::provision::host as native;
use scim_engine::store as ns;

use super::{Backend, SqlStore, database};
use crate::bindings::lms::scim::{lms as wl, outbox as wo, store as ws, sync_log as wsl};
use crate::db;

on_both!(store_contract, lms_contract);

/// A [`SqlStore`] on a new tenant of a new database, in a transaction, seen
/// through the engine's native traits.
struct Native {
    store: SqlStore,
    _dir: tempfile::TempDir,
    _pool: db::Pool,
}

fn native(backend: Backend) -> Native {
    let (dir, pool) = database(backend);
    let conn = pool.get().unwrap();
    db::add_tenant(&conn, "t").unwrap();
    let tenant = db::tenant_id(&conn, "t").unwrap();
    conn.begin(db::Begin::Write(Some(tenant))).unwrap();
    Native {
        store: SqlStore::new(conn, tenant).with_change_id("contract"),
        _dir: dir,
        _pool: pool,
    }
}

fn store_contract(backend: Backend) {
    scim_engine::contract::store::run_all(|| native(backend));
}

fn lms_contract(backend: Backend) {
    scim_engine::contract::lms::run_all(|| native(backend));
    scim_engine::contract::lms::run_observed(|| native(backend));
}

// The store.

fn store_err(e: ws::StoreError) -> ns::StoreError {
    match e {
        ws::StoreError::NotFound => ns::StoreError::NotFound,
        ws::StoreError::Conflict(v) => ns::StoreError::Conflict(v),
        ws::StoreError::UniqueViolation(t) => ns::StoreError::UniqueViolation(t),
        ws::StoreError::Missing(ids) => ns::StoreError::Missing(ids),
        ws::StoreError::Unavailable(m) => ns::StoreError::Unavailable(m),
    }
}

fn doc(d: ws::Document) -> ns::Document {
    ns::Document {
        id: d.id,
        seq: d.seq,
        version: d.version,
        body: d.body,
    }
}

fn new_doc(d: ns::NewDocument) -> ws::NewDocument {
    ws::NewDocument {
        id: d.id,
        body: d.body,
        label: d.label,
        terms: d
            .terms
            .into_iter()
            .map(|t| ws::Term {
                name: t.name,
                value: t.value,
                unique: t.unique,
            })
            .collect(),
    }
}

fn written(w: ws::Written) -> ns::Written {
    ns::Written {
        seq: w.seq,
        version: w.version,
    }
}

fn term_query(q: &ns::TermQuery) -> ws::TermQuery {
    let bound = |b: &ns::Bound| ws::Bound {
        value: b.value.clone(),
        inclusive: b.inclusive,
    };
    ws::TermQuery {
        name: q.name.clone(),
        match_: match &q.matches {
            ns::TermMatch::Exact(v) => ws::TermMatch::Exact(v.clone()),
            ns::TermMatch::Prefix(v) => ws::TermMatch::Prefix(v.clone()),
            ns::TermMatch::Contains(v) => ws::TermMatch::Contains(v.clone()),
            ns::TermMatch::Range(lo, hi) => {
                ws::TermMatch::Range((lo.as_ref().map(bound), hi.as_ref().map(bound)))
            }
        },
    }
}

fn selection(s: &ns::Selection) -> ws::Selection {
    match s {
        ns::Selection::All => ws::Selection::All,
        ns::Selection::BodyContains(s) => ws::Selection::BodyContains(s.clone()),
        ns::Selection::Term(q) => ws::Selection::Term(term_query(q)),
        ns::Selection::Matching(clauses) => ws::Selection::Matching(
            clauses
                .iter()
                .map(|c| match c {
                    ns::Clause::AnyTerm(qs) => {
                        ws::Clause::AnyTerm(qs.iter().map(term_query).collect())
                    }
                    ns::Clause::BodyContains(s) => ws::Clause::BodyContains(s.clone()),
                })
                .collect(),
        ),
    }
}

fn page(p: ns::Page) -> ws::Page {
    ws::Page {
        after: p.after,
        offset: p.offset,
        limit: p.limit,
        descending: p.descending,
    }
}

fn entry(e: ws::MemberEntry) -> ns::MemberEntry {
    ns::MemberEntry {
        id: e.id,
        kind: e.kind,
        label: e.label,
        seq: e.seq,
    }
}

fn docs(r: Result<Vec<ws::Document>, ws::StoreError>) -> ns::StoreResult<Vec<ns::Document>> {
    r.map(|ds| ds.into_iter().map(doc).collect())
        .map_err(store_err)
}

fn strings(ids: &[String]) -> Vec<String> {
    ids.to_vec()
}

impl ns::Store for Native {
    fn get(&mut self, kind: &str, id: &str) -> ns::StoreResult<Option<ns::Document>> {
        ws::Host::get(&mut self.store, kind.into(), id.into())
            .map(|d| d.map(doc))
            .map_err(store_err)
    }

    fn get_many(&mut self, kind: &str, ids: &[String]) -> ns::StoreResult<Vec<ns::Document>> {
        docs(ws::Host::get_many(
            &mut self.store,
            kind.into(),
            strings(ids),
        ))
    }

    fn insert(&mut self, kind: &str, d: ns::NewDocument) -> ns::StoreResult<ns::Written> {
        ws::Host::insert(&mut self.store, kind.into(), new_doc(d))
            .map(written)
            .map_err(store_err)
    }

    fn replace(
        &mut self,
        kind: &str,
        d: ns::NewDocument,
        expected_version: Option<u64>,
    ) -> ns::StoreResult<ns::Written> {
        ws::Host::replace(&mut self.store, kind.into(), new_doc(d), expected_version)
            .map(written)
            .map_err(store_err)
    }

    fn delete(
        &mut self,
        kind: &str,
        id: &str,
        expected_version: Option<u64>,
    ) -> ns::StoreResult<()> {
        ws::Host::delete(&mut self.store, kind.into(), id.into(), expected_version)
            .map_err(store_err)
    }

    fn scan(
        &mut self,
        kind: &str,
        s: &ns::Selection,
        p: ns::Page,
    ) -> ns::StoreResult<Vec<ns::Document>> {
        docs(ws::Host::scan(
            &mut self.store,
            kind.into(),
            selection(s),
            page(p),
        ))
    }

    fn scan_keys(
        &mut self,
        kind: &str,
        s: &ns::Selection,
        p: ns::Page,
    ) -> ns::StoreResult<Vec<(String, u64)>> {
        ws::Host::scan_keys(&mut self.store, kind.into(), selection(s), page(p)).map_err(store_err)
    }

    fn count(&mut self, kind: &str, s: &ns::Selection) -> ns::StoreResult<u64> {
        ws::Host::count(&mut self.store, kind.into(), selection(s)).map_err(store_err)
    }

    fn savepoint(&mut self) -> ns::StoreResult<u32> {
        ws::Host::savepoint(&mut self.store).map_err(store_err)
    }

    fn rollback_to(&mut self, savepoint: u32) -> ns::StoreResult<()> {
        ws::Host::rollback_to(&mut self.store, savepoint).map_err(store_err)
    }

    fn release(&mut self, savepoint: u32) -> ns::StoreResult<()> {
        ws::Host::release(&mut self.store, savepoint).map_err(store_err)
    }

    fn members_add(
        &mut self,
        group_kind: &str,
        group: &str,
        members: &[ns::MemberRef],
    ) -> ns::StoreResult<Vec<String>> {
        let refs = members
            .iter()
            .map(|m| ws::MemberRef {
                id: m.id.clone(),
                kind: m.kind.clone(),
            })
            .collect();
        ws::Host::members_add(&mut self.store, group_kind.into(), group.into(), refs)
            .map_err(store_err)
    }

    fn members_remove(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> ns::StoreResult<Vec<String>> {
        ws::Host::members_remove(
            &mut self.store,
            group_kind.into(),
            group.into(),
            strings(ids),
        )
        .map_err(store_err)
    }

    fn members_clear(&mut self, group_kind: &str, group: &str) -> ns::StoreResult<u64> {
        ws::Host::members_clear(&mut self.store, group_kind.into(), group.into()).map_err(store_err)
    }

    fn members_contains(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> ns::StoreResult<Vec<String>> {
        ws::Host::members_contains(
            &mut self.store,
            group_kind.into(),
            group.into(),
            strings(ids),
        )
        .map_err(store_err)
    }

    fn members_list(
        &mut self,
        group_kind: &str,
        group: &str,
        after: Option<u64>,
        limit: u32,
    ) -> ns::StoreResult<Vec<ns::MemberEntry>> {
        ws::Host::members_list(
            &mut self.store,
            group_kind.into(),
            group.into(),
            after,
            limit,
        )
        .map(|es| es.into_iter().map(entry).collect())
        .map_err(store_err)
    }

    fn members_count(&mut self, group_kind: &str, group: &str) -> ns::StoreResult<u64> {
        ws::Host::members_count(&mut self.store, group_kind.into(), group.into()).map_err(store_err)
    }

    fn groups_of(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> ns::StoreResult<Vec<(String, ns::MemberEntry)>> {
        ws::Host::groups_of(&mut self.store, group_kind.into(), strings(members))
            .map(|es| es.into_iter().map(|(m, e)| (m, entry(e))).collect())
            .map_err(store_err)
    }

    fn groups_of_nested(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> ns::StoreResult<Vec<(String, ns::MemberEntry, bool)>> {
        ws::Host::groups_of_nested(&mut self.store, group_kind.into(), strings(members))
            .map(|es| es.into_iter().map(|(m, e, n)| (m, entry(e), n)).collect())
            .map_err(store_err)
    }
}

// The LMS, the outbox and the sync log.

fn lms_err(e: wl::LmsError) -> native::LmsError {
    match e {
        wl::LmsError::Unavailable(m) => native::LmsError(m),
    }
}

fn to_wit_kind(k: native::GrantKind) -> wl::GrantKind {
    match k {
        native::GrantKind::Role => wl::GrantKind::Role,
        native::GrantKind::Team => wl::GrantKind::Team,
        native::GrantKind::LearningPath => wl::GrantKind::LearningPath,
    }
}

fn from_wit_grant(g: wl::Grant) -> native::Grant {
    native::Grant {
        kind: match g.kind {
            wl::GrantKind::Role => native::GrantKind::Role,
            wl::GrantKind::Team => native::GrantKind::Team,
            wl::GrantKind::LearningPath => native::GrantKind::LearningPath,
        },
        name: g.name,
        source: g.source,
    }
}

fn to_wit_effect(e: native::Effect) -> wl::Effect {
    use native::GrantKind as K;
    let item = |g: native::Grant| {
        (
            g.kind,
            wl::Item {
                name: g.name,
                source: g.source,
            },
        )
    };
    match e {
        native::Effect::Upsert(p) => wl::Effect::Upsert(wl::Profile {
            display_name: p.display_name,
            given_name: p.given_name,
            family_name: p.family_name,
            email: p.email,
            locale: p.locale,
            title: p.title,
            department: p.department,
            manager: p.manager,
        }),
        native::Effect::Suspend => wl::Effect::Suspend,
        native::Effect::Reactivate => wl::Effect::Reactivate,
        native::Effect::Remove => wl::Effect::Remove,
        native::Effect::Grant(g) => match item(g) {
            (K::Role, i) => wl::Effect::SetRole(i),
            (K::Team, i) => wl::Effect::JoinTeam(i),
            (K::LearningPath, i) => wl::Effect::AssignPath(i),
        },
        native::Effect::Revoke(g) => match item(g) {
            (K::Role, i) => wl::Effect::ClearRole(i),
            (K::Team, i) => wl::Effect::LeaveTeam(i),
            (K::LearningPath, i) => wl::Effect::UnassignPath(i),
        },
    }
}

fn to_wit_work(w: native::Work) -> wo::Work {
    match w {
        native::Work::Source(s) => wo::Work::Source(s),
        native::Work::Users(u) => wo::Work::Users(u),
        native::Work::Everyone => wo::Work::Everyone,
        native::Work::Members(g) => wo::Work::Members(g),
        native::Work::Renamed(g) => wo::Work::Renamed(g),
    }
}

fn from_wit_work(w: wo::Work) -> native::Work {
    match w {
        wo::Work::Source(s) => native::Work::Source(s),
        wo::Work::Users(u) => native::Work::Users(u),
        wo::Work::Everyone => native::Work::Everyone,
        wo::Work::Members(g) => native::Work::Members(g),
        wo::Work::Renamed(g) => native::Work::Renamed(g),
    }
}

impl native::LmsHost for Native {
    fn learners(&mut self, ids: &[String]) -> native::LmsResult<Vec<native::LearnerState>> {
        let states = wl::Host::learners(&mut self.store, ids.to_vec()).map_err(lms_err)?;
        Ok(states
            .into_iter()
            .map(|s| native::LearnerState {
                scim_id: s.scim_id,
                status: match s.status {
                    wl::LearnerStatus::Active => native::LearnerStatus::Active,
                    wl::LearnerStatus::Suspended => native::LearnerStatus::Suspended,
                    wl::LearnerStatus::Removed => native::LearnerStatus::Removed,
                },
                grants: s.grants.into_iter().map(from_wit_grant).collect(),
                withdrawn: s.withdrawn.into_iter().map(from_wit_grant).collect(),
            })
            .collect())
    }

    fn apply(&mut self, changes: Vec<native::Change>) -> native::LmsResult<()> {
        let changes = changes
            .into_iter()
            .map(|c| wl::Change {
                learner: wl::LearnerRef {
                    scim_id: c.learner.scim_id,
                    user_name: c.learner.user_name,
                    external_id: c.learner.external_id,
                },
                effects: c.effects.into_iter().map(to_wit_effect).collect(),
            })
            .collect();
        wl::Host::apply(&mut self.store, changes).map_err(lms_err)
    }

    fn known(
        &mut self,
        kind: native::GrantKind,
        names: &[String],
    ) -> native::LmsResult<Vec<String>> {
        wl::Host::known(&mut self.store, to_wit_kind(kind), names.to_vec()).map_err(lms_err)
    }

    fn policy(&mut self) -> native::LmsResult<native::Policy> {
        let p = wl::Host::policy(&mut self.store).map_err(lms_err)?;
        Ok(native::Policy {
            on_delete: match p.on_delete {
                wl::OnDelete::Suspend => native::OnDelete::Suspend,
                wl::OnDelete::Remove => native::OnDelete::Remove,
            },
            drift: match p.drift {
                wl::DriftPolicy::Restore => native::Drift::Restore,
                wl::DriftPolicy::Report => native::Drift::Report,
            },
            plugin_denied_roles: p.plugin_denied_roles,
        })
    }

    fn mapping(&mut self) -> native::LmsResult<Option<String>> {
        wl::Host::mapping(&mut self.store).map_err(lms_err)
    }

    fn holders(
        &mut self,
        source: &str,
        after: Option<&str>,
        limit: u32,
    ) -> native::LmsResult<Vec<String>> {
        wl::Host::holders(
            &mut self.store,
            source.into(),
            after.map(str::to_string),
            limit,
        )
        .map_err(lms_err)
    }

    fn rename_grants(
        &mut self,
        kind: native::GrantKind,
        source: &str,
        to: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> native::LmsResult<Vec<String>> {
        wl::Host::rename_grants(
            &mut self.store,
            to_wit_kind(kind),
            source.into(),
            to.map(str::to_string),
            after.map(str::to_string),
            limit,
        )
        .map_err(lms_err)
    }

    fn enqueue(&mut self, task: native::Task) {
        wo::Host::enqueue(
            &mut self.store,
            wo::Task {
                work: to_wit_work(task.work),
                cursor: task.cursor,
            },
        );
    }

    fn append(&mut self, events: Vec<native::Event>) {
        let events = events
            .into_iter()
            .map(|e| wsl::Event {
                action: e.action,
                resource_type: e.resource_type,
                resource_id: e.resource_id,
                resource_name: e.resource_name,
                status: match e.status {
                    native::EventStatus::Success => wsl::EventStatus::Success,
                    native::EventStatus::Failure => wsl::EventStatus::Failure,
                    native::EventStatus::Skipped => wsl::EventStatus::Skipped,
                },
                reason: e.reason,
                detail: e.detail,
                changes: e
                    .changes
                    .into_iter()
                    .map(|c| wsl::AttributeChange {
                        name: c.name,
                        old: c.old,
                        new: c.new,
                    })
                    .collect(),
            })
            .collect();
        wsl::Host::append(&mut self.store, events);
    }

    fn plugin(&mut self) -> Option<(native::PluginInfo, Box<dyn native::PluginRunner>)> {
        None
    }
}

impl scim_engine::contract::lms::Observed for Native {
    /// The tenant's outbox rows, in queue order.
    fn queued(&mut self) -> Vec<native::Task> {
        assert!(
            self.store.journal.failed.is_none(),
            "{:?}",
            self.store.journal.failed
        );
        let conn = self.store.conn_ref().unwrap();
        let mut out = Vec::new();
        while let Some(q) = crate::outbox::next(conn).unwrap() {
            assert_eq!(q.change_id, "contract");
            crate::outbox::finish(conn, q.id).unwrap();
            out.push(native::Task {
                work: from_wit_work(q.task.work),
                cursor: q.task.cursor,
            });
        }
        out
    }

    /// The events kept for the sync log, as they would be written.
    fn logged(&mut self) -> Vec<native::Event> {
        self.store
            .journal
            .events
            .iter()
            .map(|e| native::Event {
                action: e.action.clone(),
                resource_type: e.resource_type.clone(),
                resource_id: e.resource_id.clone(),
                resource_name: e.resource_name.clone(),
                status: match e.status {
                    "success" => native::EventStatus::Success,
                    "failure" => native::EventStatus::Failure,
                    other => {
                        assert_eq!(other, "skipped");
                        native::EventStatus::Skipped
                    }
                },
                reason: e.reason.clone(),
                detail: e.detail.clone(),
                changes: e
                    .changes
                    .iter()
                    .map(|(name, old, new)| native::AttributeChange {
                        name: name.clone(),
                        old: old.clone(),
                        new: new.clone(),
                    })
                    .collect(),
            })
            .collect()
    }
}
