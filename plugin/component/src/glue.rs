wit_bindgen::generate!({
    path: "../../wit",
    world: "engine",
    // The two WASI interfaces the world imports (see `ambient`).
    generate_all,
});

use exports::lms::scim::handler::{DrainStep, Guest, HttpRequest, HttpResponse, RequestContext};
use exports::lms::scim::mapping_admin::{self as ma, Guest as MappingGuest};
use lms::scim::lms as host_lms;
use lms::scim::outbox as host_outbox;
use lms::scim::plugin as host_plugin;
use lms::scim::store as host;
use lms::scim::sync_log as host_log;
use scim_engine::provision::host as prov;
use scim_engine::store as core;

struct Component;

export!(Component);

/// Points the engine's clock and randomness at the host's two WASI imports,
/// the only WASI the component imports. Every export calls it first; only
/// the first call installs.
fn ambient() {
    scim_engine::ambient::install(scim_engine::ambient::Ambient {
        now: || {
            let t = wasi::clocks::wall_clock::now();
            (t.seconds, t.nanoseconds)
        },
        fill_random: |out| {
            let bytes = wasi::random::random::get_random_bytes(out.len() as u64);
            out.copy_from_slice(&bytes);
        },
    });
}

impl Guest for Component {
    fn handle(request: HttpRequest) -> HttpResponse {
        ambient();
        let req = scim_engine::Request {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
            context: context(request.context),
        };
        response(scim_engine::handle(&req, &mut HostStore, &mut HostLms))
    }

    fn drain(
        _context: RequestContext,
        task: host_outbox::Task,
        batch: u32,
    ) -> Result<DrainStep, String> {
        ambient();
        let task = prov::Task {
            work: match task.work {
                host_outbox::Work::Source(s) => prov::Work::Source(s),
                host_outbox::Work::Users(u) => prov::Work::Users(u),
                host_outbox::Work::Everyone => prov::Work::Everyone,
                host_outbox::Work::Members(g) => prov::Work::Members(g),
                host_outbox::Work::Renamed(g) => prov::Work::Renamed(g),
            },
            cursor: task.cursor,
        };
        match scim_engine::drain(&task, batch, &mut HostStore, &mut HostLms) {
            Ok(Some(cursor)) => Ok(DrainStep::More(cursor)),
            Ok(None) => Ok(DrainStep::Done),
            Err(e) => Err(e.to_string()),
        }
    }

    fn error_response(_context: RequestContext, status: u16, detail: String) -> HttpResponse {
        ambient();
        response(scim_engine::error_response(status, &detail))
    }
}

impl MappingGuest for Component {
    fn check(_context: RequestContext, document: String, catalogue: bool) -> ma::CheckReport {
        ambient();
        let lms: Option<&mut dyn prov::LmsHost> = if catalogue { Some(&mut HostLms) } else { None };
        match scim_engine::check_mapping(&document, lms) {
            Ok(r) => ma::CheckReport {
                rules: r.rules,
                diagnostics: r.diagnostics.into_iter().map(diagnostic).collect(),
                normalized: r.normalized,
            },
            Err(e) => ma::CheckReport {
                rules: 0,
                diagnostics: vec![ma::Diagnostic {
                    severity: ma::Severity::Error,
                    line: 0,
                    column: 0,
                    message: format!("the LMS catalogue could not be read: {e}"),
                }],
                normalized: None,
            },
        }
    }

    fn preview(
        _context: RequestContext,
        choice: ma::MappingChoice,
        after: Option<String>,
        limit: u32,
    ) -> Result<ma::PreviewPage, ma::MappingError> {
        ambient();
        let page = scim_engine::preview_mapping(
            &mapping_choice(choice),
            after.as_deref(),
            limit,
            &mut HostStore,
            &mut HostLms,
        )
        .map_err(mapping_error)?;
        let items = |list: Vec<(prov::GrantKind, String)>| {
            list.into_iter()
                .map(|(kind, name)| ma::NamedItem {
                    kind: grant_kind(kind),
                    name,
                })
                .collect()
        };
        Ok(ma::PreviewPage {
            scanned: page.scanned,
            users: page
                .users
                .into_iter()
                .map(|u| ma::UserPreview {
                    scim_id: u.scim_id,
                    user_name: u.user_name,
                    gains: items(u.gains),
                    losses: items(u.losses),
                    skipped: items(u.skipped),
                    failure: u.failure,
                })
                .collect(),
            next: page.next,
        })
    }

