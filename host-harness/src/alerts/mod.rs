//! Alerts: per-tenant webhooks told when provisioning goes wrong.
//!
//! An alert is born in the transaction that writes the events causing it
//! ([`on_events`], called by `events::insert`), as a row of the durable
//! delivery queue (`queue`): a change that rolls back alerts nobody, and a
//! change that commits cannot lose its alert. One alert stands for every
//! event of one kind in a request or change (a re-mapping that finds 1,000
//! role mismatches is one alert with a count and a sample). The delivery
//! worker (`crate::alert_worker`, above this module) posts them, signed,
//! with retries, and has the outbox backlog checked. Webhooks themselves
//! are `hooks`; bodies `payload`.

pub mod hooks;
pub mod payload;
pub mod queue;

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

use crate::db::sql::Connection;
use crate::event::{EventRow, Stamp};

/// What a webhook can be told about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A SCIM request failed (its changes were rolled back).
    ProvisioningFailed,
    /// Mapping (rules or a plugin) failed for a learner.
    MappingFailed,
    /// A learner holds a manual role beside a different mapped one.
    RoleMismatch,
    /// A mapped grant was removed by hand in the LMS.
    Drift,
    /// A mapping plugin was disabled after failures in a row.
    PluginDisabled,
    /// The outbox's oldest task is older than the webhook's threshold.
    OutboxBacklog,
    /// Asked for by an admin (`POST /admin/v1/alerts/{id}/test`).
    Test,
}

/// The kinds a webhook subscribes to, as named in the API and CLI.
pub const KINDS: [&str; 6] = [
    "provisioning-failed",
    "mapping-failed",
    "role-mismatch",
    "drift",
    "plugin-disabled",
    "outbox-backlog",
];

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ProvisioningFailed => "provisioning-failed",
            Kind::MappingFailed => "mapping-failed",
            Kind::RoleMismatch => "role-mismatch",
            Kind::Drift => "drift",
            Kind::PluginDisabled => "plugin-disabled",
            Kind::OutboxBacklog => "outbox-backlog",
            Kind::Test => "test",
        }
    }

    /// A subscribable kind by name (`test` is not one).
    pub fn parse(s: &str) -> Option<Kind> {
        [
            Kind::ProvisioningFailed,
            Kind::MappingFailed,
            Kind::RoleMismatch,
            Kind::Drift,
            Kind::PluginDisabled,
            Kind::OutboxBacklog,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }

    /// The kind of alert an event raises, if any.
    pub fn of(e: &EventRow) -> Option<Kind> {
        match (e.action.as_str(), e.status) {
            ("mapper-disabled", _) => Some(Kind::PluginDisabled),
            ("map", "failure") => Some(Kind::MappingFailed),
            ("mismatch", _) => Some(Kind::RoleMismatch),
            ("drift", _) => Some(Kind::Drift),
            // The failures the host records for a rolled-back request.
            (_, "failure") => Some(Kind::ProvisioningFailed),
            _ => None,
        }
    }
}

/// Events shown in an alert; the count says how many there were.
pub const SAMPLE: usize = 10;

/// Every event of one kind in one request or change.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    pub kind: Kind,
    pub count: u64,
    /// The first [`SAMPLE`] events, as the body shows them.
    pub sample: Vec<Value>,
}

/// The alerts a batch of events raises, one per kind, in first-seen order.
pub fn classify(rows: &[EventRow]) -> Vec<Alert> {
    let mut alerts: Vec<Alert> = Vec::new();
    for row in rows {
        let Some(kind) = Kind::of(row) else { continue };
        let i = match alerts.iter().position(|a| a.kind == kind) {
            Some(i) => i,
            None => {
                alerts.push(Alert {
                    kind,
                    count: 0,
                    sample: Vec::new(),
                });
                alerts.len() - 1
            }
        };
        let a = &mut alerts[i];
        a.count += 1;
        if a.sample.len() < SAMPLE {
            a.sample.push(sample_of(row));
        }
    }
    alerts
}

/// An event as an alert's sample shows it.
fn sample_of(e: &EventRow) -> Value {
    json!({
        "action": e.action,
        "resourceType": e.resource_type,
        "resourceId": e.resource_id,
        "resourceName": e.resource_name,
        "status": e.status,
        "reason": e.reason,
        "detail": e.detail,
    })
}

/// Queues the alerts `rows` raise for the tenant's webhooks, inside the
/// caller's transaction (see the module doc). A write whose events raise
/// nothing, the usual case, costs a scan of its rows in memory; one that
/// raises something costs one indexed query when the tenant has no webhook.
pub fn on_events(
    conn: &Connection,
    tenant: i64,
    stamp: &Stamp,
    rows: &[EventRow],
) -> crate::db::sql::Result<()> {
    let alerts = classify(rows);
    if alerts.is_empty() {
        return Ok(());
    }
    let hooks = hooks::subscribed(conn, tenant)?;
    if hooks.is_empty() {
        return Ok(());
    }
    let mut tenant_name: Option<String> = None;
    for alert in &alerts {
        for hook in hooks.iter().filter(|h| h.on.contains(&alert.kind)) {
            let name = match &tenant_name {
                Some(n) => n.clone(),
                None => tenant_name
                    .insert(hooks::tenant_name(conn, tenant)?)
                    .clone(),
            };
            queue::enqueue(conn, tenant, &name, hook.id, alert, stamp)?;
        }
    }
    Ok(())
}

