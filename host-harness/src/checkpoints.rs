//! Background checkpoints of SQLite's write-ahead log, and the bound on its
//! size.
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
//! The pause is long on a busy disk (117–165 ms measured here: the copy is
//! bracketed by two fsyncs), so it is paid once per gigabyte of log rather
//! than every few megabytes as with SQLite's in-commit checkpoints; a
//! 256 MiB limit tripled the 8-connection p99 of `POST /Users`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::app::App;
use crate::db::{Checkpointer, WalState};

/// How often the log is checkpointed.
const EVERY: Duration = Duration::from_millis(200);

/// The most frames left for the pass that holds writers back; each pass
/// before it copies what arrived during the one before.
const TAIL_FRAMES: i64 = 1_024;

/// Passes alongside writers before holding them back.
const PASSES: usize = 8;

/// A restart a reader prevented is retried no sooner than this.
const RETRY: Duration = Duration::from_secs(1);

/// Checkpoints until the process exits, restarting the log once it passes
/// `limit_bytes` (0: never).
pub async fn run(app: Arc<App>, checkpointer: Checkpointer, limit_bytes: u64) {
    let limit_frames = i64::try_from(limit_bytes / checkpointer.page_size()).unwrap_or(i64::MAX);
    let checkpointer = Arc::new(checkpointer);
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
        for _ in 0..PASSES {
            if wal.behind() <= TAIL_FRAMES {
                break;
            }
            match pass(&checkpointer).await {
                Some(w) => wal = w,
                None => break,
            }
        }
        // A reader holding the log back would make the pause long: wait.
        if wal.behind() > TAIL_FRAMES {
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
            waited_ms = (held - waited).as_millis() as u64,
            held_ms = held.elapsed().as_millis() as u64,
            "write-ahead log copied to its end; the next writer restarts it"
        );
        attempted = Some((checkpointer.log_generation(), wal));
    }
}

/// One PASSIVE checkpoint on the blocking pool.
async fn pass(checkpointer: &Arc<Checkpointer>) -> Option<WalState> {
    let c = checkpointer.clone();
    match tokio::task::spawn_blocking(move || c.passive()).await {
        Ok(Ok(wal)) => Some(wal),
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "background checkpoint skipped");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "background checkpoint failed");
            None
        }
    }
}
