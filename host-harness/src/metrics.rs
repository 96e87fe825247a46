//! Prometheus metrics, served at `/metrics`: requests by tenant, method,
//! resource type and status; latency; LMS effects by kind; mapping failures;
//! the outbox backlog and the age of its oldest task; alert deliveries.

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
struct OutcomeLabels {
    outcome: String,
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
    plugins_disabled: Family<TenantLabels, Counter>,
    drained_batches: Counter,
    backlog: Gauge,
    oldest: Gauge<f64, AtomicU64>,
    alert_deliveries: Family<OutcomeLabels, Counter>,
    alerts_pending: Gauge,
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
        let plugins_disabled = Family::<TenantLabels, Counter>::default();
        let drained_batches = Counter::default();
        let backlog = Gauge::default();
        let oldest = Gauge::<f64, AtomicU64>::default();
        let alert_deliveries = Family::<OutcomeLabels, Counter>::default();
        let alerts_pending = Gauge::default();
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
            "plugins_disabled",
            "Mapping plugins disabled after failing calls in a row (the tenant's rules apply)",
            plugins_disabled.clone(),
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
        registry.register(
            "alert_deliveries",
            "Alert webhook attempts by outcome: delivered, retried (will be tried again), failed (given up)",
            alert_deliveries.clone(),
        );
        registry.register(
            "alerts_pending",
            "Alert deliveries waiting to be sent or retried",
            alerts_pending.clone(),
        );
        // Each outcome is shown from the start, so rules see a 0 rather
        // than no series.
        for outcome in ["delivered", "retried", "failed"] {
            let _ = alert_deliveries.get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            });
        }
        Metrics {
            registry,
            requests,
            latency,
            effects,
            mapping_failures,
            plugins_disabled,
            drained_batches,
            backlog,
            oldest,
            alert_deliveries,
            alerts_pending,
        }
    }

    /// Counts an alert delivery attempt: `delivered`, `retried` or `failed`.
    pub fn alert_delivery(&self, outcome: &str) {
        self.alert_deliveries
            .get_or_create(&OutcomeLabels {
                outcome: outcome.into(),
            })
            .inc();
    }

    /// Sets the alert deliveries waiting.
    pub fn alerts_pending(&self, n: i64) {
        self.alerts_pending.set(n);
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
        let disabled = journal
            .events
            .iter()
            .filter(|e| e.action == "mapper-disabled")
            .count() as u64;
        if disabled > 0 {
            self.plugins_disabled
                .get_or_create(&TenantLabels {
                    tenant: tenant.into(),
                })
                .inc_by(disabled);
        }
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
