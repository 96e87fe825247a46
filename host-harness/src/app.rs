//! The running host: everything a request or a background batch needs, and
//! the transaction around each engine call.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, Semaphore};

use crate::bindings::lms::scim::types::{HttpRequest, HttpResponse, RequestContext};
use crate::db::{self, Begin, Pool, Tenant, TokenKind, run};
use crate::events::{self, EventRow, Stamp};
use crate::fault;
use crate::imports::SqlStore;
use crate::imports::plugin::PluginMode;
use crate::metrics::Metrics;
use crate::runtime::{RequestState, Runtime};

/// Background work settings.
#[derive(Debug, Clone)]
pub struct Background {
    /// Users per background batch.
    pub batch: u32,
    /// Pause between batches, leaving the write lock to requests.
    pub pause: Duration,
    /// Days the sync log keeps events.
    pub retention_days: u32,
}

/// Everything a request needs.
pub struct App {
    pub runtime: Runtime,
    pub pool: Pool,
    /// Which database `pool` connects to.
    pub dialect: db::Dialect,
    pub max_body_bytes: usize,
    /// Absolute SCIM base URL; derived from the `Host` header when unset.
    pub public_url: Option<String>,
    pub permits: Arc<Semaphore>,
    /// The queue for SQLite's one write lock (SCIM requests on PostgreSQL
    /// wait for their tenant's write lock instead, `db::Connection::begin`). Writers wait here in arrival
    /// order (tokio's mutex is fair) instead of in SQLite's busy handler,
    /// whose growing sleeps make latency explode under concurrent writers.
    /// Background batches queue here too.
    pub writers: tokio::sync::Mutex<()>,
    pub request_timeout_ms: u128,
    pub metrics: Metrics,
    /// Woken when a request queued background work.
    pub outbox: Notify,
    /// What `GET /admin/v1/sync` counted of re-mappings in progress.
    pub progress: crate::outbox::Progress,
    pub background: Background,
    /// SHA-256 of the token `/metrics` requires; `None` disables it.
    pub metrics_token: Option<[u8; 32]>,
    /// Each tenant's share of the server.
    pub gates: crate::gate::Gates,
    /// Previews, installs and the other mapping work of every tenant.
    pub mapping_work: crate::gate::MappingWork,
    /// Errors whose body never changes (401), rendered once.
    pub rendered: std::sync::Mutex<std::collections::HashMap<(u16, &'static str), HttpResponse>>,
}

/// What the engine needs to know about a request, before auth.
pub struct Incoming {
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    pub context: RequestContext,
    /// Who sent it ([`App::authenticate`]).
    pub tenant: Tenant,
    /// Set when the host already knows the answer (413).
    pub reject: Option<(u16, String)>,
    pub started: Instant,
}

/// What a request produced.
pub struct Outcome {
    pub response: HttpResponse,
    pub tenant: Option<String>,
}

/// SQLite virtual-machine steps between checks of a request's deadline.
const SQL_PROGRESS_STEPS: i32 = 10_000;

/// Requests that only read run in a deferred (snapshot) transaction and
/// never queue for the write lock.
pub fn is_read_only(method: &str) -> bool {
    matches!(method, "GET" | "HEAD")
}

/// The bearer token of an `Authorization` header.
pub fn bearer(header: Option<&str>) -> Option<&str> {
    let h = header?.trim();
    let (scheme, token) = h.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// A value of the engine's log line.
pub fn log_value<'a>(log: &'a [(String, String)], key: &str) -> Option<&'a str> {
    log.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// What a caught panic said (its `&str` or `String` payload).
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("a panic without a message")
}

/// The sync-log action of a failed request's method.
fn action_of(method: &str) -> &'static str {
    match method {
        "POST" => "create",
        "PUT" => "replace",
        "PATCH" => "update",
        "DELETE" => "delete",
        _ => "read",
    }
}

/// What the engine's run of a request left: its answer, the store's
/// counters and journal, and the connection (none if the store lost it).
struct Ran {
    result: wasmtime::Result<HttpResponse>,
    stats: crate::imports::store::Stats,
    journal: crate::imports::Journal,
    conn: Option<db::Conn>,
}

/// What finishing a request (commit, rollback, trap) needs to know.
struct Done<'a> {
    conn: &'a db::Conn,
    tenant: i64,
    name: String,
    method: &'a str,
    context: &'a RequestContext,
    started: Instant,
    deadline: Instant,
    read_only: bool,
    stats: crate::imports::store::Stats,
}

impl Done<'_> {
    /// The sync-log stamp of the request's events.
    fn stamp(&self) -> Stamp {
        Stamp {
            request_id: self.context.request_id.clone(),
            change_id: self.context.request_id.clone(),
            duration_us: self.started.elapsed().as_micros() as u64,
        }
    }
}

