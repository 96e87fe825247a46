//! Executing a query: candidates from the plan, the whole filter evaluated on
//! each, then index or cursor paging (or an in-memory sort), projection and
//! the ListResponse.

use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimResult};
use crate::filter::{self, Filter};
use crate::http::{Request, Response};
use crate::path::Path;
use crate::projection::Projection;
use crate::resource::partial::parse_keys;
use crate::resource::render::{
    complete_meta, groups_many, parse_body, relation_values, render_value,
};
use crate::schema::{Relation, ResourceType};
use crate::store::{Document, Page, Selection, Store};

use super::cursor::{self, Direction, Position};
use super::plan::{Plan, exact_selection, plan};
use super::sort;
use super::{Paging, Query};

pub const LIST_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// Most documents read per host call while walking.
const CHUNK: u32 = 1000;

/// Where a walk starts, which way it goes and how much it reads first.
#[derive(Clone, Copy)]
struct Start {
    /// Strictly after (or before, when `descending`) this `seq`.
    from: Option<u64>,
    descending: bool,
    /// Documents asked of the host in the first call; each later call
    /// doubles it up to `CHUNK`, so a walk that stops early (a cursor page,
    /// an existence probe) reads little and a long one makes few calls.
    first: u32,
}

impl Start {
    /// Every match, in creation order.
    const ALL: Start = Start {
        from: None,
        descending: false,
        first: CHUNK,
    };
}

/// A matching resource.
struct Hit {
    part: usize,
    doc: Document,
    /// The parsed body: whole, or only what the filter and sort read (see
    /// [`Part::keys`]) until [`Hit::whole`] reads the rest.
    body: Value,
    whole: bool,
}

impl Hit {
    /// The hit with its whole body, for a page about to be rendered. What
    /// testing the filter added (the relation) is kept.
    fn whole(mut self, part: &Part) -> ScimResult<Hit> {
        if self.whole {
            return Ok(self);
        }
        let mut body = parse_body(&self.doc)?;
        let relation = part.rt.relation_attribute().name;
        if let (Value::Object(from), Value::Object(to)) = (&mut self.body, &mut body)
            && let Some(values) = from.remove(relation)
        {
            to.insert(relation.into(), values);
        }
        self.body = body;
        self.whole = true;
        Ok(self)
    }
}

/// One resource type's share of a query.
struct Part {
    rt: &'static ResourceType,
    filter: Option<Filter>,
    plan: Plan,
    projection: Projection,
    /// The host selection that is exactly the matches, if any: then counts
    /// and pages come from the host without reading every match.
    exact: Option<Selection>,
    /// The filter tests `members`/`groups`, which live in the relation.
    needs_relation: bool,
    /// The top-level keys the filter and the sort read: candidates are
    /// parsed only that far, and pages in full.
    keys: Vec<&'static str>,
    sort: Option<Path>,
}

