//! The background worker: drains the outbox batch by batch and trims the
//! sync log. Each batch runs in its own transaction together with the
//! task's new cursor, queued for the write lock like any request, so a
//! crash between batches loses nothing and applies nothing twice.
//!
//! A batch is planned before it takes the write lock: the engine reads and
//! maps its users on a read snapshot while the writes it asks for are kept
//! (`imports::plan`); the plan is then replayed in the batch's write
//! transaction. So the next batch of a task is read and mapped on one core
//! while the current one writes on the other. A plan is applied only if no
//! other writer took a turn since it started reading (`writers`) and the
//! task is where the plan found it; otherwise the batch runs again under
//! the lock, as it would without planning. Batches of one task touch
//! disjoint users, so a plan never depends on the batch committing before
//! it. When applying is quick next to planning (a re-mapping that changes
//! few learners), batches run under the lock instead, trying a plan again
//! now and then.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, run};
use crate::bindings::exports::lms::scim::handler::DrainStep;
use crate::bindings::lms::scim::outbox::Task;
use crate::bindings::lms::scim::types::RequestContext;
use crate::db::Conn;
use crate::events::{self, Stamp};
use crate::imports::plan::Deferred;
use crate::imports::plugin::{PluginCtx, PluginMode};
use crate::imports::{Journal, SqlStore};
use crate::outbox::{self, Queued};
use crate::runtime::RequestState;

/// How often the worker looks at the outbox without being woken (tasks
/// left by a previous process, retries).
const POLL: Duration = Duration::from_secs(1);

/// How often old events are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Batches are planned ahead only while applying a plan takes at least
/// 1/`OVERLAP_RATIO` of the time planning it took. Otherwise there is
/// little to overlap and the overlap costs: the planner's connection loses
/// its page cache to the commits made on the other one (SQLite drops a
/// connection's cache when another has written), and a re-mapping that
/// changes few learners ran a fifth slower planned than under the lock.
const OVERLAP_RATIO: u32 = 4;

/// Batches run under the lock, after a plan with too little to overlap,
/// before planning is tried again.
const PROBE_EVERY: u32 = 16;

/// What one step of the drain did.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// The outbox is empty (or only holds stalled tasks).
    Idle,
    /// A batch committed.
    Progress,
    /// A batch failed and rolled back; it is retried later.
    Failed,
}

/// A batch the engine planned outside the write lock.
pub struct Plan {
    queued: Queued,
    /// The connection that planned, kept for applying: its page cache holds
    /// what the plan read.
    conn: Conn,
    /// The writers' epoch before the plan read anything.
    epoch: u64,
    ops: Vec<Deferred>,
    step: DrainStep,
    plugin: Option<PluginCtx>,
    batch_id: String,
    started: Instant,
    /// How long planning took.
    planning: Duration,
}

impl Plan {
    /// The same task's next batch, when there is one.
    fn next(&self) -> Option<Queued> {
        let DrainStep::More(cursor) = &self.step else {
            return None;
        };
        Some(Queued {
            task: Task {
                work: self.queued.task.work.clone(),
                cursor: Some(cursor.clone()),
            },
            ..self.queued.clone()
        })
    }
}

/// What planning came to.
pub enum Planned {
    /// Nothing to do.
    Idle,
    Ready(Box<Plan>),
    /// The batch could not be planned (an error, a write the plan cannot
    /// keep): it runs under the write lock instead, which reports errors.
    Serial,
}

