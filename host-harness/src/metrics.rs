//! Prometheus metrics, served at `/metrics`: requests by tenant, method,
//! resource type and status; latency; LMS effects by kind; mapping failures;
//! the outbox backlog and the age of its oldest task.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    tenant: String,
    method: String,
    resource: String,
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: String,
    resource: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EffectLabels {
    tenant: String,
    effect: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TenantLabels {
    tenant: String,
}

/// The method as a label: anything but the methods SCIM uses is `OTHER`, so
/// a client cannot grow the metrics without bound by inventing methods.
fn method_label(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "POST" => "POST",
        "PUT" => "PUT",
        "PATCH" => "PATCH",
        "DELETE" => "DELETE",
        "HEAD" => "HEAD",
        _ => "OTHER",
    }
}

type HistogramFamily = Family<RouteLabels, Histogram, fn() -> Histogram>;

fn latency_histogram() -> Histogram {
    // 100 µs to about 3 s.
    Histogram::new(exponential_buckets(0.0001, 2.0, 16))
}

/// The process's metrics.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: HistogramFamily,
    effects: Family<EffectLabels, Counter>,
    mapping_failures: Family<TenantLabels, Counter>,
    drained_batches: Counter,
    backlog: Gauge,
    oldest: Gauge<f64, AtomicU64>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("scim");
        let requests = Family::<RequestLabels, Counter>::default();
        let latency: HistogramFamily = Family::new_with_constructor(latency_histogram);
        let effects = Family::<EffectLabels, Counter>::default();
        let mapping_failures = Family::<TenantLabels, Counter>::default();
        let drained_batches = Counter::default();
        let backlog = Gauge::default();
        let oldest = Gauge::<f64, AtomicU64>::default();
        registry.register(
            "requests",
            "SCIM requests by tenant, method, resource type and status",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to answer a SCIM request",
            latency.clone(),
        );
        registry.register(
            "lms_effects",
            "LMS effects applied, by tenant and kind",
            effects.clone(),
        );
        registry.register(
            "mapping_failures",
            "Users whose mapping failed (their LMS state was left as it was)",
            mapping_failures.clone(),
        );
        registry.register(
            "outbox_batches",
            "Background re-mapping batches committed",
            drained_batches.clone(),
        );
        registry.register(
            "outbox_backlog",
            "Background re-mapping tasks waiting",
            backlog.clone(),
        );
        registry.register(
            "outbox_oldest_age_seconds",
            "Age of the oldest waiting background task (0 when none)",
            oldest.clone(),
        );
        Metrics {
            registry,
            requests,
            latency,
            effects,
            mapping_failures,
            drained_batches,
            backlog,
            oldest,
        }
    }

    /// Counts one answered request.
    pub fn request(&self, tenant: &str, method: &str, resource: &str, status: u16, seconds: f64) {
        let method = method_label(method);
        self.requests
            .get_or_create(&RequestLabels {
                tenant: tenant.into(),
                method: method.into(),
                resource: resource.into(),
                status: status.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabels {
                method: method.into(),
                resource: resource.into(),
            })
            .observe(seconds);
    }

    /// Counts what a committed request or batch did to the LMS.
    pub fn journal(&self, tenant: &str, journal: &crate::imports::Journal) {
        for (effect, n) in &journal.effects {
            self.effects
                .get_or_create(&EffectLabels {
                    tenant: tenant.into(),
                    effect: (*effect).into(),
                })
                .inc_by(*n);
        }
        let failures = journal
            .events
            .iter()
            .filter(|e| e.action == "map" && e.status == "failure")
            .count() as u64;
        if failures > 0 {
            self.mapping_failures
                .get_or_create(&TenantLabels {
                    tenant: tenant.into(),
                })
                .inc_by(failures);
        }
    }

    /// Counts a committed background batch.
    pub fn batch(&self) {
        self.drained_batches.inc();
    }

    /// The text exposition, with the backlog read just now.
    pub fn render(&self, backlog: u64, oldest_age_seconds: Option<f64>) -> String {
        self.backlog.set(backlog as i64);
        self.oldest.set(oldest_age_seconds.unwrap_or(0.0));
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "could not encode metrics");
        }
        out
    }
}
