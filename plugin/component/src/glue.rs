wit_bindgen::generate!({
    path: "../../wit",
    world: "engine",
});

use exports::lms::scim::handler::{Guest, HttpRequest, HttpResponse, RequestContext};
use lms::scim::store as host;
use scim_engine::store as core;

struct Component;

export!(Component);

impl Guest for Component {
    fn handle(request: HttpRequest) -> HttpResponse {
        let req = scim_engine::Request {
            method: request.method,
            path: request.path,
            query: request.query,
            headers: request.headers,
            body: request.body,
            context: context(request.context),
        };
        response(scim_engine::handle(&req, &mut HostStore))
    }

    fn error_response(_context: RequestContext, status: u16, detail: String) -> HttpResponse {
        response(scim_engine::error_response(status, &detail))
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
}
