//! `PATCH /Users/{id}` and `PATCH /Groups/{id}`: the endpoint around
//! [`crate::patch`], which applies the operations.

use super::crud::{load, replace_resource, resource_response};
use super::preconditions::if_match;
use crate::error::ScimResult;
use crate::http::{Request, Response};
use crate::patch::{apply_all, parse_operations};
use crate::resource::etag;
use crate::resource::render::parse_body;
use crate::schema::{Relation, ResourceType};
use crate::store::Store;

/// `PATCH /Users/{id}`, `PATCH /Groups/{id}`.
pub fn patch(
    req: &Request,
    store: &mut dyn Store,
    rt: &'static ResourceType,
    id: &str,
) -> ScimResult<Response> {
    let existing = load(store, rt, id)?;
    let expected = if_match(req, existing.version)?;
    let ops = parse_operations(&req.json_object()?)?;
    let old = parse_body(&existing)?;
    let attrs = apply_all(store, rt, id, &old, &ops)?;
    let doc = replace_resource(store, rt, &existing, attrs, None, expected)?;
    let projected = req.query_params().iter().any(|(k, _)| {
        k.eq_ignore_ascii_case("attributes") || k.eq_ignore_ascii_case("excludedAttributes")
    });
    // A group's body would list every member: answer 204 unless the client
    // asked for specific attributes.
    if rt.relation == Relation::Members && !projected {
        return Ok(Response::empty(204).with_header("etag", etag(doc.version)));
    }
    resource_response(req, store, rt, &doc, 200)
}
