//! POST, GET, PUT and DELETE of a single resource (RFC 7644 §3.3, §3.4.1,
//! §3.5.1, §3.6).

use serde_json::{Map, Value};

use crate::error::{ScimError, ScimResult};
use crate::http::{Request, Response};
use crate::projection::Projection;
use crate::resource::normalize::{Input, normalize_resource};
use crate::resource::render::{parse_body, render, render_default};
use crate::resource::{assemble, created, etag, location, new_id, now, to_new_document};
use crate::schema::{Attribute, Mutability, Relation, ResourceType, Schema};
use crate::store::{Document, Store, StoreError};

use super::preconditions::{if_match, not_modified};
use crate::resource::membership;

/// The projection asked for by the query string.
pub fn projection(req: &Request, rt: &ResourceType) -> ScimResult<Projection> {
    let params = req.query_params();
    let get = |name: &str| {
        params
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    };
    Projection::parse(rt, get("attributes"), get("excludedAttributes"))
}

/// A resource response with `ETag` (and `Location` when created).
pub fn resource_response(
    req: &Request,
    store: &mut dyn Store,
    rt: &ResourceType,
    doc: &Document,
    status: u16,
) -> ScimResult<Response> {
    let projection = projection(req, rt)?;
    let base = &req.context.base_url;
    let body = if projection.is_all() {
        render_default(store, base, rt, doc)?
    } else {
        let body = render(store, base, rt, doc, &projection)?;
        serde_json::to_vec(&body).map_err(|e| ScimError::internal(e.to_string()))?
    };
    let mut resp = Response::json_bytes(status, body).with_header("etag", etag(doc.version));
    if status == 201 {
        resp = resp.with_header("location", location(&req.context.base_url, rt, &doc.id));
    }
    Ok(resp)
}

/// Reads a resource or answers 404.
pub fn load(store: &mut dyn Store, rt: &ResourceType, id: &str) -> ScimResult<Document> {
    store
        .get(rt.name, id)?
        .ok_or_else(|| ScimError::not_found(format!("{} '{id}' not found", rt.name)))
}

/// Required attributes (RFC 7643 §2.2) of the core schema and of every
/// extension present.
fn check_required(rt: &ResourceType, attrs: &Map<String, Value>) -> ScimResult<()> {
    let missing = |schema: &Schema, within: &Map<String, Value>| {
        schema
            .attributes
            .iter()
            .find(|a| {
                a.required && a.mutability != Mutability::ReadOnly && !within.contains_key(a.name)
            })
            .map(|a| a.name)
    };
    if let Some(name) = missing(rt.schema, attrs) {
        return Err(ScimError::invalid_value(format!(
            "Attribute '{name}' is required"
        )));
    }
    for (schema, required) in rt.extensions {
        match attrs.get(schema.id).and_then(Value::as_object) {
            Some(ext) => {
                if let Some(name) = missing(schema, ext) {
                    return Err(ScimError::invalid_value(format!(
                        "Attribute '{}:{name}' is required",
                        schema.id
                    )));
                }
            }
            None if *required => {
                return Err(ScimError::invalid_value(format!(
                    "Extension '{}' is required",
                    schema.id
                )));
            }
            None => {}
        }
    }
    Ok(())
}

/// Maps write failures to SCIM errors.
fn write_err(rt: &ResourceType, e: StoreError) -> ScimError {
    match e {
        StoreError::UniqueViolation(term) => {
            ScimError::uniqueness(format!("A {} with this {term} already exists", rt.name))
        }
        other => other.into(),
    }
}

/// `POST /Users`, `POST /Groups`.
pub fn create(req: &Request, store: &mut dyn Store, rt: &ResourceType) -> ScimResult<Response> {
    let Input { attrs, members } = normalize_resource(rt, req.json_object()?)?;
    let (doc, _) = create_resource(store, rt, attrs, members)?;
    resource_response(req, store, rt, &doc, 201)
}

/// Creates a resource and its memberships; shared with Bulk.
pub fn create_resource(
    store: &mut dyn Store,
    rt: &ResourceType,
    attrs: Map<String, Value>,
    members: Option<Vec<crate::resource::normalize::MemberInput>>,
) -> ScimResult<(Document, Value)> {
    check_required(rt, &attrs)?;
    let id = new_id();
    let ts = now();
    let body = assemble(rt, &id, attrs, &ts, &ts);
    let written = store
        .insert(rt.name, to_new_document(rt, &id, &body))
        .map_err(|e| write_err(rt, e))?;
    if let Some(members) = members.filter(|m| !m.is_empty()) {
        let refs = membership::resolve(store, &id, &members)?;
        membership::add(store, &id, &refs)?;
    }
    let doc = Document {
        id,
        seq: written.seq,
        version: written.version,
        body: body.to_string(),
    };
    Ok((doc, body))
}