    fn explain(
        _context: RequestContext,
        choice: ma::MappingChoice,
        user_id: String,
    ) -> Result<String, ma::MappingError> {
        ambient();
        scim_engine::explain_mapping(
            &mapping_choice(choice),
            &user_id,
            &mut HostStore,
            &mut HostLms,
        )
        .map(|v| v.to_string())
        .map_err(mapping_error)
    }
}

fn mapping_error(e: scim_engine::ScimError) -> ma::MappingError {
    ma::MappingError {
        status: e.status,
        detail: e.detail,
    }
}

fn mapping_choice(c: ma::MappingChoice) -> scim_engine::mapping::Choice {
    use scim_engine::mapping::Choice;
    match c {
        ma::MappingChoice::Installed => Choice::Installed,
        ma::MappingChoice::Default => Choice::Default,
        ma::MappingChoice::Document(d) => Choice::Document(d),
        ma::MappingChoice::Plugin => Choice::Plugin,
    }
}

fn diagnostic(d: scim_engine::rules::Diagnostic) -> ma::Diagnostic {
    ma::Diagnostic {
        severity: match d.severity {
            scim_engine::rules::Severity::Error => ma::Severity::Error,
            scim_engine::rules::Severity::Warning => ma::Severity::Warning,
        },
        line: d.line,
        column: d.column,
        message: d.message,
    }
}

fn context(c: RequestContext) -> scim_engine::Context {
    scim_engine::Context {
        tenant: c.tenant,
        base_url: c.base_url,
        request_id: c.request_id,
        subject: c.subject,
        max_payload_bytes: c.max_payload_bytes,
        signing_key: c.signing_key,
    }
}

fn response(r: scim_engine::Response) -> HttpResponse {
    HttpResponse {
        status: r.status,
        headers: r.headers,
        body: r.body,
        log: r.log,
    }
}

/// The host's store, reached through the WIT imports.
struct HostStore;

fn err(e: host::StoreError) -> core::StoreError {
    match e {
        host::StoreError::NotFound => core::StoreError::NotFound,
        host::StoreError::Conflict(v) => core::StoreError::Conflict(v),
        host::StoreError::UniqueViolation(t) => core::StoreError::UniqueViolation(t),
        host::StoreError::Missing(ids) => core::StoreError::Missing(ids),
        host::StoreError::Unavailable(m) => core::StoreError::Unavailable(m),
    }
}

fn doc(d: host::Document) -> core::Document {
    core::Document {
        id: d.id,
        seq: d.seq,
        version: d.version,
        body: d.body,
    }
}

fn new_doc(d: core::NewDocument) -> host::NewDocument {
    host::NewDocument {
        id: d.id,
        body: d.body,
        label: d.label,
        terms: d
            .terms
            .into_iter()
            .map(|t| host::Term {
                name: t.name,
                value: t.value,
                unique: t.unique,
            })
            .collect(),
    }
}

fn written(w: host::Written) -> core::Written {
    core::Written {
        seq: w.seq,
        version: w.version,
    }
}

fn bound(b: &core::Bound) -> host::Bound {
    host::Bound {
        value: b.value.clone(),
        inclusive: b.inclusive,
    }
}

fn term_query(q: &core::TermQuery) -> host::TermQuery {
    host::TermQuery {
        name: q.name.clone(),
        match_: match &q.matches {
            core::TermMatch::Exact(v) => host::TermMatch::Exact(v.clone()),
            core::TermMatch::Prefix(v) => host::TermMatch::Prefix(v.clone()),
            core::TermMatch::Contains(v) => host::TermMatch::Contains(v.clone()),
            core::TermMatch::Range(lo, hi) => {
                host::TermMatch::Range((lo.as_ref().map(bound), hi.as_ref().map(bound)))
            }
        },
    }
}

fn selection(s: &core::Selection) -> host::Selection {
    match s {
        core::Selection::All => host::Selection::All,
        core::Selection::BodyContains(s) => host::Selection::BodyContains(s.clone()),
        core::Selection::Term(q) => host::Selection::Term(term_query(q)),
        core::Selection::Matching(clauses) => host::Selection::Matching(
            clauses
                .iter()
                .map(|c| match c {
                    core::Clause::AnyTerm(qs) => {
                        host::Clause::AnyTerm(qs.iter().map(term_query).collect())
                    }
                    core::Clause::BodyContains(s) => host::Clause::BodyContains(s.clone()),
                })
                .collect(),
        ),
    }
}