impl App {
    /// One SCIM request of an authenticated tenant: open its transaction
    /// ([`App::begin`]), run the engine in it ([`App::run_engine`]), then
    /// commit with its sync-log events ([`App::commit`]) or roll back and
    /// record the failure ([`App::roll_back`]).
    pub fn execute(&self, inc: Incoming) -> Outcome {
        let Incoming {
            method,
            path,
            query,
            headers,
            body,
            mut context,
            tenant:
                Tenant {
                    id,
                    name,
                    signing_key,
                    ..
                },
            reject,
            started,
        } = inc;
        context.tenant = name.clone();
        context.subject = Some(name.clone());
        context.signing_key = signing_key;
        if let Some((status, detail)) = reject {
            return self.error(Some(name), &context, status, &detail);
        }
        let deadline = started + Duration::from_millis(self.request_timeout_ms as u64);
        let read_only = is_read_only(&method);
        let conn = match self.begin(id, deadline, read_only) {
            Ok(conn) => conn,
            Err(detail) => return self.error(Some(name), &context, 503, detail),
        };
        let request = HttpRequest {
            method,
            path,
            query,
            headers,
            body,
            context,
        };
        let ran = self.run_engine(conn, id, &request);
        let (context, method) = (&request.context, request.method.as_str());
        let Some(conn) = ran.conn else {
            return self.error(Some(name), context, 500, "The database connection was lost");
        };
        // Commit and rollback are never interrupted.
        if let Some(c) = conn.sqlite() {
            c.progress_handler(0, None::<fn() -> bool>);
        }
        let done = Done {
            conn: &conn,
            tenant: id,
            name,
            method,
            context,
            started,
            deadline,
            read_only,
            stats: ran.stats,
        };
        match ran.result {
            Ok(response) if response.status < 400 && ran.journal.failed.is_none() => {
                self.commit(done, response, &ran.journal)
            }
            Ok(response) => self.roll_back(done, response, ran.journal.failed.as_deref()),
            Err(e) => self.trapped(done, e),
        }
    }

    /// A connection with the request's transaction begun: a read on one
    /// snapshot, a write holding its tenant's write lock
    /// (`db::Connection::begin`), waiting at most until `deadline`. SQL
    /// run for the engine counts toward the deadline too: past it, SQLite
    /// interrupts the statement (the pool clears the handler when the
    /// connection comes back) and PostgreSQL cancels it. The `Err` is the
    /// 503's detail.
    fn begin(
        &self,
        tenant: i64,
        deadline: Instant,
        read_only: bool,
    ) -> Result<db::Conn, &'static str> {
        let conn = self.pool.get().map_err(|e| {
            tracing::error!(error = %e, "no database connection");
            "The database is unavailable; retry later"
        })?;
        if let Some(c) = conn.sqlite() {
            c.progress_handler(SQL_PROGRESS_STEPS, Some(move || Instant::now() >= deadline));
        }
        let mode = if read_only {
            Begin::Read
        } else {
            Begin::Write(Some(tenant))
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if let Err(e) = conn.begin_within(mode, Some(left.as_millis() as u64)) {
            tracing::error!(error = %e, "could not begin a transaction");
            let _ = run(&conn, "ROLLBACK");
            return Err("The database is busy or unavailable; retry later");
        }
        Ok(conn)
    }

    /// Runs the engine on the request inside the begun transaction; hands
    /// back the connection (none if the store lost it), with what the
    /// engine's imports recorded.
    fn run_engine(&self, conn: db::Conn, tenant: i64, request: &HttpRequest) -> Ran {
        let store = SqlStore::new(conn, tenant)
            .with_change_id(&request.context.request_id)
            .with_plugins(self.runtime.plugins(), PluginMode::Installed);
        let (result, mut store) = self.runtime.handle(store, request);
        store.settle_plugin();
        let stats = store.stats;
        let journal = std::mem::take(&mut store.journal);
        Ran {
            result,
            stats,
            journal,
            conn: store.into_conn(),
        }
    }

