//! The delivery worker: claims due deliveries, POSTs them signed, records
//! each outcome with its retry; between rounds it has the outbox backlog
//! checked (`backlog`).
//!
//! Each request carries `X-Scim-Event-Id` (the same on every attempt) and
//! `X-Scim-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>"
//! keyed with the webhook's secret>`, so a receiver can check the sender
//! and refuse replays of old requests.

mod backlog;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::alerts::queue::{self, Claimed, Outcome};
use crate::alerts::{Settings, hooks, payload};
use crate::app::App;
use crate::db::run;

/// How long a receiver has to answer.
pub const TIMEOUT: Duration = Duration::from_secs(10);

/// How often finished deliveries past the sync log's retention are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

/// Deliveries claimed (and sent at once) per round.
const ROUND: i64 = 16;

/// The signature header's value for `body` sent at `t` (unix seconds).
pub fn signature(secret: &str, t: u64, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex::encode(mac.finalize().into_bytes()))
}

/// Runs until the process exits.
pub async fn run_worker(app: Arc<App>, settings: Settings) {
    let mut backlog_checked: Option<Instant> = None;
    let mut purged: Option<Instant> = None;
    let mut episodes = backlog::Episodes::default();
    loop {
        // A task of its own, so that a panic ends the round, not the worker
        // (the round's claims lapse and are taken again).
        let sent = match tokio::spawn(round(app.clone(), settings.clone())).await {
            Ok(Ok(n)) => n,
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "alerts: could not deliver; will retry");
                0
            }
            Err(e) => {
                tracing::error!(error = %e, "alerts: a delivery round panicked");
                0
            }
        };
        if backlog_checked.is_none_or(|t| t.elapsed() >= settings.backlog_check) {
            backlog_checked = Some(Instant::now());
            if let Err(e) = backlog::check(&app, &mut episodes).await {
                tracing::warn!(error = %e, "alerts: could not check the outbox backlog");
            }
            let pool = app.pool.clone();
            let pending = tokio::task::spawn_blocking(move || {
                pool.get().ok().and_then(|c| queue::pending(&c).ok())
            })
            .await
            .ok()
            .flatten();
            if let Some(n) = pending {
                app.metrics.alerts_pending(n);
            }
        }
        if purged.is_none_or(|t| t.elapsed() >= PURGE_EVERY) {
            purged = Some(Instant::now());
            let pool = app.pool.clone();
            let days = app.background.retention_days;
            let _turn = app.writers.lock().await;
            let n = tokio::task::spawn_blocking(move || {
                pool.get()
                    .map_err(|e| e.to_string())
                    .and_then(|c| queue::purge(&c, days).map_err(|e| e.to_string()))
            })
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r);
            match n {
                Ok(0) => {}
                Ok(n) => tracing::info!(deliveries = n, "purged old alert deliveries"),
                Err(e) => tracing::warn!(error = %e, "could not purge old alert deliveries"),
            }
        }
        if sent < ROUND as usize {
            tokio::time::sleep(settings.poll).await;
        }
    }
}

/// Runs `f` on a pooled connection on the blocking pool, in a write
/// transaction queued behind the other writers.
async fn write<T: Send + 'static>(
    app: &Arc<App>,
    f: impl FnOnce(&crate::db::sql::Connection) -> crate::db::sql::Result<T> + Send + 'static,
) -> Result<T, String> {
    let _turn = app.writers.lock().await;
    let pool = app.pool.clone();
    tokio::task::spawn_blocking(move || {
        let conn = pool
            .get()
            .map_err(|e| format!("no database connection: {e}"))?;
        let begin = match conn.dialect() {
            crate::db::Dialect::Sqlite => "BEGIN IMMEDIATE",
            crate::db::Dialect::Postgres => "BEGIN ISOLATION LEVEL READ COMMITTED",
        };
        run(&conn, begin).map_err(|e| e.to_string())?;
        match f(&conn).and_then(|out| run(&conn, "COMMIT").map(|_| out)) {
            Ok(out) => Ok(out),
            Err(e) => {
                let _ = run(&conn, "ROLLBACK");
                Err(e.to_string())
            }
        }
    })
    .await
    .map_err(|e| format!("the database task failed: {e}"))?
}

