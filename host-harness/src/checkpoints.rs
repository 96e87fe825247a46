//! Background checkpoints of SQLite's write-ahead log, the bound on its
//! size, and its flush to disk every [`FLUSH_EVERY`] (see
//! [`Checkpointer::flush_log`]).
//!
//! A PASSIVE checkpoint copies the log into the database file alongside
//! requests. But only a writer that *starts* after a checkpoint reached the
//! end of the log starts the log over from the beginning, and under a steady
//! stream of writes some writer is always mid-transaction: the log then
//! never restarts and grew past 1 GB in a ten-second load. So once the log
//! passes a limit (`serve --wal-limit-mib`, 1 GiB by default), its last
//! frames are copied while writers wait their turn, and the next writer
//! restarts it. The file keeps its size and is overwritten from the start
//! (cutting it back would free a gigabyte of page cache inside a request).
//! That last copy is bracketed by two fsyncs, and SQLite syncs the database
//! file only in a checkpoint that reaches the end of the log: the one that
//! holds writers back would flush every page the passes before it wrote
//! since the last restart (27 ms of a 30 ms pause measured here). So before
//! holding writers back, passes run back to back, each followed by a sync
//! of the database file, until little arrives while one runs; the pass that
//! holds writers back then copies and flushes only that little. The pause is
//! paid once per gigabyte of log rather than every few megabytes as with
//! SQLite's in-commit checkpoints; a 256 MiB limit tripled the 8-connection
//! p99 of `POST /Users`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::db::{Checkpointer, WalState};

/// How often the log is checkpointed.
const EVERY: Duration = Duration::from_millis(200);

/// How often the log is flushed to disk when something was committed (see
/// [`Checkpointer::flush_log`]): 20 ms took the 8-connection maximum of
/// `POST /Users` from 29–36 ms to 12–14 ms here, where checkpointing every
/// 50 ms instead (which syncs the log as often) left it at 17 ms.
const FLUSH_EVERY: Duration = Duration::from_millis(20);

/// Writers are held back once no more than this many frames arrived
/// during the last pass alongside them (about two milliseconds of `POST
/// /Users` at full speed here): the pass that holds them back copies about as many.
const TAIL_FRAMES: i64 = 128;

/// Most passes alongside writers before holding them back: a write load too
/// heavy for the passes to catch up with still gets its log restarted, at
/// the cost of a longer pause.
const PASSES: usize = 12;

/// A restart a reader prevented is retried no sooner than this.
const RETRY: Duration = Duration::from_secs(1);

/// Checkpoints until the process exits, restarting the log once it passes
/// `limit_bytes` (0: never).
pub async fn run(app: Arc<App>, checkpointer: Checkpointer, limit_bytes: u64) {
    let limit_frames = i64::try_from(limit_bytes / checkpointer.page_size()).unwrap_or(i64::MAX);
    let checkpointer = Arc::new(checkpointer);
    tokio::spawn(flush_log(checkpointer.clone()));
    // The log's generation and state right after a restart was last set
    // up, and when one last failed to happen (a reader still used the log).
    let mut attempted: Option<(Option<[u8; 8]>, WalState)> = None;
    let mut failed: Option<Instant> = None;
    loop {
        tokio::time::sleep(EVERY).await;
        let Some(mut wal) = pass(&checkpointer).await else {
            continue;
        };
        if let Some((generation, after)) = attempted
            && checkpointer.log_generation() == generation
        {
            if wal == after {
                // No writer since: the next one restarts the log.
                continue;
            }
            failed = Some(Instant::now());
        }
        attempted = None;
        if limit_bytes == 0
            || wal.frames < limit_frames
            || failed.is_some_and(|t| t.elapsed() < RETRY)
        {
            continue;
        }
        let caught_up = Instant::now();
        let mut arrived = i64::MAX;
        let mut passes = 0;
        let mut restarted = false;
        while passes < PASSES && (arrived > TAIL_FRAMES || wal.behind() > TAIL_FRAMES) {
            let before = wal.frames;
            let Some(w) = catch_up(&checkpointer).await else {
                break;
            };
            passes += 1;
            // Fewer frames than before: a writer restarted the log meanwhile.
            restarted = w.frames < before;
            arrived = w.frames - before;
            wal = w;
            if restarted {
                break;
            }
        }
        // A reader holding the log back would make the pause long: wait.
        if restarted || wal.behind() > TAIL_FRAMES {
            continue;
        }
        let waited = Instant::now();
        let _turn = app.writers.lock().await;
        let held = Instant::now();
        let Some(wal) = pass(&checkpointer).await else {
            continue;
        };
        tracing::info!(
            ?wal,
            passes,
            arrived,
            catch_up_ms = (waited - caught_up).as_millis() as u64,
            waited_ms = (held - waited).as_millis() as u64,
            held_ms = held.elapsed().as_millis() as u64,
            "write-ahead log copied to its end; the next writer restarts it"
        );
        attempted = Some((checkpointer.log_generation(), wal));
    }
}

/// Flushes the log every [`FLUSH_EVERY`] in which something was committed,
/// until the process exits.
async fn flush_log(checkpointer: Arc<Checkpointer>) {
    let mut every = tokio::time::interval(FLUSH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        every.tick().await;
        blocking(
            &checkpointer,
            "flushing the write-ahead log",
            Checkpointer::flush_log,
        )
        .await;
    }
}

/// One PASSIVE checkpoint on the blocking pool.
async fn pass(checkpointer: &Arc<Checkpointer>) -> Option<WalState> {
    blocking(checkpointer, "background checkpoint", Checkpointer::passive).await
}

/// A PASSIVE checkpoint, then a sync of what it (and the passes before it)
/// wrote to the database file, on the blocking pool.
async fn catch_up(checkpointer: &Arc<Checkpointer>) -> Option<WalState> {
    blocking(checkpointer, "background checkpoint", |c| {
        let wal = c.passive()?;
        c.sync_database()?;
        Ok(wal)
    })
    .await
}

/// Runs `f` on the blocking pool; a failure (`what` names the work) is
/// logged and skipped, to be tried again on the next tick.
async fn blocking<T: Send + 'static>(
    checkpointer: &Arc<Checkpointer>,
    what: &'static str,
    f: fn(&Checkpointer) -> anyhow::Result<T>,
) -> Option<T> {
    let c = checkpointer.clone();
    match tokio::task::spawn_blocking(move || f(&c)).await {
        Ok(Ok(done)) => Some(done),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "{what} skipped");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "{what} failed");
            None
        }
    }
}
