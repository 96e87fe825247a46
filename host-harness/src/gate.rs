//! Each tenant's share of the server, so that one tenant's load (broad
//! filters, Bulk, a flood of requests) cannot starve the others.
//!
//! At most `max_concurrent` SCIM requests of a tenant run at once; a few
//! more wait for their turn off the worker threads (so a burst from one
//! identity provider queues rather than fails), and beyond that queue, or
//! past `rate_per_sec` requests a second, the answer is `429 Too Many
//! Requests` with `Retry-After`, on which Entra ID and Okta back off. The
//! server runs one worker thread more than a tenant may use by default, so
//! a tenant at its limit always leaves a thread to the others.
//!
//! The share is work-conserving: a tenant alone on the server may run its
//! full `max_concurrent`, but while another tenant has been served within
//! the last second, each runs one request fewer at once (at least one), so
//! a tenant's CPU-heavy requests (a filter that scans every user) leave a
//! core to the others rather than only a thread.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Longest a request waits for its tenant's turn before it gets 429.
const QUEUE_WAIT: Duration = Duration::from_secs(5);
/// Requests that may wait for their tenant's turn, per request it may run.
const QUEUE_PER_SLOT: u32 = 16;
/// How recently another tenant must have been served for a tenant to give
/// up a slot to it.
const SHARING_WINDOW: Duration = Duration::from_secs(1);

/// A tenant's share; `None` fields take the server's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Default, serde::Serialize)]
pub struct Share {
    /// SCIM requests of the tenant that run at once.
    #[serde(rename = "maxConcurrent")]
    pub max_concurrent: Option<u32>,
    /// SCIM requests of the tenant started per second (bursts of up to a
    /// second's worth); `None` or 0: no rate limit.
    #[serde(rename = "ratePerSec")]
    pub rate_per_sec: Option<f64>,
}

/// Why a request was not let in.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Refused {
    /// The tenant's requests at once, and its queue, are full.
    Busy { max_concurrent: u32 },
    /// The tenant is over its rate; a token comes back after the duration.
    Rate { per_sec: f64, retry_after: Duration },
}

impl Refused {
    /// Whole seconds for `Retry-After` (at least 1).
    pub fn retry_after_secs(&self) -> u64 {
        match self {
            Refused::Busy { .. } => 1,
            Refused::Rate { retry_after, .. } => retry_after.as_secs_f64().ceil().max(1.0) as u64,
        }
    }

    /// What the client is told.
    pub fn detail(&self) -> String {
        match self {
            Refused::Busy { max_concurrent } => format!(
                "Too many requests of this tenant at once (its limit is {max_concurrent} running, \
                 and its queue is full); retry after {} s",
                self.retry_after_secs()
            ),
            Refused::Rate { per_sec, .. } => format!(
                "Too many requests of this tenant per second (its limit is {per_sec}); retry after {} s",
                self.retry_after_secs()
            ),
        }
    }
}

/// A request's place among its tenant's running requests; released on drop.
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    _sharing: Option<OwnedSemaphorePermit>,
}

/// The shares of every tenant seen so far.
pub struct Gates {
    default_concurrent: u32,
    default_rate: Option<f64>,
    gates: Mutex<HashMap<i64, Arc<Gate>>>,
    /// The two tenants admitted most recently, and when: whether another
    /// tenant than the one asking is being served, in O(1).
    recent: Mutex<[(i64, Option<Instant>); 2]>,
}

struct Gate {
    max_concurrent: u32,
    rate: Option<f64>,
    running: Arc<Semaphore>,
    /// One slot fewer than `running`, taken as well while other tenants
    /// are served.
    sharing: Arc<Semaphore>,
    /// Requests waiting for a permit.
    waiting: Mutex<u32>,
    bucket: Mutex<Bucket>,
}

struct Bucket {
    tokens: f64,
    last: Instant,
}

impl Gates {
    /// Gates whose tenants get `max_concurrent` requests at once and
    /// `rate_per_sec` requests a second unless their share says otherwise.
    pub fn new(max_concurrent: u32, rate_per_sec: Option<f64>) -> Gates {
        Gates {
            default_concurrent: max_concurrent.max(1),
            default_rate: rate_per_sec.filter(|r| *r > 0.0),
            gates: Mutex::new(HashMap::new()),
            recent: Mutex::new([(0, None), (0, None)]),
        }
    }