    /// A request the engine answered with success: its events are written
    /// and the transaction committed; a commit that fails is a 503 and
    /// nothing stays.
    fn commit(
        &self,
        done: Done<'_>,
        mut response: HttpResponse,
        journal: &crate::imports::Journal,
    ) -> Outcome {
        let conn = done.conn;
        let committed =
            events::insert(conn, done.tenant, &done.stamp(), &journal.events).and_then(|_| {
                if !done.read_only {
                    fault::hit(fault::Point::BeforeCommit, &done.name);
                }
                run(conn, "COMMIT")
            });
        if let Err(e) = committed {
            tracing::error!(error = %e, "commit failed");
            let _ = run(conn, "ROLLBACK");
            return self.error(
                Some(done.name),
                done.context,
                503,
                "The change could not be saved; nothing was changed, retry later",
            );
        }
        self.metrics.journal(&done.name, journal);
        if journal.enqueued > 0 {
            self.outbox.notify_one();
        }
        response
            .log
            .push(("store_calls".into(), done.stats.calls.to_string()));
        response
            .log
            .push(("rows".into(), done.stats.rows.to_string()));
        Outcome {
            response,
            tenant: Some(done.name),
        }
    }

    /// A request the engine refused, or whose host import failed (`failed`:
    /// then a 503): rolled back, and a write's failure recorded.
    fn roll_back(
        &self,
        done: Done<'_>,
        mut response: HttpResponse,
        failed: Option<&str>,
    ) -> Outcome {
        let _ = run(done.conn, "ROLLBACK");
        if let Some(why) = failed {
            tracing::error!(error = %why, "a host import failed; rolled back");
            let detail = if Instant::now() >= done.deadline {
                self.timed_out(done.context)
            } else {
                format!("{why}; nothing was changed, retry later")
            };
            response = self
                .error(Some(done.name.clone()), done.context, 503, &detail)
                .response;
        }
        response
            .log
            .push(("store_calls".into(), done.stats.calls.to_string()));
        if !done.read_only || response.status >= 500 {
            self.record_failure(done.conn, done.tenant, done.method, &response, done.stamp());
        }
        Outcome {
            response,
            tenant: Some(done.name),
        }
    }

    /// A request the engine trapped on (or ran out of time in): rolled
    /// back, answered 500, recorded.
    fn trapped(&self, done: Done<'_>, e: wasmtime::Error) -> Outcome {
        let _ = run(done.conn, "ROLLBACK");
        let timed_out = e
            .downcast_ref::<wasmtime::Trap>()
            .is_some_and(|t| *t == wasmtime::Trap::Interrupt);
        let request_id = &done.context.request_id;
        tracing::error!(%request_id, error = ?e, timed_out, "engine trapped; rolled back");
        let detail = if timed_out {
            self.timed_out(done.context)
        } else {
            format!(
                "The request failed inside the engine; nothing was changed (request id {request_id})"
            )
        };
        let mut o = self.error(Some(done.name.clone()), done.context, 500, &detail);
        o.response.log.push((
            "trap".into(),
            if timed_out { "timeout" } else { "trap" }.into(),
        ));
        self.record_failure(
            done.conn,
            done.tenant,
            done.method,
            &o.response,
            done.stamp(),
        );
        o
    }

    /// The detail of a request cancelled at its deadline.
    fn timed_out(&self, context: &RequestContext) -> String {
        format!(
            "The request took longer than {} ms and was cancelled; nothing was changed (request id {})",
            self.request_timeout_ms, context.request_id
        )
    }

    /// The answer to a request whose [`App::execute`] panicked (`why` is
    /// the panic's message). Its transaction is gone: the connection that
    /// held it was dropped while unwinding and the pool closed it (see
    /// `db::Manager`). The failure goes to the tenant's sync log on a fresh
    /// connection, in a transaction of its own.
    pub fn panicked(
        &self,
        mut context: RequestContext,
        tenant: Tenant,
        method: &str,
        why: &str,
        started: Instant,
    ) -> Outcome {
        let request_id = context.request_id.clone();
        tracing::error!(request_id, panic = why, "request panicked; rolled back");
        let detail = format!(
            "The request failed inside the server; nothing was changed (request id {request_id})"
        );
        let conn = self.pool.get().ok();
        context.tenant = tenant.name.clone();
        context.subject = Some(tenant.name.clone());
        context.signing_key = tenant.signing_key;
        let mut o = self.error(Some(tenant.name), &context, 500, &detail);
        o.response.log.push(("trap".into(), "panic".into()));
        if let Some(conn) = conn {
            let row = EventRow {
                action: action_of(method).into(),
                resource_type: "-".into(),
                resource_id: String::new(),
                resource_name: None,
                status: "failure",
                reason: Some("panic".into()),
                detail: Some(format!("{detail}: {why}")),
                changes: Vec::new(),
            };
            let stamp = Stamp {
                request_id: request_id.clone(),
                change_id: request_id,
                duration_us: started.elapsed().as_micros() as u64,
            };
            let recorded = conn
                .begin(Begin::Write(Some(tenant.id)))
                .and_then(|_| events::insert(&conn, tenant.id, &stamp, &[row]))
                .and_then(|_| run(&conn, "COMMIT"));
            if let Err(e) = recorded {
                let _ = run(&conn, "ROLLBACK");
                tracing::warn!(error = %e, "could not record a failed request in the sync log");
            }
        }
        o
    }