/// Runs until the process exits.
pub async fn run_worker(app: Arc<App>) {
    let mut purged: Option<Instant> = None;
    loop {
        drain(&app).await;
        if purged.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            purged = Some(Instant::now());
            let _turn = app.writers.lock().await;
            app.purge_events();
        }
        tokio::select! {
            _ = app.outbox.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

/// Drains the outbox until it is empty or a batch fails, planning each
/// task's next batch while the current one is applied.
async fn drain(app: &Arc<App>) {
    let mut ahead: Option<tokio::task::JoinHandle<Planned>> = None;
    // Set when other writers made a plan stale: batches then run under the
    // lock (no work thrown away) until a turn passes without other writers.
    let mut contended = false;
    // Batches to run under the lock before planning is tried again, when
    // the last plan showed too little to overlap (see `OVERLAP_RATIO`).
    let mut serial_for = 0u32;
    loop {
        let planned = match ahead.take() {
            Some(next) => next.await.unwrap_or(Planned::Serial),
            None if contended || serial_for > 0 => {
                serial_for = serial_for.saturating_sub(1);
                Planned::Serial
            }
            None => {
                let a = app.clone();
                tokio::task::spawn_blocking(move || a.plan_next())
                    .await
                    .unwrap_or(Planned::Serial)
            }
        };
        let step = match planned {
            Planned::Idle => break,
            Planned::Serial => {
                let before = app.writers.epoch();
                let _turn = app.writers.lock_uncounted().await;
                contended = app.writers.epoch() != before;
                app.drain_step()
            }
            Planned::Ready(plan) => {
                if let Some(next) = plan.next().filter(|_| serial_for == 0) {
                    let a = app.clone();
                    ahead = Some(tokio::task::spawn_blocking(move || a.plan(next)));
                }
                let planning = plan.planning;
                let _turn = app.writers.lock_uncounted().await;
                let applying = Instant::now();
                let (step, stale) = app.apply_plan(*plan);
                if !stale && applying.elapsed() * OVERLAP_RATIO < planning {
                    serial_for = PROBE_EVERY;
                }
                if stale {
                    contended = true;
                    if let Some(next) = ahead.take() {
                        let _ = next.await;
                    }
                }
                step
            }
        };
        match step {
            Step::Idle => break,
            Step::Progress if app.background.pause.is_zero() => tokio::task::yield_now().await,
            Step::Progress => tokio::time::sleep(app.background.pause).await,
            Step::Failed => {
                if let Some(next) = ahead.take() {
                    let _ = next.await;
                }
                tokio::time::sleep(POLL).await;
                break;
            }
        }
    }
}

impl App {
    /// The context a background batch runs in.
    fn batch_context(&self, queued: &Queued, batch_id: &str) -> RequestContext {
        RequestContext {
            tenant: queued.tenant_name.clone(),
            base_url: self.public_url.clone().unwrap_or_default(),
            request_id: batch_id.to_string(),
            subject: None,
            max_payload_bytes: self.max_body_bytes as u64,
            signing_key: queued.signing_key.clone(),
        }
    }

    fn batch_store(&self, conn: Conn, queued: &Queued) -> SqlStore {
        SqlStore::new(conn, queued.tenant)
            .with_change_id(&queued.change_id)
            .with_plugins(self.runtime.plugins(), PluginMode::Installed)
    }

    /// Plans a batch of the oldest task (no write lock needed).
    pub fn plan_next(&self) -> Planned {
        let next = self.pool.get().ok().map(|conn| outbox::next(&conn));
        match next {
            Some(Ok(Some(queued))) => self.plan(queued),
            Some(Ok(None)) => Planned::Idle,
            _ => Planned::Serial,
        }
    }

    /// Plans the next batch of `queued` on a read snapshot.
    pub fn plan(&self, queued: Queued) -> Planned {
        let epoch = self.writers.epoch();
        let started = Instant::now();
        let Ok(conn) = self.pool.get() else {
            return Planned::Serial;
        };
        let mut store = self.batch_store(conn, &queued);
        if store.planning().is_err() {
            return Planned::Serial;
        }
        let batch_id = format!("{:016x}", rand::random::<u64>());
        let context = self.batch_context(&queued, &batch_id);
        let state = RequestState::new(store, self.runtime.limits());
        let engine = Instant::now();
        let (result, mut state) =
            self.runtime
                .drain(state, &context, &queued.task, self.background.batch);
        let engine_us = engine.elapsed().as_micros() as u64;
        let ops = state.store.end_planning();
        match result {
            Ok(Ok(step)) if state.store.journal.failed.is_none() => {
                let plugin = state.store.plugin.take();
                let Some(conn) = state.store.into_conn() else {
                    return Planned::Serial;
                };
                let planning = started.elapsed();
                tracing::debug!(
                    task = queued.id,
                    engine_us,
                    planning_us = planning.as_micros() as u64,
                    "background batch planned"
                );
                Planned::Ready(Box::new(Plan {
                    planning,
                    plugin,
                    conn,
                    queued,
                    epoch,
                    ops,
                    step,
                    batch_id,
                    started,
                }))
            }
            other => {
                tracing::debug!(task = queued.id, result = ?other.as_ref().map(|r| r.as_ref().err()), failed = ?state.store.journal.failed, "background batch not planned; it runs under the lock");
                Planned::Serial
            }
        }
    }

    /// Applies a plan in a write transaction (call holding a turn at the
    /// write lock); a stale plan is dropped and the batch runs again. Says
    /// whether the plan was stale.
    pub fn apply_plan(&self, plan: Plan) -> (Step, bool) {
        if self.writers.epoch() != plan.epoch {
            tracing::debug!(
                task = plan.queued.id,
                "another writer came first; the batch runs again"
            );
            drop(plan);
            return (self.drain_step(), true);
        }
        let conn = plan.conn;
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            tracing::warn!(error = %e, "background: database busy");
            return (Step::Failed, false);
        }
        // A write from outside this process (the CLI) may have finished or
        // replaced the task since it was planned.
        let position = outbox::position(&conn, plan.queued.id).ok().flatten();
        if position.as_ref() != Some(&plan.queued.task.cursor) {
            tracing::debug!(
                task = plan.queued.id,
                "the task moved since it was planned; the batch runs again"
            );
            let _ = run(&conn, "ROLLBACK");
            drop(conn);
            return (self.drain_step(), true);
        }
        let mut store =
            SqlStore::new(conn, plan.queued.tenant).with_change_id(&plan.queued.change_id);
        store.plugin = plan.plugin;
        let replayed = store.replay(plan.ops);
        store.settle_plugin();
        let journal = std::mem::take(&mut store.journal);
        let Some(conn) = store.into_conn() else {
            return (Step::Failed, false);
        };
        let step = self.finish_batch(
            conn,
            &plan.queued,
            replayed.map(|()| plan.step),
            journal,
            plan.batch_id,
            plan.started,
        );
        (step, false)
    }

    /// Takes the oldest task and runs one batch of it through the engine,
    /// under the write lock.
    pub fn drain_step(&self) -> Step {
        let started = Instant::now();
        let conn = match self.pool.get() {
            Ok(c) => c,
            Err(e) => {
                tracing::error!(error = %e, "background: no database connection");
                return Step::Failed;
            }
        };
        let queued = match outbox::next(&conn) {
            Ok(Some(q)) => q,
            Ok(None) => return Step::Idle,
            Err(e) => {
                tracing::error!(error = %e, "background: cannot read the outbox");
                return Step::Failed;
            }
        };
        if let Err(e) = run(&conn, "BEGIN IMMEDIATE") {
            tracing::warn!(error = %e, "background: database busy");
            return Step::Failed;
        }
        let batch_id = format!("{:016x}", rand::random::<u64>());
        let context = self.batch_context(&queued, &batch_id);
        let state = RequestState::new(self.batch_store(conn, &queued), self.runtime.limits());
        let engine = Instant::now();
        let (result, mut state) =
            self.runtime
                .drain(state, &context, &queued.task, self.background.batch);
        tracing::debug!(
            task = queued.id,
            engine_us = engine.elapsed().as_micros() as u64,
            "background batch run under the lock"
        );
        state.store.settle_plugin();
        let journal = std::mem::take(&mut state.store.journal);
        let Some(conn) = state.store.into_conn() else {
            return Step::Failed;
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => Err(format!("the engine trapped: {e}")),
        };
        self.finish_batch(conn, &queued, result, journal, batch_id, started)
    }

    /// Commits a batch that went well, with its events and the task's new
    /// cursor; rolls back one that did not and records the failed attempt.
    fn finish_batch(
        &self,
        conn: Conn,
        queued: &Queued,
        result: Result<DrainStep, String>,
        journal: Journal,
        batch_id: String,
        started: Instant,
    ) -> Step {
        let error = match result {
            Ok(step) => match &journal.failed {
                Some(why) => why.clone(),
                None => {
                    let stamp = Stamp {
                        request_id: batch_id,
                        change_id: queued.change_id.clone(),
                        duration_us: started.elapsed().as_micros() as u64,
                    };
                    let committed = events::insert(&conn, queued.tenant, &stamp, &journal.events)
                        .and_then(|_| match &step {
                            DrainStep::Done => outbox::finish(&conn, queued.id),
                            DrainStep::More(cursor) => outbox::advance(&conn, queued.id, cursor),
                        })
                        .and_then(|_| run(&conn, "COMMIT"));
                    match committed {
                        Ok(()) => {
                            self.metrics.journal(&queued.tenant_name, &journal);
                            self.metrics.batch();
                            tracing::debug!(task = queued.id, ?step, "background batch committed");
                            return Step::Progress;
                        }
                        Err(e) => e.to_string(),
                    }
                }
            },
            Err(e) => e,
        };
        let _ = run(&conn, "ROLLBACK");
        tracing::warn!(task = queued.id, error = %error, "background batch failed; will retry");
        if let Err(e) = outbox::fail(&conn, queued.id, &error) {
            tracing::error!(error = %e, "background: cannot record the failure");
        }
        Step::Failed
    }

    /// Deletes events past the retention period.
    fn purge_events(&self) {
        let Ok(conn) = self.pool.get() else {
            return;
        };
        match events::purge(&conn, self.background.retention_days) {
            Ok(0) => {}
            Ok(n) => tracing::info!(events = n, "purged old sync-log events"),
            Err(e) => tracing::warn!(error = %e, "could not purge old events"),
        }
    }
}
