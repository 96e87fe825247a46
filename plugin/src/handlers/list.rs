//! Listing and searching: `GET /Users`, `POST /Users/.search`, `POST /.search`.

use crate::error::ScimResult;
use crate::http::{Request, Response};
use crate::query::{Query, run};
use crate::schema::{RESOURCE_TYPES, ResourceType};
use crate::store::Store;

/// `GET /Users?filter=…`.
pub fn list(
    req: &Request,
    store: &mut dyn Store,
    rt: &'static ResourceType,
) -> ScimResult<Response> {
    let q = Query::from_params(&req.query_params())?;
    run(req, store, &[rt], &q)
}

/// `POST /Users/.search` with a SearchRequest body.
pub fn search(
    req: &Request,
    store: &mut dyn Store,
    rt: &'static ResourceType,
) -> ScimResult<Response> {
    let q = Query::from_search_request(req.json_object()?)?;
    run(req, store, &[rt], &q)
}

/// `POST /.search`: every resource type, in turn.
pub fn search_all(req: &Request, store: &mut dyn Store) -> ScimResult<Response> {
    let q = Query::from_search_request(req.json_object()?)?;
    run(req, store, RESOURCE_TYPES, &q)
}
