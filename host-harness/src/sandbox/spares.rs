//! Pristine instances of the plugins in force, started ahead of the
//! requests that take them.
//!
//! Starting an instance of a Python plugin takes a few milliseconds (its
//! interpreter's core instances, tables and memory image are set up), which
//! a SCIM request changing one user would otherwise wait for. So the
//! sandbox keeps a few instances of each plugin in force that were
//! instantiated and never called: a request takes one, exactly as fresh as
//! one it would start itself (no user has been through it), and a thread of
//! the sandbox's own starts the next one behind it. Nothing a call does
//! reaches a spare: a spare is handed out once, and an instance that served
//! a call never goes back on a shelf.
//!
//! What it costs is bounded: at most [`PER_PLUGIN`] spares of each plugin in
//! force and [`Spares::start`]'s `max` in all, each holding one instance
//! slot and the memory its start wrote; a plugin leaving force takes its
//! spares with it. The shelves know nothing of plugins: a shelf is named by
//! the plugin's hash, holds what its maker starts, and is emptied when the
//! maker's terms (the plugin's limits) change.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use tokio::runtime::Runtime;

/// Spares kept of each plugin in force.
pub const PER_PLUGIN: usize = 2;
/// Failures in a row to start a plugin after which its shelf stops
/// refilling (a plugin whose start traps is not tried forever).
const GIVE_UP: u32 = 3;

/// Starts one spare on the refilling thread's runtime; `Err` says why not.
pub(super) type Make<T> = Arc<dyn Fn(&Runtime) -> Result<T, String> + Send + Sync>;

struct Shelf<K, T> {
    /// What the spares were started under.
    terms: K,
    make: Make<T>,
    ready: Vec<T>,
    failed: u32,
}

struct State<K, T> {
    shelves: HashMap<String, Shelf<K, T>>,
    /// Used instances to release (see [`Spares::discard`]).
    trash: Vec<T>,
    stop: bool,
}

impl<K: Clone, T> State<K, T> {
    fn total(&self) -> usize {
        self.shelves.values().map(|s| s.ready.len()).sum()
    }

    /// A shelf to refill (its name, terms and maker), if one is short and
    /// the total allows another.
    fn short(&self, max: usize) -> Option<(String, K, Make<T>)> {
        if self.total() >= max {
            return None;
        }
        self.shelves
            .iter()
            .find(|(_, s)| s.ready.len() < PER_PLUGIN && s.failed < GIVE_UP)
            .map(|(name, s)| (name.clone(), s.terms.clone(), s.make.clone()))
    }
}

/// The shelves of spares, and the thread that fills them.
pub(super) struct Spares<K, T> {
    state: Mutex<State<K, T>>,
    wake: Condvar,
    max: usize,
}

/// Ends the refilling thread, and drops the spares, when the sandbox goes.
pub(super) struct Refiller<K, T>(Arc<Spares<K, T>>);

impl<K, T> std::ops::Deref for Refiller<K, T> {
    type Target = Spares<K, T>;
    fn deref(&self) -> &Spares<K, T> {
        &self.0
    }
}

impl<K, T> Drop for Refiller<K, T> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.stop = true;
        let gone = (std::mem::take(&mut s.shelves), std::mem::take(&mut s.trash));
        drop(s);
        self.0.wake.notify_all();
        drop(gone);
    }
}

