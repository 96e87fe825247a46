//! `POST /Bulk` (RFC 7644 §3.7).
//!
//! Each operation runs as an ordinary request through the same router,
//! inside a savepoint of its own: a failed operation leaves nothing behind
//! while the others still commit. `bulkId:x` references (in paths and
//! anywhere in `data`) are resolved in dependency order, whatever the order
//! of the operations; an operation whose reference cannot be resolved (its
//! creator failed, does not exist, or the references form a cycle) fails
//! with 409.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value, json};

use crate::error::{ScimError, ScimResult};
use crate::http::{Request, Response, SCIM_CONTENT_TYPE};
use crate::message::{check_schema, field};
use crate::store::Store;

use crate::schema::CAPABILITIES;

pub const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
pub const BULK_RESPONSE: &str = "urn:ietf:params:scim:api:messages:2.0:BulkResponse";

/// One operation of the request, as sent.
struct BulkOp {
    method: String,
    path: String,
    bulk_id: Option<String>,
    version: Option<String>,
    data: Option<Value>,
}

/// Reads one operation; a malformed one becomes that operation's error.
fn parse_op(v: &Value) -> Result<BulkOp, ScimError> {
    let Value::Object(m) = v else {
        return Err(ScimError::invalid_syntax(
            "Each operation must be a JSON object",
        ));
    };
    let text = |name: &str| field(m, name).and_then(Value::as_str).map(str::to_string);
    let method = text("method")
        .map(|s| s.to_ascii_uppercase())
        .filter(|s| matches!(s.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
        .ok_or_else(|| ScimError::invalid_syntax("'method' must be POST, PUT, PATCH or DELETE"))?;
    let path = text("path").ok_or_else(|| ScimError::invalid_syntax("'path' is required"))?;
    let data = field(m, "data").filter(|d| !d.is_null()).cloned();
    if method != "DELETE" && !data.as_ref().is_some_and(Value::is_object) {
        return Err(ScimError::invalid_syntax(format!(
            "{method} operations need a 'data' object"
        )));
    }
    Ok(BulkOp {
        method,
        path,
        bulk_id: text("bulkId"),
        version: text("version"),
        data,
    })
}

/// The bulkIds a value refers to (`"bulkId:x"` strings).
fn references(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:") {
                out.push(id.to_string());
            }
        }
        Value::Array(items) => items.iter().for_each(|i| references(i, out)),
        Value::Object(m) => m.values().for_each(|i| references(i, out)),
        _ => {}
    }
}

fn path_references(path: &str) -> Vec<String> {
    path.split('/')
        .filter_map(|s| s.strip_prefix("bulkId:"))
        .map(str::to_string)
        .collect()
}

/// Replaces `bulkId:x` with the id created for `x`.
fn substitute(v: &mut Value, ids: &HashMap<String, String>) {
    match v {
        Value::String(s) => {
            if let Some(id) = s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                *s = id.clone();
            }
        }
        Value::Array(items) => items.iter_mut().for_each(|i| substitute(i, ids)),
        Value::Object(m) => m.values_mut().for_each(|i| substitute(i, ids)),
        _ => {}
    }
}

fn substitute_path(path: &str, ids: &HashMap<String, String>) -> String {
    path.split('/')
        .map(
            |s| match s.strip_prefix("bulkId:").and_then(|b| ids.get(b)) {
                Some(id) => id.as_str(),
                None => s,
            },
        )
        .collect::<Vec<_>>()
        .join("/")
}

/// The result entry of one operation.
fn result(
    op: Option<&BulkOp>,
    status: u16,
    location: Option<String>,
    version: Option<String>,
    error: Option<Value>,
) -> Value {
    let mut r = Map::new();
    if let Some(op) = op {
        r.insert("method".into(), json!(op.method));
        if let Some(b) = &op.bulk_id {
            r.insert("bulkId".into(), json!(b));
        }
    }
    if let Some(l) = location {
        r.insert("location".into(), json!(l));
    }
    if let Some(v) = version {
        r.insert("version".into(), json!(v));
    }
    r.insert("status".into(), json!(status.to_string()));
    if let Some(e) = error {
        r.insert("response".into(), e);
    }
    Value::Object(r)
}

fn failure(op: Option<&BulkOp>, e: ScimError) -> Value {
    result(op, e.status, None, None, Some(e.to_json()))
}

