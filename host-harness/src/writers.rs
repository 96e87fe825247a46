//! The queue for SQLite's one write lock. Writers wait here in arrival
//! order (tokio's mutex is fair) instead of in SQLite's busy handler, whose
//! growing sleeps make latency explode under concurrent writers.
//!
//! It also counts the turns of writers that may change what a background
//! batch reads, so that a batch planned outside the lock (`worker`) is
//! applied only if no such writer came between its reads and its writes.

use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::MutexGuard;

#[derive(Default)]
pub struct Writers {
    lock: tokio::sync::Mutex<()>,
    /// Moves when a counted turn starts and when it ends, so a turn that
    /// overlaps a plan's reads in any way is seen.
    epoch: AtomicU64,
}

/// A turn at the write lock; the lock is released on drop.
pub struct Turn<'a> {
    _guard: MutexGuard<'a, ()>,
    epoch: Option<&'a AtomicU64>,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        if let Some(e) = self.epoch {
            e.fetch_add(1, Ordering::SeqCst);
        }
    }
}

impl Writers {
    /// A turn for a writer that may change data (SCIM and admin writes).
    pub async fn lock(&self) -> Turn<'_> {
        let guard = self.lock.lock().await;
        self.counted(guard)
    }

    /// [`Writers::lock`] from a blocking thread.
    pub fn blocking_lock(&self) -> Turn<'_> {
        let guard = self.lock.blocking_lock();
        self.counted(guard)
    }

    /// A turn that does not count: the background drain applying its own
    /// plans, and checkpoints, which change no data.
    pub async fn lock_uncounted(&self) -> Turn<'_> {
        Turn {
            _guard: self.lock.lock().await,
            epoch: None,
        }
    }

    /// The count a plan records before it reads and compares before it
    /// writes.
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }

    fn counted<'a>(&'a self, guard: MutexGuard<'a, ()>) -> Turn<'a> {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        Turn {
            _guard: guard,
            epoch: Some(&self.epoch),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn counted_turns_move_the_epoch_when_they_start_and_end() {
        let w = Writers::default();
        let start = w.epoch();
        {
            let _t = w.lock_uncounted().await;
        }
        assert_eq!(w.epoch(), start, "an uncounted turn leaves it");
        let t = w.lock().await;
        let during = w.epoch();
        assert_ne!(during, start, "a plan that reads now must see the turn");
        drop(t);
        assert_ne!(w.epoch(), during, "nor may one that read during it");
    }
}