/// Runs a query over one resource type (or several, for a root `/.search`).
pub fn run(
    req: &Request,
    store: &mut dyn Store,
    types: &[&'static ResourceType],
    q: &Query,
) -> ScimResult<Response> {
    let parts = prepare(types, q)?;
    let base = req.context.base_url.as_str();
    let mut out = Map::new();
    out.insert("schemas".into(), json!([LIST_RESPONSE]));
    let (total, hits) = match (&q.paging, &q.sort_by) {
        (Paging::Cursor(c), _) => {
            let [part] = parts.as_slice() else {
                return Err(ScimError::invalid_value(
                    "Cursor paging needs a single resource type; use /Users/.search or /Groups/.search",
                ));
            };
            let key = &req.context.signing_key;
            let scope = format!(
                "{}\u{0}{}\u{0}{}",
                req.context.tenant,
                part.rt.name,
                q.filter.as_deref().unwrap_or("").trim()
            );
            let page = cursor_page(store, base, part, c.as_deref(), q.count, key, &scope)?;
            if let Some(next) = page.next {
                out.insert("nextCursor".into(), json!(next));
            }
            if let Some(prev) = page.previous {
                out.insert("previousCursor".into(), json!(prev));
            }
            (page.total, page.hits)
        }
        (Paging::Index(start), Some(_)) => {
            sorted_page(store, base, &parts, *start - 1, q.count, q.descending)?
        }
        (Paging::Index(start), None) => index_page(store, base, &parts, *start - 1, q.count)?,
    };
    let mut hits = hits
        .into_iter()
        .map(|h| {
            let part = &parts[h.part];
            h.whole(part)
        })
        .collect::<ScimResult<Vec<Hit>>>()?;
    prefetch_groups(store, base, &parts, &mut hits)?;
    let mut resources = Vec::with_capacity(hits.len());
    for mut hit in hits {
        let part = &parts[hit.part];
        render_value(
            store,
            base,
            part.rt,
            &hit.doc,
            &mut hit.body,
            &part.projection,
        )?;
        resources.push(hit.body);
    }
    out.insert("totalResults".into(), json!(total));
    out.insert("itemsPerPage".into(), json!(resources.len()));
    if let Paging::Index(start) = q.paging {
        out.insert("startIndex".into(), json!(start));
    }
    out.insert("Resources".into(), Value::Array(resources));
    let plans: Vec<&str> = parts.iter().map(|p| p.plan.name()).collect();
    Ok(Response::json(200, &Value::Object(out)).with_log("plan", plans.join(",")))
}

/// Reads the `groups` of every user on the page in one go instead of once
/// per user.
fn prefetch_groups(
    store: &mut dyn Store,
    base: &str,
    parts: &[Part],
    hits: &mut [Hit],
) -> ScimResult<()> {
    let wanted = |h: &Hit| {
        let part = &parts[h.part];
        part.rt.relation == Relation::Groups
            && part
                .projection
                .wants(part.rt.schema, part.rt.relation_attribute())
            && h.body.get("groups").is_none()
    };
    let ids: Vec<String> = hits
        .iter()
        .filter(|h| wanted(h))
        .map(|h| h.doc.id.clone())
        .collect();
    if ids.is_empty() {
        return Ok(());
    }
    let mut groups = groups_many(store, base, &ids)?;
    for hit in hits.iter_mut().filter(|h| wanted(h)) {
        let values = groups.remove(&hit.doc.id).unwrap_or_default();
        if let Value::Object(m) = &mut hit.body {
            m.insert("groups".into(), Value::Array(values));
        }
    }
    Ok(())
}

/// Parses the filter and plans the query for each resource type. In a root
/// search a filter that does not apply to some type (an attribute it lacks)
/// just excludes that type; it is an error only if it applies to none.
fn prepare(types: &[&'static ResourceType], q: &Query) -> ScimResult<Vec<Part>> {
    let text = q.filter.as_deref().filter(|f| !f.trim().is_empty());
    let mut parts = Vec::new();
    let mut first_error = None;
    for rt in types {
        let filter = match text.map(|f| filter::parse(rt, f)).transpose() {
            Ok(f) => f,
            Err(e) if types.len() > 1 => {
                first_error.get_or_insert(e);
                continue;
            }
            Err(e) => return Err(e),
        };
        let sort = match &q.sort_by {
            Some(s) => sort::resolve(rt, s)?,
            None => None,
        };
        if q.sort_by.is_some() && sort.is_none() && types.len() == 1 {
            return Err(ScimError::invalid_value(format!(
                "Cannot sort by '{}': {} has no such attribute",
                q.sort_by.as_deref().unwrap_or_default(),
                rt.name
            )));
        }
        let relation = rt.relation_attribute();
        let mut keys = Vec::new();
        if let Some(f) = &filter {
            f.keys(&mut keys);
        }
        if let Some(p) = &sort
            && !keys.contains(&p.key())
        {
            keys.push(p.key());
        }
        parts.push(Part {
            keys,
            rt,
            plan: plan(rt, filter.as_ref()),
            exact: exact_selection(rt, filter.as_ref()),
            needs_relation: filter.as_ref().is_some_and(|f| f.mentions(relation)),
            filter,
            projection: Projection::parse(
                rt,
                q.attributes.as_deref(),
                q.excluded_attributes.as_deref(),
            )?,
            sort,
        });
    }
    match (parts.is_empty(), first_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(parts),
    }
}

/// Tests a candidate against the part's filter, parsing only the keys the
/// filter reads, and keeps it when it matches.
fn offer(
    store: &mut dyn Store,
    base: &str,
    part_index: usize,
    part: &Part,
    doc: Document,
) -> ScimResult<Option<Hit>> {
    let Some(f) = &part.filter else {
        let body = parse_body(&doc)?;
        return Ok(Some(Hit {
            part: part_index,
            doc,
            body,
            whole: true,
        }));
    };
    let mut body = parse_keys(&doc, &part.keys)?;
    if part.keys.contains(&"meta") {
        complete_meta(base, part.rt, &doc, &mut body);
    }
    if part.needs_relation {
        let values = relation_values(store, base, part.rt, &doc.id)?;
        if let Value::Object(m) = &mut body {
            m.insert(
                part.rt.relation_attribute().name.into(),
                Value::Array(values),
            );
        }
    }
    if !f.matches(&body) {
        return Ok(None);
    }
    Ok(Some(Hit {
        part: part_index,
        doc,
        body,
        whole: false,
    }))
}

/// Walks a part's matches in `seq` order from `start`, until `visit`
/// returns false.
fn walk(
    store: &mut dyn Store,
    base: &str,
    part_index: usize,
    part: &Part,
    start: Start,
    mut visit: impl FnMut(Hit) -> bool,
) -> ScimResult<()> {
    let Start {
        from, descending, ..
    } = start;
    let beyond = |seq: u64| match (from, descending) {
        (None, _) => true,
        (Some(f), false) => seq > f,
        (Some(f), true) => seq < f,
    };
    let ids = match &part.plan {
        Plan::Id(id) => Some(vec![id.clone()]),
        Plan::ContainersOf(member) => Some(
            store
                .groups_of_one(part.rt.name, member)?
                .into_iter()
                .map(|e| e.id)
                .collect(),
        ),
        _ => None,
    };
    if let Some(ids) = ids {
        let mut docs: Vec<Document> = store
            .get_many(part.rt.name, &ids)?
            .into_iter()
            .filter(|d| beyond(d.seq))
            .collect();
        docs.sort_by_key(|d| d.seq);
        if descending {
            docs.reverse();
        }
        for doc in docs {
            if let Some(hit) = offer(store, base, part_index, part, doc)?
                && !visit(hit)
            {
                break;
            }
        }
        return Ok(());
    }
    let selection = part.plan.selection();
    let mut after = from;
    let mut limit = start.first.clamp(1, CHUNK);
    loop {
        let page = Page {
            after,
            offset: 0,
            limit,
            descending,
        };
        let chunk = store.scan(part.rt.name, &selection, page)?;
        let done = chunk.len() < limit as usize;
        limit = limit.saturating_mul(2).min(CHUNK);
        after = chunk.last().map(|d| d.seq).or(after);
        for doc in chunk {
            if let Some(hit) = offer(store, base, part_index, part, doc)?
                && !visit(hit)
            {
                return Ok(());
            }
        }
        if done {
            return Ok(());
        }
    }
}

/// Number of matches of a part.
fn count_matches(store: &mut dyn Store, base: &str, i: usize, part: &Part) -> ScimResult<u64> {
    if let Some(selection) = &part.exact {
        return Ok(store.count(part.rt.name, selection)?);
    }
    let mut n = 0;
    walk(store, base, i, part, Start::ALL, |_| {
        n += 1;
        true
    })?;
    Ok(n)
}

/// Index paging in creation order, across the parts in turn.
fn index_page(
    store: &mut dyn Store,
    base: &str,
    parts: &[Part],
    mut skip: u64,
    count: u64,
) -> ScimResult<(u64, Vec<Hit>)> {
    let mut total = 0;
    let mut hits = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let need = count - hits.len() as u64;
        let matched = if let Some(selection) = &part.exact {
            // The host counts and skips without the engine reading documents.
            let n = store.count(part.rt.name, selection)?;
            if need > 0 && skip < n {
                let limit = need.min(n - skip);
                // Skipping costs the host O(offset), so a window in the back
                // half is read backwards from the end: the last page is as
                // cheap as the first.
                let from_end = n - skip - limit;
                let descending = from_end < skip;
                let page = Page {
                    after: None,
                    offset: if descending { from_end } else { skip },
                    limit: limit.min(u32::MAX as u64) as u32,
                    descending,
                };
                let mut docs = store.scan(part.rt.name, selection, page)?;
                if descending {
                    docs.reverse();
                }
                for doc in docs {
                    let body = parse_body(&doc)?;
                    hits.push(Hit {
                        part: i,
                        doc,
                        body,
                        whole: true,
                    });
                }
            }
            n
        } else {
            let mut n = 0u64;
            walk(store, base, i, part, Start::ALL, |hit| {
                if n >= skip && (hits.len() as u64) < count {
                    hits.push(hit);
                }
                n += 1;
                true
            })?;
            n
        };
        total += matched;
        skip = skip.saturating_sub(matched);
    }
    Ok((total, hits))
}

/// `sortBy`: every match is read and sorted, then the window is cut.
fn sorted_page(
    store: &mut dyn Store,
    base: &str,
    parts: &[Part],
    skip: u64,
    count: u64,
    descending: bool,
) -> ScimResult<(u64, Vec<Hit>)> {
    let mut all: Vec<(Option<sort::Key>, Hit)> = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        walk(store, base, i, part, Start::ALL, |hit| {
            let key = part.sort.as_ref().and_then(|p| sort::key(p, &hit.body));
            all.push((key, hit));
            true
        })?;
    }
    // Stable sort: ties keep creation order (and type order in a root search).
    all.sort_by(|(a, _), (b, _)| sort::compare(a, b, descending));
    let total = all.len() as u64;
    let hits = all
        .into_iter()
        .skip(skip as usize)
        .take(count as usize)
        .map(|(_, h)| h)
        .collect();
    Ok((total, hits))
}