    /// Records that `tenant` is served now, and says whether another tenant
    /// was served within [`SHARING_WINDOW`].
    fn others_served(&self, tenant: i64) -> bool {
        let now = Instant::now();
        let mut recent = self.recent.lock().unwrap_or_else(|e| e.into_inner());
        let other = recent.iter().any(|(t, at)| {
            *t != tenant && at.is_some_and(|at| now.duration_since(at) < SHARING_WINDOW)
        });
        if recent[0].0 != tenant {
            recent[1] = recent[0];
        }
        recent[0] = (tenant, Some(now));
        other
    }

    /// The gate of `tenant` for `share`, made anew when the share changed
    /// (requests running under the old one finish under it).
    fn gate(&self, tenant: i64, share: Share) -> Arc<Gate> {
        let max_concurrent = share
            .max_concurrent
            .unwrap_or(self.default_concurrent)
            .max(1);
        let rate = match share.rate_per_sec {
            Some(r) if r > 0.0 => Some(r),
            Some(_) => None,
            None => self.default_rate,
        };
        let mut gates = self.gates.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(g) = gates.get(&tenant)
            && g.max_concurrent == max_concurrent
            && g.rate == rate
        {
            return g.clone();
        }
        let g = Arc::new(Gate {
            max_concurrent,
            rate,
            running: Arc::new(Semaphore::new(max_concurrent as usize)),
            sharing: Arc::new(Semaphore::new((max_concurrent as usize - 1).max(1))),
            waiting: Mutex::new(0),
            bucket: Mutex::new(Bucket {
                tokens: rate.map_or(0.0, |r| r.max(1.0)),
                last: Instant::now(),
            }),
        });
        gates.insert(tenant, g.clone());
        g
    }

    /// Lets a request of `tenant` in, waiting briefly for its turn.
    pub async fn admit(&self, tenant: i64, share: Share) -> Result<Admitted, Refused> {
        let gate = self.gate(tenant, share);
        if let Some(per_sec) = gate.rate {
            let mut b = gate.bucket.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let burst = per_sec.max(1.0);
            b.tokens = (b.tokens + now.duration_since(b.last).as_secs_f64() * per_sec).min(burst);
            b.last = now;
            if b.tokens < 1.0 {
                let retry_after = Duration::from_secs_f64((1.0 - b.tokens) / per_sec);
                return Err(Refused::Rate {
                    per_sec,
                    retry_after,
                });
            }
            b.tokens -= 1.0;
        }
        let sharing = self.others_served(tenant);
        let busy = Refused::Busy {
            max_concurrent: gate.max_concurrent,
        };
        let try_now = || -> Option<Admitted> {
            let shared = if sharing {
                Some(gate.sharing.clone().try_acquire_owned().ok()?)
            } else {
                None
            };
            let permit = gate.running.clone().try_acquire_owned().ok()?;
            Some(Admitted {
                _permit: permit,
                _sharing: shared,
            })
        };
        if let Some(a) = try_now() {
            return Ok(a);
        }
        {
            let mut waiting = gate.waiting.lock().unwrap_or_else(|e| e.into_inner());
            if *waiting >= gate.max_concurrent.saturating_mul(QUEUE_PER_SLOT) {
                return Err(busy);
            }
            *waiting += 1;
        }
        let wait = async {
            let shared = if sharing {
                Some(gate.sharing.clone().acquire_owned().await?)
            } else {
                None
            };
            let permit = gate.running.clone().acquire_owned().await?;
            Ok::<_, tokio::sync::AcquireError>(Admitted {
                _permit: permit,
                _sharing: shared,
            })
        };
        let got = tokio::time::timeout(QUEUE_WAIT, wait).await;
        *gate.waiting.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        match got {
            Ok(Ok(a)) => Ok(a),
            _ => Err(busy),
        }
    }
}

/// Mapping work of every tenant (previews, installs, replays, explains and
/// checks, each seconds of CPU over a large tenant, or a compile of a large
/// plugin): a bounded number at once on the blocking pool, and one per
/// tenant, so one tenant's previews cannot queue everyone's behind them or
/// take every core from SCIM requests.
pub struct MappingWork {
    running: Arc<Semaphore>,
    tenants: Arc<Mutex<std::collections::HashSet<i64>>>,
}

/// Why mapping work was not started.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum WorkRefused {
    /// The tenant already runs mapping work.
    TenantBusy,
    /// Other tenants' mapping work filled the server for too long.
    ServerBusy,
}

/// A tenant's turn at mapping work; ends on drop.
pub struct MappingTurn {
    _permit: OwnedSemaphorePermit,
    tenant: i64,
    tenants: Arc<Mutex<std::collections::HashSet<i64>>>,
}