fn page(p: core::Page) -> host::Page {
    host::Page {
        after: p.after,
        offset: p.offset,
        limit: p.limit,
        descending: p.descending,
    }
}

fn entry(e: host::MemberEntry) -> core::MemberEntry {
    core::MemberEntry {
        id: e.id,
        kind: e.kind,
        label: e.label,
        seq: e.seq,
    }
}

impl core::Store for HostStore {
    fn get(&mut self, kind: &str, id: &str) -> core::StoreResult<Option<core::Document>> {
        host::get(kind, id).map(|d| d.map(doc)).map_err(err)
    }

    fn get_many(&mut self, kind: &str, ids: &[String]) -> core::StoreResult<Vec<core::Document>> {
        host::get_many(kind, ids)
            .map(|ds| ds.into_iter().map(doc).collect())
            .map_err(err)
    }

    fn insert(&mut self, kind: &str, d: core::NewDocument) -> core::StoreResult<core::Written> {
        host::insert(kind, &new_doc(d)).map(written).map_err(err)
    }

    fn replace(
        &mut self,
        kind: &str,
        d: core::NewDocument,
        expected_version: Option<u64>,
    ) -> core::StoreResult<core::Written> {
        host::replace(kind, &new_doc(d), expected_version)
            .map(written)
            .map_err(err)
    }

    fn delete(
        &mut self,
        kind: &str,
        id: &str,
        expected_version: Option<u64>,
    ) -> core::StoreResult<()> {
        host::delete(kind, id, expected_version).map_err(err)
    }

    fn scan(
        &mut self,
        kind: &str,
        s: &core::Selection,
        p: core::Page,
    ) -> core::StoreResult<Vec<core::Document>> {
        host::scan(kind, &selection(s), page(p))
            .map(|ds| ds.into_iter().map(doc).collect())
            .map_err(err)
    }

    fn scan_keys(
        &mut self,
        kind: &str,
        s: &core::Selection,
        p: core::Page,
    ) -> core::StoreResult<Vec<(String, u64)>> {
        host::scan_keys(kind, &selection(s), page(p)).map_err(err)
    }

    fn count(&mut self, kind: &str, s: &core::Selection) -> core::StoreResult<u64> {
        host::count(kind, &selection(s)).map_err(err)
    }

    fn savepoint(&mut self) -> core::StoreResult<u32> {
        host::savepoint().map_err(err)
    }

    fn rollback_to(&mut self, savepoint: u32) -> core::StoreResult<()> {
        host::rollback_to(savepoint).map_err(err)
    }

    fn release(&mut self, savepoint: u32) -> core::StoreResult<()> {
        host::release(savepoint).map_err(err)
    }

    fn members_add(
        &mut self,
        group_kind: &str,
        group: &str,
        members: &[core::MemberRef],
    ) -> core::StoreResult<Vec<String>> {
        let refs: Vec<host::MemberRef> = members
            .iter()
            .map(|m| host::MemberRef {
                id: m.id.clone(),
                kind: m.kind.clone(),
            })
            .collect();
        host::members_add(group_kind, group, &refs).map_err(err)
    }