/// One cursor page.
struct CursorPage {
    total: u64,
    hits: Vec<Hit>,
    next: Option<String>,
    previous: Option<String>,
}

fn now_secs() -> i64 {
    crate::ambient::now().unix_timestamp()
}

/// Cursor paging (RFC 9865) in creation order: a page is the `count`
/// matches after (or before) the cursor's position; one extra match is read
/// to know whether another page follows.
fn cursor_page(
    store: &mut dyn Store,
    base: &str,
    part: &Part,
    cursor: Option<&str>,
    count: u64,
    key: &[u8],
    scope: &str,
) -> ScimResult<CursorPage> {
    let now = now_secs();
    let pos = cursor
        .map(|c| cursor::decode(key, scope, c, now))
        .transpose()?;
    let total = count_matches(store, base, 0, part)?;
    let encode = |direction, seq| cursor::encode(key, scope, Position { direction, seq }, now);
    if count == 0 {
        return Ok(CursorPage {
            total,
            hits: Vec::new(),
            next: None,
            previous: None,
        });
    }
    let take = |store: &mut dyn Store, from, descending| -> ScimResult<Vec<Hit>> {
        let mut hits = Vec::new();
        // One more than the page, to know whether another follows.
        let first = (count + 1).min(CHUNK as u64) as u32;
        let start = Start {
            from,
            descending,
            first,
        };
        walk(store, base, 0, part, start, |hit| {
            hits.push(hit);
            (hits.len() as u64) <= count
        })?;
        Ok(hits)
    };
    let exists = |store: &mut dyn Store, from, descending| -> ScimResult<bool> {
        let mut found = false;
        let start = Start {
            from,
            descending,
            first: 1,
        };
        walk(store, base, 0, part, start, |_| {
            found = true;
            false
        })?;
        Ok(found)
    };
    match pos {
        None
        | Some(Position {
            direction: Direction::Forward,
            ..
        }) => {
            let from = pos.map(|p| p.seq);
            let mut hits = take(store, from, false)?;
            let more = hits.len() as u64 > count;
            hits.truncate(count as usize);
            let next = more.then(|| {
                encode(
                    Direction::Forward,
                    hits.last().expect("a full page").doc.seq,
                )
            });
            let boundary = hits.first().map(|h| h.doc.seq).or(from.map(|f| f + 1));
            let previous = match boundary {
                Some(b) if from.is_some() && exists(store, Some(b), true)? => {
                    Some(encode(Direction::Backward, b))
                }
                _ => None,
            };
            Ok(CursorPage {
                total,
                hits,
                next,
                previous,
            })
        }
        Some(Position {
            direction: Direction::Backward,
            seq,
        }) => {
            let mut hits = take(store, Some(seq), true)?;
            let more = hits.len() as u64 > count;
            hits.truncate(count as usize);
            hits.reverse();
            let previous = more.then(|| encode(Direction::Backward, hits[0].doc.seq));
            let boundary = hits.last().map_or(seq.saturating_sub(1), |h| h.doc.seq);
            let next =
                exists(store, Some(boundary), false)?.then(|| encode(Direction::Forward, boundary));
            Ok(CursorPage {
                total,
                hits,
                next,
                previous,
            })
        }
    }
}
