//! Listing and filtering a resource type (RFC 7644 §3.4.2).

use serde_json::{Value, json};

use crate::error::{ScimError, ScimResult};
use crate::filter::{self, Filter};
use crate::http::{Request, Response};
use crate::plan::{Plan, plan};
use crate::projection::Projection;
use crate::resource::render::{parse_body, render_value};
use crate::schema::ResourceType;
use crate::store::{Document, Page, Selection, Store};

use super::CAPABILITIES;

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Documents read per host call while filtering.
const CHUNK: u32 = 500;

/// Paging and filtering parameters of a query.
#[derive(Debug, Clone, Default)]
pub struct Query {
    pub filter: Option<String>,
    pub start_index: u64,
    pub count: u64,
    pub attributes: Option<String>,
    pub excluded_attributes: Option<String>,
}

impl Query {
    /// Reads the query string. Unknown parameters are ignored (Entra appends
    /// its own flags); parameter names are case-insensitive.
    pub fn from_request(req: &Request) -> ScimResult<Self> {
        let mut q = Query {
            start_index: 1,
            count: CAPABILITIES.default_page_size,
            ..Default::default()
        };
        for (k, v) in req.query_params() {
            match k.to_ascii_lowercase().as_str() {
                "filter" => q.filter = Some(v),
                "startindex" => q.start_index = parse_int(&k, &v)?.max(1) as u64,
                "count" => q.count = parse_int(&k, &v)?.max(0) as u64,
                "attributes" => q.attributes = Some(v),
                "excludedattributes" => q.excluded_attributes = Some(v),
                _ => {}
            }
        }
        q.count = q.count.min(CAPABILITIES.max_results);
        Ok(q)
    }
}

fn parse_int(name: &str, v: &str) -> ScimResult<i64> {
    v.trim().parse::<i64>().map_err(|_| {
        ScimError::invalid_value(format!(
            "Query parameter '{name}' must be an integer, got '{v}'"
        ))
    })
}

/// `GET /Users`.
pub fn list(
    req: &Request,
    store: &mut dyn Store,
    rt: &'static ResourceType,
) -> ScimResult<Response> {
    let q = Query::from_request(req)?;
    let body = run(req, store, rt, &q)?;
    Ok(Response::json(200, &body))
}

/// Runs a query and builds the ListResponse.
pub fn run(
    req: &Request,
    store: &mut dyn Store,
    rt: &'static ResourceType,
    q: &Query,
) -> ScimResult<Value> {
    let filter = q
        .filter
        .as_deref()
        .filter(|f| !f.trim().is_empty())
        .map(|f| filter::parse(rt, f))
        .transpose()?;
    let projection = Projection::parse(
        rt,
        q.attributes.as_deref(),
        q.excluded_attributes.as_deref(),
    );
    let skip = q.start_index - 1;
    let (total, page) = match &filter {
        None => unfiltered(store, rt, skip, q.count)?,
        Some(f) => filtered(store, rt, f, skip, q.count)?,
    };
    let mut resources = Vec::with_capacity(page.len());
    for (doc, mut body) in page {
        render_value(
            store,
            &req.context.base_url,
            rt,
            &doc,
            &mut body,
            &projection,
        )?;
        resources.push(body);
    }
    Ok(json!({
        "schemas": [LIST_RESPONSE],
        "totalResults": total,
        "itemsPerPage": resources.len(),
        "startIndex": q.start_index,
        "Resources": resources,
    }))
}

type Hits = Vec<(Document, Value)>;

/// No filter: the host counts and pages in `seq` order.
fn unfiltered(
    store: &mut dyn Store,
    rt: &ResourceType,
    skip: u64,
    count: u64,
) -> ScimResult<(u64, Hits)> {
    let total = store.count(rt.name, &Selection::All)?;
    if count == 0 || skip >= total {
        return Ok((total, Vec::new()));
    }
    let page = Page {
        after: None,
        offset: skip,
        limit: count as u32,
        descending: false,
    };
    let docs = store.scan(rt.name, &Selection::All, page)?;
    let hits = docs
        .into_iter()
        .map(|d| parse_body(&d).map(|b| (d, b)))
        .collect::<ScimResult<_>>()?;
    Ok((total, hits))
}

/// Keeps the matches that fall in the requested window and counts them all.
struct Window<'f> {
    filter: &'f Filter,
    skip: u64,
    count: u64,
    total: u64,
    hits: Hits,
}

impl Window<'_> {
    fn offer(&mut self, doc: Document) -> ScimResult<()> {
        let body = parse_body(&doc)?;
        if self.filter.matches(&body) {
            if self.total >= self.skip && (self.hits.len() as u64) < self.count {
                self.hits.push((doc, body));
            }
            self.total += 1;
        }
        Ok(())
    }
}

/// A filter: read the plan's candidates, keep the matches, count them all.
fn filtered(
    store: &mut dyn Store,
    rt: &ResourceType,
    f: &Filter,
    skip: u64,
    count: u64,
) -> ScimResult<(u64, Hits)> {
    let mut w = Window {
        filter: f,
        skip,
        count,
        total: 0,
        hits: Vec::new(),
    };
    let selection = match plan(rt, Some(f)) {
        Plan::Id(id) => {
            if let Some(doc) = store.get(rt.name, &id)? {
                w.offer(doc)?;
            }
            return Ok((w.total, w.hits));
        }
        p => p.selection(),
    };
    let mut after = None;
    loop {
        let chunk = store.scan(rt.name, &selection, Page::after(after, CHUNK))?;
        after = chunk.last().map(|d| d.seq);
        let done = chunk.len() < CHUNK as usize;
        for doc in chunk {
            w.offer(doc)?;
        }
        if done {
            return Ok((w.total, w.hits));
        }
    }
}
