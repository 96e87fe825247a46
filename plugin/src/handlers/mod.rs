//! Routing a request to the endpoint that serves it.

mod bulk;
pub(crate) mod crud;
mod discovery;
mod list;
mod patch;
pub(crate) mod preconditions;

use crate::error::{ScimError, ScimResult};
use crate::http::{Request, Response, decode_component};
use crate::schema::{RESOURCE_TYPES, ResourceType};
use crate::store::Store;

/// Handles one request; every failure becomes a SCIM Error response.
pub fn handle(req: &Request, store: &mut dyn Store) -> Response {
    let resp = route(req, store).unwrap_or_else(Response::from);
    let mut segments = req.path.split('/').filter(|s| !s.is_empty());
    let first = segments.next().map(decode_component_path);
    let (resource, id) = match first.as_deref().and_then(resource_type) {
        Some(rt) => (rt.name, segments.next().filter(|s| *s != ".search")),
        None => (endpoint_label(first.as_deref()), None),
    };
    let resp = resp.with_log("resource", resource);
    match id {
        Some(id) => resp.with_log("resource_id", decode_component_path(id)),
        None => resp,
    }
}

/// A bounded name for a non-resource endpoint, for logs and metrics.
fn endpoint_label(segment: Option<&str>) -> &'static str {
    const KNOWN: &[&str] = &[
        "Bulk",
        "ServiceProviderConfig",
        "ResourceTypes",
        "Schemas",
        ".search",
        "Me",
    ];
    match segment {
        None => "/",
        Some(s) => KNOWN
            .iter()
            .find(|k| k.eq_ignore_ascii_case(s))
            .copied()
            .unwrap_or("unknown"),
    }
}

fn route(req: &Request, store: &mut dyn Store) -> ScimResult<Response> {
    // Replacing bytes that are not UTF-8 would answer a question the client
    // did not ask (a filter on another value, say).
    if !req.query_is_utf8() {
        return Err(ScimError::invalid_value(
            "The query string is not UTF-8 once percent-decoded; \
             percent-encode the UTF-8 bytes of each character",
        ));
    }
    let segments: Vec<String> = req
        .path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_component_path)
        .collect();
    let seg: Vec<&str> = segments.iter().map(String::as_str).collect();
    let method = req.method.to_ascii_uppercase();
    let m = method.as_str();
    let is = |s: &str, name: &str| s.eq_ignore_ascii_case(name);

    if let Some(rt) = seg.first().and_then(|s| resource_type(s)) {
        // A garbled `attributes` fails before anything is written.
        crud::projection(req, rt)?;
        return match (&seg[1..], m) {
            ([], "GET") => list::list(req, store, rt),
            ([], "POST") => crud::create(req, store, rt),
            ([], _) => Err(not_allowed(&req.path, "GET, POST")),
            ([s], "POST") if *s == ".search" => list::search(req, store, rt),
            ([s], _) if *s == ".search" => Err(not_allowed(s, "POST")),
            ([id], "GET") => crud::get(req, store, rt, id),
            ([id], "PUT") => crud::replace(req, store, rt, id),
            ([id], "DELETE") => crud::delete(req, store, rt, id),
            ([id], "PATCH") => patch::patch(req, store, rt, id),
            ([id], _) => Err(not_allowed(id, "GET, PUT, PATCH, DELETE")),
            _ => Err(no_endpoint(req)),
        };
    }
    match (seg.as_slice(), m) {
        ([".search"], "POST") => list::search_all(req, store),
        ([s], "POST") if is(s, "Bulk") => bulk::bulk(req, store),
        ([s], _) if is(s, "Bulk") => Err(not_allowed(s, "POST")),
        ([".search"], _) => Err(not_allowed(".search", "POST")),
        ([s], "GET") if is(s, "ServiceProviderConfig") => {
            Ok(discovery::service_provider_config(req))
        }
        ([s], "GET") if is(s, "ResourceTypes") => Ok(discovery::resource_types(req)),
        ([s, name], "GET") if is(s, "ResourceTypes") => discovery::resource_type(req, name),
        ([s], "GET") if is(s, "Schemas") => Ok(discovery::schemas(req)),
        ([s, id], "GET") if is(s, "Schemas") => discovery::schema(req, id),
        ([s, ..], _)
            if is(s, "ServiceProviderConfig") || is(s, "ResourceTypes") || is(s, "Schemas") =>
        {
            Err(not_allowed(s, "GET"))
        }
        ([s, ..], _) if is(s, "Me") => Err(ScimError::new(
            501,
            None,
            "/Me is not supported: requests are authenticated as a provisioning client, not a user",
        )),
        _ => Err(no_endpoint(req)),
    }
}

/// Path segments are percent-decoded, but `+` stays literal (unlike queries).
fn decode_component_path(s: &str) -> String {
    decode_component(&s.replace('+', "%2B"))
}

/// The resource type served at an endpoint name, case-insensitively.
fn resource_type(segment: &str) -> Option<&'static ResourceType> {
    RESOURCE_TYPES
        .iter()
        .copied()
        .find(|rt| rt.endpoint[1..].eq_ignore_ascii_case(segment))
}

fn not_allowed(what: &str, allowed: &str) -> ScimError {
    ScimError::method_not_allowed(format!(
        "This method is not allowed on '{what}'; allowed: {allowed}"
    ))
}

fn no_endpoint(req: &Request) -> ScimError {
    ScimError::not_found(format!("No SCIM endpoint at '{}'", req.path))
}

#[cfg(test)]
mod bulk_tests;