/// How alerts are delivered; fixed when the server starts.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Whether webhooks may point at loopback, private and link-local
    /// addresses (`serve --alerts-allow-private`).
    pub allow_private: bool,
    /// The first retry's delay; each next one doubles (with jitter), up to
    /// [`queue::MAX_BACKOFF`]. `SCIM_ALERT_RETRY_BASE_MS`.
    pub retry_base: Duration,
    /// How often the outbox backlog is compared with the webhooks'
    /// thresholds. `SCIM_ALERT_BACKLOG_CHECK_MS`.
    pub backlog_check: Duration,
    /// How long the worker sleeps when nothing is due.
    pub poll: Duration,
    /// The server's public origin (`https://lms.example.com`), from
    /// `serve --public-url`: alerts then link to the console absolutely, so
    /// a link in Slack or an email opens. `None`: links are paths.
    pub console_origin: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            allow_private: false,
            retry_base: Duration::from_secs(30),
            backlog_check: Duration::from_secs(30),
            poll: Duration::from_secs(1),
            console_origin: None,
        }
    }
}

impl Settings {
    /// The defaults, with the environment's overrides (tests shorten the
    /// delays).
    pub fn from_env(allow_private: bool) -> Self {
        let ms = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|&v| v > 0)
                .map(Duration::from_millis)
        };
        let d = Settings::default();
        Settings {
            allow_private,
            retry_base: ms("SCIM_ALERT_RETRY_BASE_MS").unwrap_or(d.retry_base),
            backlog_check: ms("SCIM_ALERT_BACKLOG_CHECK_MS").unwrap_or(d.backlog_check),
            poll: ms("SCIM_ALERT_POLL_MS").unwrap_or(d.poll),
            console_origin: None,
        }
    }

    /// These settings, with links to the console under the origin of
    /// `public_url` (the SCIM base URL of `serve --public-url`).
    pub fn with_public_url(self, public_url: Option<&str>) -> Self {
        Settings {
            console_origin: public_url.and_then(origin_of),
            ..self
        }
    }
}

/// `scheme://host[:port]` of an absolute http(s) URL.
fn origin_of(url: &str) -> Option<String> {
    let (scheme, rest) = url.trim().split_once("://")?;
    let scheme = scheme.to_ascii_lowercase();
    let authority = rest.split(['/', '?', '#']).next()?;
    ((scheme == "http" || scheme == "https") && !authority.is_empty() && !authority.contains('@'))
        .then(|| format!("{scheme}://{authority}"))
}

static SETTINGS: OnceLock<Settings> = OnceLock::new();

/// Fixes the process's settings (`serve` does, before it listens); later
/// calls change nothing. The admin API reads them to refuse private
/// addresses when a webhook is created.
pub fn configure(settings: Settings) {
    let _ = SETTINGS.set(settings);
}

/// The process's settings: the defaults (private addresses refused) until
/// [`configure`].
pub fn settings() -> &'static Settings {
    SETTINGS.get_or_init(Settings::default)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(action: &str, status: &'static str, id: &str) -> EventRow {
        EventRow {
            action: action.into(),
            resource_type: "Learner".into(),
            resource_id: id.into(),
            resource_name: Some(format!("{id}@example.com")),
            status,
            reason: Some("why".into()),
            detail: None,
            changes: Vec::new(),
        }
    }

    #[test]
    fn one_alert_per_kind_with_a_count_and_a_bounded_sample() {
        let mut rows: Vec<EventRow> = (0..1000)
            .map(|i| row("mismatch", "skipped", &format!("u{i}")))
            .collect();
        rows.push(row("update", "success", "x"));
        rows.push(row("map", "failure", "y"));
        rows.push(row("drift", "success", "z"));
        rows.push(row("create", "failure", "w"));
        rows.push(row("mapper-disabled", "failure", "2"));
        let alerts = classify(&rows);
        let kinds: Vec<(&str, u64)> = alerts.iter().map(|a| (a.kind.as_str(), a.count)).collect();
        assert_eq!(
            kinds,
            [
                ("role-mismatch", 1000),
                ("mapping-failed", 1),
                ("drift", 1),
                ("provisioning-failed", 1),
                ("plugin-disabled", 1)
            ]
        );
        assert_eq!(alerts[0].sample.len(), SAMPLE);
        assert_eq!(alerts[0].sample[0]["resourceId"], "u0");
        assert!(classify(&[row("update", "success", "a")]).is_empty());
    }

    #[test]
    fn kinds_parse_by_name_and_test_is_not_subscribable() {
        for k in KINDS {
            assert_eq!(Kind::parse(k).map(Kind::as_str), Some(k));
        }
        assert_eq!(Kind::parse("test"), None);
        assert_eq!(Kind::parse("everything"), None);
    }
}
