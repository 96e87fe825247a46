//! `/ServiceProviderConfig`, `/ResourceTypes` and `/Schemas` (RFC 7644 §4),
//! generated from the same definitions that validation uses.

use serde_json::{Value, json};

use crate::error::{ScimError, ScimResult};
use crate::http::{Request, Response};
use crate::schema::{CAPABILITIES, RESOURCE_TYPES, ResourceType, SCHEMAS, Schema};

use crate::query::LIST_RESPONSE;

fn meta(req: &Request, resource_type: &str, path: &str) -> Value {
    json!({
        "resourceType": resource_type,
        "location": format!("{}{path}", req.context.base_url),
    })
}

/// `GET /ServiceProviderConfig`.
pub fn service_provider_config(req: &Request) -> Response {
    let c = CAPABILITIES;
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://datatracker.ietf.org/doc/html/rfc7644",
        "patch": {"supported": c.patch},
        "bulk": {
            "supported": c.bulk,
            "maxOperations": c.bulk_max_operations,
            "maxPayloadSize": req.context.max_payload_bytes,
        },
        "filter": {"supported": true, "maxResults": c.max_results},
        "changePassword": {"supported": false},
        "sort": {"supported": c.sort},
        "etag": {"supported": c.etag},
        "pagination": {
            "cursor": true,
            "index": true,
            "defaultPaginationMethod": "index",
            "defaultPageSize": c.default_page_size,
            "maxPageSize": c.max_results,
            "cursorTimeout": crate::query::cursor::CURSOR_TIMEOUT_SECS,
        },
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "OAuth Bearer Token",
            "description": "Authentication with a bearer token issued by the LMS administrator.",
            "specUri": "https://www.rfc-editor.org/info/rfc6750",
            "primary": true,
        }],
        "meta": meta(req, "ServiceProviderConfig", "/ServiceProviderConfig"),
    });
    Response::json(200, &body)
}

fn resource_type_json(req: &Request, rt: &ResourceType) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ResourceType"],
        "id": rt.name,
        "name": rt.name,
        "endpoint": rt.endpoint,
        "description": rt.description,
        "schema": rt.schema.id,
        "schemaExtensions": rt.extensions.iter().map(|(s, required)| json!({
            "schema": s.id,
            "required": required,
        })).collect::<Vec<_>>(),
        "meta": meta(req, "ResourceType", &format!("/ResourceTypes/{}", rt.name)),
    })
}

fn schema_json(req: &Request, s: &Schema) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:Schema"],
        "id": s.id,
        "name": s.name,
        "description": s.description,
        "attributes": s.attributes.iter().map(|a| a.to_json()).collect::<Vec<_>>(),
        "meta": meta(req, "Schema", &format!("/Schemas/{}", s.id)),
    })
}

fn list_response(resources: Vec<Value>) -> Response {
    Response::json(
        200,
        &json!({
            "schemas": [LIST_RESPONSE],
            "totalResults": resources.len(),
            "itemsPerPage": resources.len(),
            "startIndex": 1,
            "Resources": resources,
        }),
    )
}

/// `GET /ResourceTypes`.
pub fn resource_types(req: &Request) -> Response {
    list_response(
        RESOURCE_TYPES
            .iter()
            .map(|rt| resource_type_json(req, rt))
            .collect(),
    )
}

/// `GET /ResourceTypes/{name}`.
pub fn resource_type(req: &Request, name: &str) -> ScimResult<Response> {
    RESOURCE_TYPES
        .iter()
        .find(|rt| rt.name.eq_ignore_ascii_case(name))
        .map(|rt| Response::json(200, &resource_type_json(req, rt)))
        .ok_or_else(|| ScimError::not_found(format!("No resource type '{name}'")))
}

/// `GET /Schemas`.
pub fn schemas(req: &Request) -> Response {
    list_response(SCHEMAS.iter().map(|s| schema_json(req, s)).collect())
}

/// `GET /Schemas/{id}`.
pub fn schema(req: &Request, id: &str) -> ScimResult<Response> {
    SCHEMAS
        .iter()
        .find(|s| s.id.eq_ignore_ascii_case(id))
        .map(|s| Response::json(200, &schema_json(req, s)))
        .ok_or_else(|| ScimError::not_found(format!("No schema '{id}'")))
}