impl<K, T> Spares<K, T> {
    fn lock(&self) -> MutexGuard<'_, State<K, T>> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl<K, T> Spares<K, T>
where
    K: Clone + PartialEq + Send + 'static,
    T: Send + 'static,
{
    /// Spares, at most `max` in all, and the thread that starts them.
    pub fn start(max: usize) -> anyhow::Result<Refiller<K, T>> {
        let spares = Arc::new(Spares {
            state: Mutex::new(State {
                shelves: HashMap::new(),
                trash: Vec::new(),
                stop: false,
            }),
            wake: Condvar::new(),
            max,
        });
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let s = spares.clone();
        std::thread::Builder::new()
            .name("plugin-spares".into())
            .spawn(move || s.refill(&rt))?;
        Ok(Refiller(spares))
    }

    /// A spare from shelf `name` started under `terms`, if one is ready;
    /// either way the shelf is stocked behind it, by `make` when the shelf
    /// is new or its terms changed (its spares then go).
    pub fn take(&self, name: &str, terms: &K, make: impl FnOnce() -> Make<T>) -> Option<T> {
        let mut s = self.lock();
        if self.max == 0 || s.stop {
            return None;
        }
        let mut gone = Vec::new();
        let shelf = match s.shelves.get_mut(name) {
            Some(shelf) if shelf.terms != *terms => {
                gone = std::mem::take(&mut shelf.ready);
                shelf.terms = terms.clone();
                shelf.make = make();
                shelf.failed = 0;
                shelf
            }
            Some(shelf) => shelf,
            None => s.shelves.entry(name.to_string()).or_insert(Shelf {
                terms: terms.clone(),
                make: make(),
                ready: Vec::new(),
                failed: 0,
            }),
        };
        let spare = shelf.ready.pop();
        drop(s);
        self.wake.notify_one();
        // Instances are released outside the lock.
        drop(gone);
        spare
    }

    /// Drops the shelves `keep` does not name, with their spares.
    pub fn retain(&self, keep: &[String]) {
        let gone: Vec<Shelf<K, T>> = {
            let mut s = self.lock();
            let names: Vec<String> = s
                .shelves
                .keys()
                .filter(|k| !keep.contains(k))
                .cloned()
                .collect();
            names.iter().filter_map(|k| s.shelves.remove(k)).collect()
        };
        drop(gone);
    }

    /// Releases a used instance on the refilling thread rather than the
    /// caller's: resetting a slot's memory costs a Python plugin's caller a
    /// few hundred microseconds. Released here when [`Spares::start`]'s
    /// `max` already wait.
    pub fn discard(&self, used: T) {
        let mut s = self.lock();
        if s.stop || s.trash.len() >= self.max {
            drop(s);
            drop(used);
            return;
        }
        s.trash.push(used);
        drop(s);
        self.wake.notify_one();
    }

    /// Spares ready now, in all.
    pub fn ready(&self) -> usize {
        self.lock().total()
    }

    /// The refilling thread: starts a spare for whichever shelf is short,
    /// one at a time, until the sandbox goes.
    fn refill(&self, rt: &Runtime) {
        loop {
            let (name, terms, make) = {
                let mut s = self.lock();
                loop {
                    if s.stop {
                        return;
                    }
                    if !s.trash.is_empty() {
                        let used = std::mem::take(&mut s.trash);
                        drop(s);
                        drop(used);
                        s = self.lock();
                        continue;
                    }
                    if let Some(next) = s.short(self.max) {
                        break next;
                    }
                    s = self.wake.wait(s).unwrap_or_else(|e| e.into_inner());
                }
            };
            let made = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| make(rt)))
                .unwrap_or_else(|_| Err("starting it panicked in the host".into()));
            let mut s = self.lock();
            let Some(shelf) = s
                .shelves
                .get_mut(&name)
                .filter(|shelf| shelf.terms == terms)
            else {
                // The plugin left force, or its limits changed, meanwhile.
                continue;
            };
            match made {
                Ok(spare) => {
                    shelf.failed = 0;
                    shelf.ready.push(spare);
                }
                Err(why) => {
                    shelf.failed += 1;
                    tracing::warn!(sha256 = %name, error = %why, "could not start a spare plugin instance");
                    // A plugin that cannot start is retried slowly.
                    drop(s);
                    std::thread::sleep(Duration::from_millis(100));
                }
            }
        }
    }
}

/// The hand-written plugins of the sandbox's tests.
#[cfg(test)]
#[path = "../../../tests/mappers/hostile.rs"]
mod hostile;

#[cfg(test)]
mod tests {
    use super::hostile;
    use std::time::{Duration, Instant};

    use super::PER_PLUGIN;
    use crate::sandbox::plugin::{Grant, PluginLimits, Plugins, User};

    /// What a call returned, comparable.
    fn shown(grants: Vec<Grant>) -> String {
        format!("{grants:?}")
    }

    fn user() -> User {
        User {
            id: "u1".into(),
            user_name: "ada".into(),
            external_id: None,
            active: true,
            groups: Vec::new(),
            scim_json: "{}".into(),
        }
    }

    /// Waits until `n` spares are ready (the refilling thread is quick for
    /// a hand-written plugin; the bound only guards against a hang).
    fn wait_for(plugins: &Plugins, n: usize) {
        let started = Instant::now();
        while plugins.spares_ready() != n {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "{} spares, not {n}",
                plugins.spares_ready()
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Only the plugin in force gets spares, under the limits it runs
    /// with; a spare serves one call and is replaced, never returned; and
    /// the spares go when the plugin leaves force.
    #[test]
    fn spares_are_started_for_the_plugin_in_force_and_used_once() {
        let plugins = Plugins::new(None, 16).unwrap();
        let bytes = hostile::build(hostile::Plugin::Teams);
        let loaded = plugins.load(&bytes).unwrap();
        let limits = PluginLimits::default();
        let run =
            |limits: &PluginLimits| shown(plugins.run(&loaded, limits, &user(), "{}").unwrap());
        let fresh = run(&limits);
        assert!(fresh.contains("learner"), "{fresh}");

        // A candidate (preview, replay) starts its instance in the call.
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(plugins.spares_ready(), 0);

        plugins.keep(1, &loaded, &bytes);
        // The first call asks for spares; later ones take them.
        assert_eq!(run(&limits), fresh);
        wait_for(&plugins, PER_PLUGIN);
        for _ in 0..5 {
            assert_eq!(run(&limits), fresh);
            wait_for(&plugins, PER_PLUGIN);
        }

        // Other limits (a reinstall with more memory): the spares started
        // under the old ones are replaced.
        let more = PluginLimits {
            memory_bytes: 32 << 20,
            ..PluginLimits::default()
        };
        assert_eq!(run(&more), fresh);
        wait_for(&plugins, PER_PLUGIN);

        plugins.release(1);
        assert_eq!(plugins.spares_ready(), 0);
        assert_eq!(run(&more), fresh);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(plugins.spares_ready(), 0);
    }
}
