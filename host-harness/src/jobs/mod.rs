//! Admin jobs: a preview, install, removal or rollback of a tenant's rules
//! or plugin that runs in the background while the client polls (the admin
//! API's `Prefer: respond-async`). On a large tenant a preview visits every
//! user, which takes seconds to minutes; a job answers at once instead.
//!
//! A job is a row of `jobs` (migration 8), so that any replica answers a
//! poll and a cancellation. Its progress is written every few thousand
//! users, with a heartbeat; a job whose server died is shown `interrupted`:
//! on SQLite (one server per file) as soon as another process reads it, on
//! PostgreSQL once it missed a few heartbeats ([`stale`]).

mod store;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::db::Pool;
use crate::mapping::Refusal;

pub use store::{Cancel, cancel, claim, create, finish, get, list};

/// How often a running job says it is still running, at least.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// Heartbeats a running job may miss before it counts as lost.
const MISSED: u32 = 6;
/// Users previewed between two writes of a job's progress, at most...
const PROGRESS_USERS: u64 = 5_000;
/// ...or seconds, whichever comes first.
const PROGRESS_EVERY: Duration = Duration::from_secs(2);
/// Finished jobs kept per tenant (the newest), and for how long at most.
const KEEP_JOBS: i64 = 50;
const KEEP_DAYS: i64 = 7;

/// How often a running job says it is still running. Debug builds take
/// `SCIM_JOB_HEARTBEAT_MS`, so that tests see a lost job without waiting
/// a minute.
pub fn heartbeat() -> Duration {
    #[cfg(debug_assertions)]
    if let Some(ms) = std::env::var("SCIM_JOB_HEARTBEAT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return Duration::from_millis(ms);
    }
    HEARTBEAT
}

/// A running job silent for this long has lost its server.
pub fn stale() -> Duration {
    heartbeat() * MISSED
}

/// What a job does; its name in the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    MappingPreview,
    MappingInstall,
    MappingRemove,
    MappingRollback,
    MapperPreview,
    MapperInstall,
    MapperRemove,
    MapperRollback,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::MappingPreview => "mapping-preview",
            Kind::MappingInstall => "mapping-install",
            Kind::MappingRemove => "mapping-remove",
            Kind::MappingRollback => "mapping-rollback",
            Kind::MapperPreview => "mapper-preview",
            Kind::MapperInstall => "mapper-install",
            Kind::MapperRemove => "mapper-remove",
            Kind::MapperRollback => "mapper-rollback",
        }
    }

    /// Whether the job only previews (its result is the preview).
    pub fn previews(name: &str) -> bool {
        name == Kind::MappingPreview.name() || name == Kind::MapperPreview.name()
    }
}

/// A job as the admin API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: String,
    pub kind: String,
    /// `running`, `done`, `failed`, `needs-confirmation`, `cancelled` or
    /// `interrupted`.
    pub state: String,
    /// Users previewed so far, of `total`.
    pub done: u64,
    pub total: u64,
    pub created: String,
    pub finished: Option<String>,
    /// What the synchronous request would have answered (200).
    pub result: Option<Value>,
    /// What the synchronous request would have refused with: `status`,
    /// `detail`, and for `needs-confirmation` the `threshold` and the
    /// `preview`.
    pub error: Option<Value>,
    /// What a confirmation resting on this job's preview must still find
    /// (`target`, `inForce`).
    #[serde(skip)]
    pub basis: Option<Value>,
}

/// This process, as the owner of the jobs it runs.
fn owner() -> &'static str {
    static OWNER: OnceLock<String> = OnceLock::new();
    OWNER.get_or_init(crate::events::new_id)
}

/// The stop flags of the jobs this process runs, by id: a cancellation
/// received here stops its job at the next page of users rather than at
/// the next write of its progress.
fn flags() -> &'static Mutex<HashMap<String, Arc<AtomicBool>>> {
    static FLAGS: OnceLock<Mutex<HashMap<String, Arc<AtomicBool>>>> = OnceLock::new();
    FLAGS.get_or_init(Default::default)
}

/// The stop flag of a job this process is about to run: registered as the
/// job is created, so that a cancellation arriving before its work starts
/// is not missed.
pub fn watch(id: &str) -> Arc<AtomicBool> {
    flags()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id.to_string())
        .or_default()
        .clone()
}

/// Stops the job if this process runs it.
fn stop_here(id: &str) {
    if let Some(f) = flags().lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        f.store(true, Ordering::Relaxed);
    }
}

/// The side of a job its work sees: hears the users previewed, writes the
/// progress every few thousand users, and ends the work once the job was
/// cancelled.
pub struct Running<'a> {
    id: String,
    pool: &'a Pool,
    stop: Arc<AtomicBool>,
    heard: u64,
    written: u64,
    at: Instant,
}

impl<'a> Running<'a> {
    /// The job `id`, whose stop flag [`watch`] registered.
    pub fn new(id: &str, pool: &'a Pool) -> Running<'a> {
        let stop = watch(id);
        Running {
            id: id.to_string(),
            pool,
            stop,
            heard: 0,
            written: 0,
            at: Instant::now(),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Users heard so far.
    pub fn heard(&self) -> u64 {
        self.heard
    }

    /// A [`crate::mapping::Progress`] callback.
    pub fn hear(&mut self, users: u64) -> Result<(), Refusal> {
        self.heard = users;
        if self.stop.load(Ordering::Relaxed) {
            return Err(Refusal::Cancelled);
        }
        if users.saturating_sub(self.written) < PROGRESS_USERS && self.at.elapsed() < PROGRESS_EVERY
        {
            return Ok(());
        }
        self.written = users;
        self.at = Instant::now();
        // A failed write of progress is no reason to end the work.
        match store::progress(&*self.pool.get()?, &self.id, users) {
            Ok(true) => Ok(()),
            Ok(false) => {
                self.stop.store(true, Ordering::Relaxed);
                Err(Refusal::Cancelled)
            }
            Err(e) => {
                tracing::warn!(job = self.id, error = %e, "could not record a job's progress");
                Ok(())
            }
        }
    }

    /// Debug builds only: `SCIM_JOB_DELAY_MS` holds each job that long
    /// before its work starts (a cancellation ends the wait), so that tests
    /// see a job running, cancel it, or kill its server under it.
    pub fn test_delay(&self) -> Result<(), Refusal> {
        #[cfg(debug_assertions)]
        {
            let ms: u64 = std::env::var("SCIM_JOB_DELAY_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let until = Instant::now() + Duration::from_millis(ms);
            let mut asked = Instant::now();
            while Instant::now() < until {
                if self.stop.load(Ordering::Relaxed) {
                    return Err(Refusal::Cancelled);
                }
                // Cancelled on another replica?
                if asked.elapsed() >= Duration::from_millis(500) {
                    asked = Instant::now();
                    if let Ok(false) = store::running(&*self.pool.get()?, &self.id) {
                        return Err(Refusal::Cancelled);
                    }
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        flags()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Says that the job still runs (between writes of its progress).
pub fn beat(pool: &Pool, id: &str) {
    let done = pool
        .get()
        .map_err(anyhow::Error::from)
        .and_then(|c| Ok(store::beat(&c, id)?));
    if let Err(e) = done {
        tracing::warn!(job = id, error = %e, "could not record a job's heartbeat");
    }
}
