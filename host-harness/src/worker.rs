//! The background worker: drains the outbox batch by batch and trims the
//! sync log. Each batch runs in its own transaction together with the
//! task's new cursor, queued for the write lock like any request, so a
//! crash between batches loses nothing and applies nothing twice.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::{App, panic_message};
use crate::bindings::exports::lms::scim::handler::DrainStep;
use crate::bindings::lms::scim::types::RequestContext;
use crate::db::Conn;
use crate::db::run;
use crate::events::{self, Stamp};
use crate::fault;
use crate::imports::SqlStore;
use crate::outbox;

/// How often the worker looks at the outbox without being woken (tasks
/// left by a previous process, retries).
const POLL: Duration = Duration::from_secs(1);

/// How often old events are purged.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

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

/// Runs until the process exits.
pub async fn run_worker(app: Arc<App>) {
    let mut purged: Option<Instant> = None;
    loop {
        loop {
            let step = {
                let _turn = app.writers.lock().await;
                // On the blocking pool, where a batch's plugin calls run
                // on the thread itself (no hand-over per user).
                let app = app.clone();
                tokio::task::spawn_blocking(move || {
                    crate::sandbox::threads::inline(|| app.drain_step())
                })
                .await
                .unwrap_or(Step::Failed)
            };
            match step {
                Step::Idle => break,
                Step::Progress if app.background.pause.is_zero() => tokio::task::yield_now().await,
                Step::Progress => tokio::time::sleep(app.background.pause).await,
                Step::Failed => {
                    tokio::time::sleep(POLL).await;
                    break;
                }
            }
        }
        if purged.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            purged = Some(Instant::now());
            let _turn = app.writers.lock().await;
            // A panic here must not end the worker either.
            let purge = std::panic::AssertUnwindSafe(|| app.purge_events());
            if let Err(panic) = std::panic::catch_unwind(purge) {
                tracing::error!(
                    panic = panic_message(&*panic),
                    "purging old events panicked"
                );
            }
        }
        tokio::select! {
            _ = app.outbox.notified() => {}
            _ = tokio::time::sleep(POLL) => {}
        }
    }
}

impl App {
    /// Takes the oldest task and runs one batch of it through the engine.
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
        // A panic in the batch (in the host, or in a host import the engine
        // called) fails this attempt like any error: unwinding dropped the
        // batch's connection, which the pool closes since it is inside the
        // transaction (see `db::Manager`), so the batch is rolled back; the
        // failure is recorded on a fresh connection, and the task is retried
        // after the others until it stalls (`outbox::next`).
        let id = queued.id;
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.batch(conn, &queued, started)
        })) {
            Ok(step) => step,
            Err(panic) => {
                let error = format!("the batch panicked: {}", panic_message(&*panic));
                tracing::error!(task = id, error, "background batch panicked; rolled back");
                match self.pool.get() {
                    Ok(conn) => {
                        if let Err(e) = outbox::fail(&conn, id, &error) {
                            tracing::error!(error = %e, "background: cannot record the failure");
                        }
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "background: cannot record the failure");
                    }
                }
                Step::Failed
            }
        }
    }

    /// Runs one batch of `queued` in a transaction on `conn`.
    fn batch(&self, conn: Conn, queued: &outbox::Queued, started: Instant) -> Step {
        if let Err(e) = conn.begin(crate::db::Begin::Write(Some(queued.tenant))) {
            tracing::warn!(error = %e, "background: database busy");
            return Step::Failed;
        }
        // Under the tenant's write lock, the task as it is now: another
        // replica may have run a batch of it (or finished it) since it was
        // read, and this one must go on from there, not run that batch again.
        let mut queued = std::borrow::Cow::Borrowed(queued);
        match outbox::claim(&conn, queued.id) {
            Ok(Some(cursor)) => {
                if cursor != queued.task.cursor {
                    queued.to_mut().task.cursor = cursor;
                }
            }
            Ok(None) => {
                let _ = run(&conn, "ROLLBACK");
                return Step::Progress;
            }
            Err(e) => {
                let _ = run(&conn, "ROLLBACK");
                tracing::warn!(error = %e, "background: cannot claim the task");
                return Step::Failed;
            }
        }
        let queued = &*queued;
        let batch_id = crate::events::new_id();
        let context = RequestContext {
            tenant: queued.tenant_name.clone(),
            base_url: self.public_url.clone().unwrap_or_default(),
            request_id: batch_id.clone(),
            subject: None,
            max_payload_bytes: self.max_body_bytes as u64,
            signing_key: queued.signing_key.clone(),
        };
        let store = SqlStore::new(conn, queued.tenant)
            .with_change_id(&queued.change_id)
            .with_plugins(
                self.runtime.plugins(),
                crate::imports::plugin::PluginMode::Installed,
            );
        let (result, mut store) =
            self.runtime
                .drain(store, &context, &queued.task, self.background.batch);
        store.settle_plugin();
        let journal = std::mem::take(&mut store.journal);
        let Some(conn) = store.into_conn() else {
            return Step::Failed;
        };
        let error = match result {
            Ok(Ok(step)) => match &journal.failed {
                Some(why) => why.clone(),
                None => {
                    fault::hit(fault::Point::DrainBatch, &queued.tenant_name);
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
            Ok(Err(e)) => e,
            Err(e) => format!("the engine trapped: {e}"),
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