    /// Records a failed request in the sync log after its rollback, in a
    /// transaction of its own.
    fn record_failure(
        &self,
        conn: &crate::db::sql::Connection,
        tenant: i64,
        method: &str,
        response: &HttpResponse,
        stamp: Stamp,
    ) {
        let log = &response.log;
        let row = EventRow {
            action: action_of(method).into(),
            resource_type: log_value(log, "resource").unwrap_or("-").into(),
            resource_id: log_value(log, "resource_id").unwrap_or("").into(),
            resource_name: None,
            status: "failure",
            reason: Some(
                log_value(log, "error")
                    .map(str::to_string)
                    .or_else(|| log_value(log, "trap").map(str::to_string))
                    .unwrap_or_else(|| format!("http-{}", response.status)),
            ),
            detail: log_value(log, "detail").map(str::to_string),
            changes: Vec::new(),
        };
        // One transaction: the event and the alert it queues are kept or
        // lost together.
        let recorded = conn
            .begin(Begin::Write(Some(tenant)))
            .and_then(|_| events::insert(conn, tenant, &stamp, &[row]))
            .and_then(|_| run(conn, "COMMIT"));
        if let Err(e) = recorded {
            let _ = run(conn, "ROLLBACK");
            tracing::warn!(error = %e, "could not record a failed request in the sync log");
        }
    }

    /// The tenant whose SCIM token the `Authorization` header carries, or
    /// the 401 (or 503) to answer. Neither needs an engine instance: a
    /// flood of requests without a valid token costs a hash and a lookup.
    pub fn authenticate(
        &self,
        authorization: Option<&str>,
        context: &RequestContext,
    ) -> Result<Tenant, Outcome> {
        let unauthorized = |detail: &'static str| {
            let mut o = self.fixed_error(context, 401, detail);
            o.response
                .headers
                .push(("www-authenticate".into(), "Bearer realm=\"scim\"".into()));
            o
        };
        let Some(token) = bearer(authorization) else {
            return Err(unauthorized(
                "Authentication required: send 'Authorization: Bearer <token>'",
            ));
        };
        let unavailable = |e: &dyn std::fmt::Display| {
            tracing::error!(error = %e, "authentication lookup failed");
            self.fixed_error(context, 503, "The database is unavailable; retry later")
        };
        let conn = self.pool.get().map_err(|e| unavailable(&e))?;
        match db::authenticate(&conn, TokenKind::Scim, token) {
            Ok(Some(t)) => Ok(t),
            Ok(None) => Err(unauthorized(
                "The bearer token is not valid for SCIM (an admin token only opens /admin/v1)",
            )),
            Err(e) => Err(unavailable(&e)),
        }
    }

    /// The 429 for a request its tenant's share did not let in.
    pub fn too_many(
        &self,
        tenant: &str,
        context: &RequestContext,
        refused: &crate::gate::Refused,
    ) -> Outcome {
        let mut o = self.error(Some(tenant.to_string()), context, 429, &refused.detail());
        o.response
            .headers
            .push(("retry-after".into(), refused.retry_after_secs().to_string()));
        o
    }

    /// An error whose body never changes, rendered by the engine once.
    fn fixed_error(&self, context: &RequestContext, status: u16, detail: &'static str) -> Outcome {
        let mut rendered = self.rendered.lock().unwrap_or_else(|e| e.into_inner());
        let response = rendered
            .entry((status, detail))
            .or_insert_with(|| self.error(None, context, status, detail).response)
            .clone();
        Outcome {
            response,
            tenant: None,
        }
    }

    /// A SCIM Error rendered by a fresh engine instance, with a plain JSON
    /// fallback should even that fail.
    pub fn error(
        &self,
        tenant: Option<String>,
        context: &RequestContext,
        status: u16,
        detail: &str,
    ) -> Outcome {
        let state = RequestState::new(SqlStore::detached(), self.runtime.limits());
        let (result, _) = self.runtime.error_response(state, context, status, detail);
        let mut response = result.unwrap_or_else(|e| {
            tracing::error!(error = ?e, "engine could not render an error");
            let body = serde_json::json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": status.to_string(),
                "detail": detail,
            });
            HttpResponse {
                status,
                headers: vec![("content-type".into(), "application/scim+json".into())],
                body: body.to_string().into_bytes(),
                log: Vec::new(),
            }
        });
        if log_value(&response.log, "detail").is_none() {
            response.log.push(("detail".into(), detail.to_string()));
        }
        Outcome { response, tenant }
    }
}
