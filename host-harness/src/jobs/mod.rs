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
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
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
/// ...or this long, whichever comes first.
const PROGRESS_EVERY: Duration = Duration::from_secs(1);
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

/// What a running job's work and its watcher share: the users heard so
/// far, and whether to stop.
#[derive(Debug, Default)]
pub struct Shared {
    heard: AtomicU64,
    stop: AtomicBool,
}

/// The jobs this process runs, by id: a cancellation received here stops
/// its job at the next page of users.
fn running() -> &'static Mutex<HashMap<String, Arc<Shared>>> {
    static RUNNING: OnceLock<Mutex<HashMap<String, Arc<Shared>>>> = OnceLock::new();
    RUNNING.get_or_init(Default::default)
}

/// What a job this process is about to run shares: registered as the job
/// is created, so that a cancellation arriving before its work starts is
/// not missed.
pub fn watch(id: &str) -> Arc<Shared> {
    running()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .entry(id.to_string())
        .or_default()
        .clone()
}

/// Stops the job if this process runs it.
fn stop_here(id: &str) {
    if let Some(f) = running().lock().unwrap_or_else(|e| e.into_inner()).get(id) {
        f.stop.store(true, Ordering::Relaxed);
    }
}

/// The side of a job its work sees: hears the users previewed and ends the
/// work once the job was cancelled. It never waits for the database: the
/// [`Watcher`] writes the progress.
pub struct Running {
    id: String,
    shared: Arc<Shared>,
}

impl Running {
    /// The job `id`, which [`watch`] registered.
    pub fn new(id: &str) -> Running {
        Running {
            id: id.to_string(),
            shared: watch(id),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Users heard so far.
    pub fn heard(&self) -> u64 {
        self.shared.heard.load(Ordering::Relaxed)
    }

    /// A [`crate::mapping::Progress`] callback.
    pub fn hear(&mut self, users: u64) -> Result<(), Refusal> {
        self.shared.heard.store(users, Ordering::Relaxed);
        if self.shared.stop.load(Ordering::Relaxed) {
            return Err(Refusal::Cancelled);
        }
        Ok(())
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
            while Instant::now() < until {
                if self.shared.stop.load(Ordering::Relaxed) {
                    return Err(Refusal::Cancelled);
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        Ok(())
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        running()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.id);
    }
}

/// Writes a running job's progress every few thousand users, and a
/// heartbeat at least every [`heartbeat`]; stops the work when the row
/// says the job was cancelled (on any replica). Runs beside the work, so
/// that a wait for the database's write lock never holds the work up.
pub struct Watcher {
    id: String,
    shared: Arc<Shared>,
    written: u64,
    at: Instant,
}

impl Watcher {
    pub fn new(id: &str) -> Watcher {
        Watcher {
            id: id.to_string(),
            shared: watch(id),
            written: 0,
            at: Instant::now(),
        }
    }

    /// How often to call [`Watcher::tick`].
    pub fn every() -> Duration {
        (heartbeat() / 4).min(Duration::from_millis(250))
    }

    /// Whether a write is due: [`PROGRESS_USERS`] more users heard, or
    /// [`PROGRESS_EVERY`] (or the heartbeat, if shorter) since the last.
    pub fn due(&self) -> bool {
        let heard = self.shared.heard.load(Ordering::Relaxed);
        heard.saturating_sub(self.written) >= PROGRESS_USERS
            || (heard > self.written && self.at.elapsed() >= PROGRESS_EVERY)
            || self.at.elapsed() >= heartbeat()
    }

    /// Writes the progress and the heartbeat (call when [`Watcher::due`]).
    pub fn write(&mut self, pool: &Pool) {
        let heard = self.shared.heard.load(Ordering::Relaxed);
        self.written = heard;
        self.at = Instant::now();
        let written = pool
            .get()
            .map_err(anyhow::Error::from)
            .and_then(|c| Ok(store::progress(&c, &self.id, heard)?));
        match written {
            Ok(true) => {}
            Ok(false) => self.shared.stop.store(true, Ordering::Relaxed),
            // A failed write of progress is no reason to end the work.
            Err(e) => {
                tracing::warn!(job = self.id, error = %e, "could not record a job's progress")
            }
        }
    }
}
