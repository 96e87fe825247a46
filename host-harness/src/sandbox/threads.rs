//! The threads mapping-plugin calls run on.
//!
//! wasmtime-wasi implements WASI's host functions (a stream write, a sleep,
//! a poll) as futures. Its synchronous bindings finish them with
//! `Handle::block_on`, which panics on a Tokio worker, where the server runs
//! the engine and so the engine's calls into plugins, and which elsewhere
//! blocks the thread for as long as the plugin sleeps, past any deadline.
//! So plugins are linked with the async bindings and every call is a future
//! driven here: each thread owns a current-thread runtime, the caller waits
//! for the answer on a channel, and the call's deadline (a timer on that
//! runtime) ends a sleep or a poll like any other wait. A call is short (its
//! deadline bounds it), so a caller never waits long for a free thread.
//!
//! Handing a call over costs two thread wake-ups, about 40 µs on this
//! project's 2-core virtual machine: more than a plugin call in a batch.
//! Threads that are not Tokio workers (the blocking pool's, where mapping
//! work and background batches run) therefore run their calls themselves,
//! on a runtime of their own, inside [`inline`].

use std::cell::{Cell, RefCell};
use std::panic::AssertUnwindSafe;
use std::sync::mpsc::{Receiver, Sender, channel, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::Result;
use tokio::runtime::Runtime;

type Job = Box<dyn FnOnce(&Runtime) + Send>;

thread_local! {
    /// Whether this thread runs its plugin calls itself ([`inline`]).
    static INLINE: Cell<bool> = const { Cell::new(false) };
    /// The runtime it runs them on, made at its first call.
    static OWN: RefCell<Option<Runtime>> = const { RefCell::new(None) };
}

/// Runs `f` with the plugin calls it makes run on this thread, on a
/// current-thread runtime of the thread's own, rather than on a plugin
/// thread. Only for threads outside any Tokio worker (`spawn_blocking`,
/// plain threads): on a worker, `block_on` would panic.
pub fn inline<R>(f: impl FnOnce() -> R) -> R {
    struct Restore(bool);
    impl Drop for Restore {
        fn drop(&mut self) {
            INLINE.set(self.0);
        }
    }
    let _restore = Restore(INLINE.replace(true));
    f()
}

/// Runs `job` on this thread's own runtime; `None` if it panicked.
fn run_here<R>(job: impl FnOnce(&Runtime) -> R) -> Option<R> {
    OWN.with(|own| {
        let mut own = own.borrow_mut();
        if own.is_none() {
            match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(rt) => *own = Some(rt),
                Err(e) => {
                    tracing::error!(error = %e, "could not start a runtime for plugin calls");
                    return None;
                }
            }
        }
        let rt = own.as_ref()?;
        let done = std::panic::catch_unwind(AssertUnwindSafe(|| job(rt)));
        if done.is_err() {
            tracing::error!("a plugin call panicked in the host; the call failed");
        }
        done.ok()
    })
}

/// A fixed set of plugin threads; they end when this is dropped.
pub struct CallThreads {
    jobs: Mutex<Sender<Job>>,
}

impl CallThreads {
    /// Starts `n` threads (at least one).
    pub fn start(n: usize) -> Result<CallThreads> {
        let (tx, rx) = channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("plugin-{i}"))
                .spawn(move || serve(&rt, &rx))?;
        }
        Ok(CallThreads {
            jobs: Mutex::new(tx),
        })
    }

    /// Runs `job` on a plugin thread and waits for its answer (or here,
    /// inside [`inline`]): `None` if it panicked (the panic is logged and
    /// the thread goes on).
    pub fn run<R: Send + 'static>(
        &self,
        job: impl FnOnce(&Runtime) -> R + Send + 'static,
    ) -> Option<R> {
        if INLINE.get() {
            return run_here(job);
        }
        let (tx, rx) = sync_channel(1);
        let job: Job = Box::new(move |rt| {
            let _ = tx.send(job(rt));
        });
        let sent = self
            .jobs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .send(job);
        sent.ok()?;
        rx.recv().ok()
    }
}

fn serve(rt: &Runtime, jobs: &Mutex<Receiver<Job>>) {
    loop {
        let job = jobs.lock().unwrap_or_else(|e| e.into_inner()).recv();
        let Ok(job) = job else {
            return;
        };
        if std::panic::catch_unwind(AssertUnwindSafe(|| job(rt))).is_err() {
            tracing::error!(
                "a plugin call panicked in the host; the call failed, the thread goes on"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    /// A call waits on its thread's own timer, also when the caller is a
    /// Tokio worker (where `block_on` would panic).
    #[test]
    fn calls_wait_on_their_own_runtime_even_from_a_tokio_worker() {
        let threads = Arc::new(CallThreads::start(2).unwrap());
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let t = threads.clone();
        let got = rt.block_on(async move {
            tokio::spawn(async move {
                let started = Instant::now();
                let r = t.run(|rt| {
                    rt.block_on(async {
                        tokio::time::timeout(
                            Duration::from_millis(20),
                            tokio::time::sleep(Duration::from_secs(30)),
                        )
                        .await
                        .is_err()
                    })
                });
                (r, started.elapsed())
            })
            .await
            .unwrap()
        });
        assert_eq!(got.0, Some(true), "the sleep was cut at its deadline");
        assert!(got.1 < Duration::from_secs(5));
        // A panicking job fails alone.
        assert_eq!(threads.run(|_| -> u8 { panic!("boom") }), None);
        assert_eq!(threads.run(|_| 7), Some(7));
        // Inside `inline`, a call runs on the calling thread.
        let caller = std::thread::current().id();
        let ran_on = inline(|| threads.run(|_| std::thread::current().id()));
        assert_eq!(ran_on, Some(caller));
        assert_ne!(threads.run(|_| std::thread::current().id()), Some(caller));
        assert_eq!(inline(|| threads.run(|_| -> u8 { panic!("boom") })), None);
    }
}