    fn members_remove(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> core::StoreResult<Vec<String>> {
        host::members_remove(group_kind, group, ids).map_err(err)
    }

    fn members_clear(&mut self, group_kind: &str, group: &str) -> core::StoreResult<u64> {
        host::members_clear(group_kind, group).map_err(err)
    }

    fn members_contains(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> core::StoreResult<Vec<String>> {
        host::members_contains(group_kind, group, ids).map_err(err)
    }

    fn members_list(
        &mut self,
        group_kind: &str,
        group: &str,
        after: Option<u64>,
        limit: u32,
    ) -> core::StoreResult<Vec<core::MemberEntry>> {
        host::members_list(group_kind, group, after, limit)
            .map(|es| es.into_iter().map(entry).collect())
            .map_err(err)
    }

    fn members_count(&mut self, group_kind: &str, group: &str) -> core::StoreResult<u64> {
        host::members_count(group_kind, group).map_err(err)
    }

    fn groups_of(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> core::StoreResult<Vec<(String, core::MemberEntry)>> {
        host::groups_of(group_kind, members)
            .map(|es| es.into_iter().map(|(m, e)| (m, entry(e))).collect())
            .map_err(err)
    }

    fn groups_of_nested(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> core::StoreResult<Vec<(String, core::MemberEntry, bool)>> {
        host::groups_of_nested(group_kind, members)
            .map(|es| es.into_iter().map(|(m, e, n)| (m, entry(e), n)).collect())
            .map_err(err)
    }
}

/// The host's LMS, outbox and sync log, reached through the WIT imports.
struct HostLms;

fn from_host_kind(k: host_lms::GrantKind) -> prov::GrantKind {
    match k {
        host_lms::GrantKind::Role => prov::GrantKind::Role,
        host_lms::GrantKind::Team => prov::GrantKind::Team,
        host_lms::GrantKind::LearningPath => prov::GrantKind::LearningPath,
    }
}

fn from_host_grant(g: host_lms::Grant) -> prov::Grant {
    prov::Grant {
        kind: from_host_kind(g.kind),
        name: g.name,
        source: g.source,
    }
}

fn lms_err(e: host_lms::LmsError) -> prov::LmsError {
    match e {
        host_lms::LmsError::Unavailable(m) => prov::LmsError(m),
    }
}

fn grant_kind(k: prov::GrantKind) -> host_lms::GrantKind {
    match k {
        prov::GrantKind::Role => host_lms::GrantKind::Role,
        prov::GrantKind::Team => host_lms::GrantKind::Team,
        prov::GrantKind::LearningPath => host_lms::GrantKind::LearningPath,
    }
}

fn item(g: prov::Grant) -> (prov::GrantKind, host_lms::Item) {
    (
        g.kind,
        host_lms::Item {
            name: g.name,
            source: g.source,
        },
    )
}

fn effect(e: prov::Effect) -> host_lms::Effect {
    use host_lms::Effect as E;
    use prov::GrantKind as K;
    match e {
        prov::Effect::Upsert(p) => E::Upsert(host_lms::Profile {
            display_name: p.display_name,
            given_name: p.given_name,
            family_name: p.family_name,
            email: p.email,
            locale: p.locale,
            title: p.title,
            department: p.department,
            manager: p.manager,
        }),
        prov::Effect::Suspend => E::Suspend,
        prov::Effect::Reactivate => E::Reactivate,
        prov::Effect::Remove => E::Remove,
        prov::Effect::Grant(g) => match item(g) {
            (K::Role, i) => E::SetRole(i),
            (K::Team, i) => E::JoinTeam(i),
            (K::LearningPath, i) => E::AssignPath(i),
        },
        prov::Effect::Revoke(g) => match item(g) {
            (K::Role, i) => E::ClearRole(i),
            (K::Team, i) => E::LeaveTeam(i),
            (K::LearningPath, i) => E::UnassignPath(i),
        },
    }
}

impl prov::LmsHost for HostLms {
    fn learners(&mut self, ids: &[String]) -> prov::LmsResult<Vec<prov::LearnerState>> {
        let states = host_lms::learners(ids).map_err(lms_err)?;
        Ok(states
            .into_iter()
            .map(|s| prov::LearnerState {
                scim_id: s.scim_id,
                status: match s.status {
                    host_lms::LearnerStatus::Active => prov::LearnerStatus::Active,
                    host_lms::LearnerStatus::Suspended => prov::LearnerStatus::Suspended,
                    host_lms::LearnerStatus::Removed => prov::LearnerStatus::Removed,
                },
                grants: s.grants.into_iter().map(from_host_grant).collect(),
                withdrawn: s.withdrawn.into_iter().map(from_host_grant).collect(),
            })
            .collect())
    }

    fn apply(&mut self, changes: Vec<prov::Change>) -> prov::LmsResult<()> {
        let changes: Vec<host_lms::Change> = changes
            .into_iter()
            .map(|c| host_lms::Change {
                learner: host_lms::LearnerRef {
                    scim_id: c.learner.scim_id,
                    user_name: c.learner.user_name,
                    external_id: c.learner.external_id,
                },
                effects: c.effects.into_iter().map(effect).collect(),
            })
            .collect();
        host_lms::apply(&changes).map_err(lms_err)
    }

    fn known(&mut self, kind: prov::GrantKind, names: &[String]) -> prov::LmsResult<Vec<String>> {
        host_lms::known(grant_kind(kind), names).map_err(lms_err)
    }

    fn policy(&mut self) -> prov::LmsResult<prov::Policy> {
        let p = host_lms::policy().map_err(lms_err)?;
        Ok(prov::Policy {
            on_delete: match p.on_delete {
                host_lms::OnDelete::Suspend => prov::OnDelete::Suspend,
                host_lms::OnDelete::Remove => prov::OnDelete::Remove,
            },
            drift: match p.drift {
                host_lms::DriftPolicy::Restore => prov::Drift::Restore,
                host_lms::DriftPolicy::Report => prov::Drift::Report,
            },
            plugin_denied_roles: p.plugin_denied_roles,
        })
    }

    fn mapping(&mut self) -> prov::LmsResult<Option<String>> {
        host_lms::mapping().map_err(lms_err)
    }

    fn holders(
        &mut self,
        source: &str,
        after: Option<&str>,
        limit: u32,
    ) -> prov::LmsResult<Vec<String>> {
        host_lms::holders(source, after, limit).map_err(lms_err)
    }

    fn rename_grants(
        &mut self,
        kind: prov::GrantKind,
        source: &str,
        to: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> prov::LmsResult<Vec<String>> {
        host_lms::rename_grants(grant_kind(kind), source, to, after, limit).map_err(lms_err)
    }

    fn enqueue(&mut self, task: prov::Task) {
        host_outbox::enqueue(&host_outbox::Task {
            work: match task.work {
                prov::Work::Source(s) => host_outbox::Work::Source(s),
                prov::Work::Users(u) => host_outbox::Work::Users(u),
                prov::Work::Everyone => host_outbox::Work::Everyone,
                prov::Work::Members(g) => host_outbox::Work::Members(g),
                prov::Work::Renamed(g) => host_outbox::Work::Renamed(g),
            },
            cursor: task.cursor,
        });
    }

    fn append(&mut self, events: Vec<prov::Event>) {
        let events: Vec<host_log::Event> = events
            .into_iter()
            .map(|e| host_log::Event {
                action: e.action,
                resource_type: e.resource_type,
                resource_id: e.resource_id,
                resource_name: e.resource_name,
                status: match e.status {
                    prov::EventStatus::Success => host_log::EventStatus::Success,
                    prov::EventStatus::Failure => host_log::EventStatus::Failure,
                    prov::EventStatus::Skipped => host_log::EventStatus::Skipped,
                },
                reason: e.reason,
                detail: e.detail,
                changes: e
                    .changes
                    .into_iter()
                    .map(|c| host_log::AttributeChange {
                        name: c.name,
                        old: c.old,
                        new: c.new,
                    })
                    .collect(),
            })
            .collect();
        host_log::append(&events);
    }

    fn plugin(&mut self) -> Option<(prov::PluginInfo, Box<dyn prov::PluginRunner>)> {
        let info = host_plugin::active()?;
        Some((
            prov::PluginInfo {
                sha256: info.sha256,
                version: info.version,
            },
            Box::new(HostPlugin),
        ))
    }
}

/// The host's plugin, reached through the WIT import.
struct HostPlugin;

use scim_engine::mapper::MapError;
use scim_engine::mapper::plugin::{Assigned, UserFacts};

fn user_facts(user: &UserFacts) -> host_plugin::UserFacts {
    host_plugin::UserFacts {
        id: user.id.clone(),
        user_name: user.user_name.clone(),
        external_id: user.external_id.clone(),
        active: user.active,
        groups: user
            .groups
            .iter()
            .map(|g| host_plugin::UserGroup {
                id: g.id.clone(),
                display_name: g.display_name.clone(),
                external_id: g.external_id.clone(),
            })
            .collect(),
        scim_json: user.scim_json.clone(),
    }
}

impl prov::PluginRunner for HostPlugin {
    fn assign(&self, user: &UserFacts) -> Result<Vec<Assigned>, MapError> {
        match host_plugin::assign(&user_facts(user)) {
            Ok(out) => Ok(out
                .into_iter()
                .map(|a| Assigned {
                    kind: from_host_kind(a.kind),
                    name: a.name,
                    reason: a.reason,
                })
                .collect()),
            Err(f) => Err(MapError {
                reason: f.reason,
                detail: f.detail,
            }),
        }
    }

    fn rejected(&self, user: &UserFacts, failure: &MapError) {
        host_plugin::rejected(
            &user_facts(user),
            &host_plugin::PluginFailure {
                reason: failure.reason.clone(),
                detail: failure.detail.clone(),
            },
        );
    }
}