/// `GET /Users/{id}`; answers 304 to a matching `If-None-Match`.
pub fn get(
    req: &Request,
    store: &mut dyn Store,
    rt: &ResourceType,
    id: &str,
) -> ScimResult<Response> {
    let doc = load(store, rt, id)?;
    if not_modified(req, doc.version) {
        return Ok(Response::empty(304).with_header("etag", etag(doc.version)));
    }
    resource_response(req, store, rt, &doc, 200)
}

/// `PUT /Users/{id}`: replaces every client attribute. readOnly attributes
/// in the body are ignored, immutable ones must not change, the id in the
/// URL wins. For groups, `members` when present is applied as a difference
/// against the relation; when absent the membership is left as it is, so a
/// rename never empties a group.
pub fn replace(
    req: &Request,
    store: &mut dyn Store,
    rt: &ResourceType,
    id: &str,
) -> ScimResult<Response> {
    let existing = load(store, rt, id)?;
    let expected = if_match(req, existing.version)?;
    let Input { attrs, members } = normalize_resource(rt, req.json_object()?)?;
    let doc = replace_resource(store, rt, &existing, attrs, members, expected)?;
    resource_response(req, store, rt, &doc, 200)
}

/// Replaces a stored resource; shared with PATCH and Bulk.
pub fn replace_resource(
    store: &mut dyn Store,
    rt: &ResourceType,
    existing: &Document,
    attrs: Map<String, Value>,
    members: Option<Vec<crate::resource::normalize::MemberInput>>,
    expected: Option<u64>,
) -> ScimResult<Document> {
    check_required(rt, &attrs)?;
    let old = parse_body(existing)?;
    check_immutable(rt, &old, &attrs)?;
    let id = existing.id.as_str();
    if rt.relation == Relation::Members
        && let Some(members) = members
    {
        let refs = membership::resolve(store, id, &members)?;
        membership::replace_all(store, id, &refs)?;
    }
    let body = assemble(rt, id, attrs, &created(&old), &now());
    let written = store
        .replace(
            rt.name,
            to_new_document(rt, id, &body),
            expected.or(Some(existing.version)),
        )
        .map_err(|e| write_err(rt, e))?;
    Ok(Document {
        id: id.to_string(),
        seq: written.seq,
        version: written.version,
        body: body.to_string(),
    })
}

/// RFC 7643 §7: an immutable attribute that has a value cannot change.
fn check_immutable(rt: &ResourceType, old: &Value, new: &Map<String, Value>) -> ScimResult<()> {
    let check = |attr: &Attribute, old: Option<&Value>, new: Option<&Value>, name: String| {
        if attr.mutability == Mutability::Immutable && old.is_some() && old != new {
            return Err(ScimError::mutability(format!(
                "Attribute '{name}' is immutable and cannot be changed"
            )));
        }
        Ok(())
    };
    for attr in rt.schema.attributes.iter().filter(|a| !a.multi_valued) {
        check(
            attr,
            old.get(attr.name),
            new.get(attr.name),
            attr.name.to_string(),
        )?;
    }
    for (schema, _) in rt.extensions {
        for attr in schema.attributes.iter().filter(|a| !a.multi_valued) {
            check(
                attr,
                old.get(schema.id).and_then(|e| e.get(attr.name)),
                new.get(schema.id).and_then(|e| e.get(attr.name)),
                format!("{}:{}", schema.id, attr.name),
            )?;
        }
    }
    Ok(())
}

/// `DELETE /Users/{id}`: removes the resource and its memberships; the groups
/// that contained it get a new version.
pub fn delete(
    req: &Request,
    store: &mut dyn Store,
    rt: &ResourceType,
    id: &str,
) -> ScimResult<Response> {
    let existing = load(store, rt, id)?;
    let expected = if_match(req, existing.version)?;
    delete_resource(store, rt, id, expected)?;
    Ok(Response::empty(204))
}

/// Deletes a resource; shared with Bulk.
pub fn delete_resource(
    store: &mut dyn Store,
    rt: &ResourceType,
    id: &str,
    expected: Option<u64>,
) -> ScimResult<()> {
    membership::touch_parents(store, id)?;
    store.delete(rt.name, id, expected).map_err(|e| match e {
        StoreError::NotFound => ScimError::not_found(format!("{} '{id}' not found", rt.name)),
        other => other.into(),
    })
}