impl Drop for MappingTurn {
    fn drop(&mut self) {
        self.tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.tenant);
    }
}

/// Longest mapping work waits for a free slot.
const WORK_WAIT: Duration = Duration::from_secs(30);

impl MappingWork {
    /// At most `at_once` pieces of mapping work at a time.
    pub fn new(at_once: usize) -> MappingWork {
        MappingWork {
            running: Arc::new(Semaphore::new(at_once.max(1))),
            tenants: Arc::default(),
        }
    }

    /// The tenant's turn, waiting (asynchronously) for a free slot.
    pub async fn begin(&self, tenant: i64) -> Result<MappingTurn, WorkRefused> {
        if !self
            .tenants
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(tenant)
        {
            return Err(WorkRefused::TenantBusy);
        }
        let release = || {
            self.tenants
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .remove(&tenant);
        };
        match tokio::time::timeout(WORK_WAIT, self.running.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(MappingTurn {
                _permit: permit,
                tenant,
                tenants: self.tenants.clone(),
            }),
            _ => {
                release();
                Err(WorkRefused::ServerBusy)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_tenant_at_its_limit_queues_then_is_refused_while_others_pass() {
        let gates = Gates::new(2, None);
        let share = Share::default();
        let a1 = gates.admit(1, share).await.unwrap();
        let _a2 = gates.admit(1, share).await.unwrap();
        // Another tenant is not held back by the first one's requests.
        let _b = gates.admit(2, share).await.unwrap();
        // A third request of tenant 1 waits, and runs once one finishes.
        let waiting = {
            let gates = Arc::new(gates);
            let g = gates.clone();
            let t = tokio::spawn(async move { g.admit(1, share).await.is_ok() });
            tokio::task::yield_now().await;
            drop(a1);
            assert!(t.await.unwrap(), "the queued request ran");
            gates
        };
        // Past the queue: refused at once.
        let full = Share {
            max_concurrent: Some(1),
            rate_per_sec: None,
        };
        let _held = waiting.admit(3, full).await.unwrap();
        let mut queued = Vec::new();
        for _ in 0..QUEUE_PER_SLOT {
            let g = waiting.clone();
            queued.push(tokio::spawn(
                async move { g.admit(3, full).await.map(|_| ()) },
            ));
        }
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            waiting.admit(3, full).await.err(),
            Some(Refused::Busy { max_concurrent: 1 })
        );
    }

    /// A tenant alone runs its full share; beside another, one fewer.
    #[tokio::test]
    async fn a_tenant_gives_up_a_slot_while_another_is_served() {
        let gates = Arc::new(Gates::new(2, None));
        let share = Share::default();
        let a1 = gates.admit(1, share).await.unwrap();
        let a2 = gates.admit(1, share).await.unwrap();
        drop((a1, a2));
        let _b = gates.admit(2, share).await.unwrap();
        let a1 = gates.admit(1, share).await.unwrap();
        let g = gates.clone();
        let second = tokio::spawn(async move { g.admit(1, share).await.is_ok() });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(
            !second.is_finished(),
            "the second waits while tenant 2 is served"
        );
        drop(a1);
        assert!(second.await.unwrap(), "and runs when the first ends");
    }

    #[tokio::test]
    async fn mapping_work_is_one_per_tenant_and_bounded_in_all() {
        let work = MappingWork::new(1);
        let a = work.begin(1).await.unwrap();
        assert_eq!(work.begin(1).await.err(), Some(WorkRefused::TenantBusy));
        let work = Arc::new(work);
        let w = work.clone();
        let b = tokio::spawn(async move { w.begin(2).await.is_ok() });
        tokio::task::yield_now().await;
        drop(a);
        assert!(b.await.unwrap(), "tenant 2 ran once tenant 1 was done");
        assert!(work.begin(1).await.is_ok(), "tenant 1 may start again");
    }

    #[tokio::test]
    async fn a_rate_refuses_with_the_time_to_the_next_request() {
        let gates = Gates::new(8, None);
        let share = Share {
            max_concurrent: None,
            rate_per_sec: Some(2.0),
        };
        assert!(gates.admit(1, share).await.is_ok());
        assert!(gates.admit(1, share).await.is_ok());
        match gates.admit(1, share).await {
            Err(r @ Refused::Rate { .. }) => assert_eq!(r.retry_after_secs(), 1),
            other => panic!("expected a rate refusal, got {:?}", other.is_ok()),
        }
        // The default (no rate) lets another tenant through.
        for _ in 0..100 {
            assert!(gates.admit(2, Share::default()).await.is_ok());
        }
    }
}