/// `POST /Bulk`.
pub fn bulk(req: &Request, store: &mut dyn Store) -> ScimResult<Response> {
    let body = req.json_object()?;
    check_schema(&body, BULK_REQUEST)?;
    let fail_on_errors = match field(&body, "failOnErrors") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_u64() {
            Some(n) if n >= 1 => Some(n),
            _ => {
                return Err(ScimError::invalid_syntax(
                    "'failOnErrors' must be a positive integer",
                ));
            }
        },
    };
    let Some(Value::Array(raw_ops)) = field(&body, "Operations") else {
        return Err(ScimError::invalid_syntax(
            "A Bulk request needs an 'Operations' list",
        ));
    };
    let max = CAPABILITIES.bulk_max_operations;
    if raw_ops.len() as u64 > max {
        return Err(ScimError::new(
            413,
            None,
            format!(
                "The Bulk request has {} operations; the maximum is {max} (see bulk.maxOperations)",
                raw_ops.len()
            ),
        ));
    }

    let ops: Vec<Result<BulkOp, ScimError>> = raw_ops.iter().map(parse_op).collect();
    let mut results: Vec<Option<Value>> = vec![None; ops.len()];
    let mut errors = 0u64;
    let mut ids: HashMap<String, String> = HashMap::new();
    let mut failed: HashSet<String> = HashSet::new();
    let mut defined: HashMap<String, usize> = HashMap::new();
    let mut pending: Vec<usize> = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        match op {
            Err(e) => {
                results[i] = Some(failure(None, e.clone()));
                errors += 1;
            }
            Ok(op) => {
                if let Some(b) = &op.bulk_id
                    && defined.insert(b.clone(), i).is_some()
                {
                    results[i] = Some(failure(
                        Some(op),
                        ScimError::invalid_value(format!(
                            "bulkId '{b}' is used by more than one operation"
                        )),
                    ));
                    errors += 1;
                    continue;
                }
                pending.push(i);
            }
        }
    }
    let over = |errors: u64| fail_on_errors.is_some_and(|n| errors >= n);

    // Run every operation whose references are resolved, until none is left
    // or no progress is possible (a cycle or a missing bulkId).
    while !pending.is_empty() && !over(errors) {
        let mut progressed = false;
        let mut still = Vec::new();
        for &i in &pending {
            if over(errors) {
                still.push(i);
                continue;
            }
            let op = ops[i].as_ref().expect("pending operations parsed");
            let mut refs = path_references(&op.path);
            if let Some(d) = &op.data {
                references(d, &mut refs);
            }
            if let Some(bad) = refs
                .iter()
                .find(|r| failed.contains(*r) || !defined.contains_key(*r))
            {
                let why = if defined.contains_key(bad) {
                    format!("bulkId '{bad}' refers to an operation that failed")
                } else {
                    format!("bulkId '{bad}' is not defined by any operation of this request")
                };
                results[i] = Some(failure(Some(op), ScimError::new(409, None, why)));
                errors += 1;
                if let Some(b) = &op.bulk_id {
                    failed.insert(b.clone());
                }
                progressed = true;
                continue;
            }
            if !refs.iter().all(|r| ids.contains_key(r)) {
                still.push(i);
                continue;
            }
            let Ran {
                entry,
                status,
                created,
            } = run(req, store, op, &ids)?;
            progressed = true;
            match (created, &op.bulk_id) {
                (Some(id), Some(b)) => {
                    ids.insert(b.clone(), id);
                }
                (None, Some(b)) => {
                    failed.insert(b.clone());
                }
                _ => {}
            }
            if status >= 400 {
                errors += 1;
            }
            results[i] = Some(entry);
        }
        pending = still;
        if !progressed {
            for &i in &pending {
                let op = ops[i].as_ref().expect("pending operations parsed");
                results[i] = Some(failure(
                    Some(op),
                    ScimError::new(
                        409,
                        None,
                        "Circular bulkId references: these operations each wait for another; break the cycle, e.g. create first and PATCH the references after",
                    ),
                ));
                errors += 1;
            }
            pending.clear();
        }
    }
    // Operations not reached because failOnErrors was hit are left out
    // (RFC 7644 §3.7.3).
    let operations: Vec<Value> = results.into_iter().flatten().collect();
    Ok(Response::json(
        200,
        &json!({"schemas": [BULK_RESPONSE], "Operations": operations}),
    )
    .with_log("bulk_operations", operations.len().to_string())
    .with_log("bulk_errors", errors.to_string()))
}

/// What running one operation gave.
struct Ran {
    /// Its entry in the response's `Operations`.
    entry: Value,
    status: u16,
    /// The id of the resource a POST created.
    created: Option<String>,
}

impl Ran {
    fn failed(op: &BulkOp, e: ScimError) -> Self {
        Ran {
            status: e.status,
            entry: failure(Some(op), e),
            created: None,
        }
    }
}

/// Runs one operation in its own savepoint.
fn run(
    req: &Request,
    store: &mut dyn Store,
    op: &BulkOp,
    ids: &HashMap<String, String>,
) -> ScimResult<Ran> {
    let path = substitute_path(&op.path, ids);
    let segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    let valid = matches!(
        (op.method.as_str(), segments.as_slice()),
        ("POST", [_]) | ("PUT" | "PATCH" | "DELETE", [_, _])
    );
    if !valid
        || segments
            .first()
            .is_some_and(|s| s.eq_ignore_ascii_case("Bulk"))
    {
        let e = ScimError::invalid_path(format!(
            "'{}' is not a valid path for {} in a Bulk request (POST takes an endpoint such as /Users, the others /Users/{{id}})",
            op.path, op.method
        ));
        return Ok(Ran::failed(op, e));
    }
    let mut data = op.data.clone();
    if let Some(d) = &mut data {
        substitute(d, ids);
    }
    let mut headers = vec![("content-type".to_string(), SCIM_CONTENT_TYPE.to_string())];
    if let Some(v) = &op.version {
        headers.push(("if-match".to_string(), v.clone()));
    }
    let sub = Request {
        method: op.method.clone(),
        path: format!("/{}", segments.join("/")),
        query: String::new(),
        headers,
        body: data.map(|d| d.to_string().into_bytes()).unwrap_or_default(),
        context: req.context.clone(),
    };
    let savepoint = store.savepoint()?;
    let resp = super::handle(&sub, store);
    if resp.status >= 400 {
        store.rollback_to(savepoint)?;
        return Ok(Ran {
            entry: result(Some(op), resp.status, None, None, Some(resp.body_json())),
            status: resp.status,
            created: None,
        });
    }
    store.release(savepoint)?;
    let location = resp
        .header("location")
        .map(str::to_string)
        .unwrap_or_else(|| format!("{}{}", req.context.base_url, sub.path));
    let created = (op.method == "POST")
        .then(|| location.rsplit('/').next().map(str::to_string))
        .flatten();
    let entry = result(
        Some(op),
        resp.status,
        Some(location),
        resp.header("etag").map(str::to_string),
        None,
    );
    Ok(Ran {
        entry,
        status: resp.status,
        created,
    })
}