/// Claims what is due and sends it; returns how many were sent.
async fn round(app: Arc<App>, settings: Settings) -> Result<usize, String> {
    let pool = app.pool.clone();
    let due = tokio::task::spawn_blocking(move || {
        let conn = pool.get().map_err(|e| e.to_string())?;
        queue::any_due(&conn).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    if !due {
        return Ok(0);
    }
    let claimed = write(&app, |c| queue::claim(c, ROUND)).await?;
    let n = claimed.len();
    let mut sends = tokio::task::JoinSet::new();
    for c in claimed {
        let settings = settings.clone();
        sends.spawn(async move {
            let outcome = attempt(&c, &settings).await;
            (c, outcome)
        });
    }
    while let Some(done) = sends.join_next().await {
        let Ok((c, outcome)) = done else { continue };
        match &outcome {
            Outcome::Delivered { .. } => {
                app.metrics.alert_delivery("delivered");
                tracing::info!(event = %c.event_id, kind = %c.kind, attempts = c.attempts, "alert delivered");
            }
            Outcome::Retry { error, .. } => {
                app.metrics.alert_delivery("retried");
                tracing::warn!(event = %c.event_id, attempts = c.attempts, error, "alert not delivered; will retry");
            }
            Outcome::Failed { error, .. } => {
                app.metrics.alert_delivery("failed");
                tracing::error!(event = %c.event_id, attempts = c.attempts, error, "alert not delivered; gave up");
            }
        }
        write(&app, move |conn| queue::complete(conn, &c, &outcome)).await?;
    }
    Ok(n)
}

/// One attempt of `c`.
async fn attempt(c: &Claimed, settings: &Settings) -> Outcome {
    let body = payload::render(&c.format, &c.body);
    // The whole attempt, name resolution included, ends well within the
    // claim, so that no other sender takes the row while this one runs.
    let sent = tokio::time::timeout(TIMEOUT, post(c, &body, settings.allow_private)).await;
    let (status, error) = match sent {
        Ok(Ok(status)) if (200..300).contains(&status) => return Outcome::Delivered { status },
        Ok(Ok(status)) => (Some(status), format!("the receiver answered {status}")),
        Ok(Err(e)) => (None, e),
        Err(_) => (None, format!("no answer within {} s", TIMEOUT.as_secs())),
    };
    queue::after_failure(c, status, error, settings.retry_base, rand::random::<f64>())
}

/// POSTs `body` to the webhook; the receiver's status, or why there was none.
async fn post(c: &Claimed, body: &str, allow_private: bool) -> Result<u16, String> {
    let url = hooks::check_url(&c.url, allow_private)?;
    let host = url.host_str().unwrap_or_default().to_string();
    let port = url.port_or_known_default().unwrap_or(80);
    let mut client = reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // The address checked below is the one connected to: no proxy from
        // the environment in between.
        .no_proxy()
        .user_agent(concat!("scim-host/", env!("CARGO_PKG_VERSION")));
    if !allow_private {
        // Resolved here, checked, and pinned: the connection goes to an
        // address that was checked, whatever the name says a moment later.
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((bare, port))
            .await
            .map_err(|e| format!("cannot resolve {host}: {e}"))?
            .collect();
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        if let Some(a) = addrs.iter().find(|a| hooks::forbidden(a.ip())) {
            return Err(format!(
                "refused: {host} resolves to {}, a loopback, private or link-local address (see `serve --alerts-allow-private`)",
                a.ip()
            ));
        }
        if bare.parse::<std::net::IpAddr>().is_err() {
            client = client.resolve_to_addrs(bare, &addrs);
        }
    }
    let client = client
        .build()
        .map_err(|e| format!("cannot make an HTTP client: {e}"))?;
    let t = time::OffsetDateTime::now_utc().unix_timestamp().max(0) as u64;
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .header("x-scim-event-id", &c.event_id)
        .header("x-scim-signature", signature(&c.secret, t, body.as_bytes()))
        .body(body.to_string())
        .send()
        .await
        .map_err(|e| {
            let mut msg = e.to_string();
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(": ");
                msg.push_str(&s.to_string());
                source = s.source();
            }
            msg
        })?;
    Ok(response.status().as_u16())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The signature a receiver recomputes: HMAC-SHA256 of "t.body".
    #[test]
    fn the_signature_is_hmac_sha256_of_the_time_and_the_body() {
        // RFC 4231 test case 2's key and message, put together as "t.body".
        let sig = signature("Jefe", 1_700_000_000, b"{\"id\":\"evt_1\"}");
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"1700000000.{\"id\":\"evt_1\"}");
        let expected = hex::encode(mac.finalize().into_bytes());
        assert_eq!(sig, format!("t=1700000000,v1={expected}"));
        assert_ne!(
            sig,
            signature("other", 1_700_000_000, b"{\"id\":\"evt_1\"}")
        );
        assert_ne!(sig, signature("Jefe", 1_700_000_001, b"{\"id\":\"evt_1\"}"));
        // The known answer (RFC 4231, test case 2).
        let mut mac = Hmac::<Sha256>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
