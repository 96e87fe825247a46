//! Webhooks: where a tenant's alerts go (`alert_hooks`), with the secret
//! that signs them and the kinds each one wants.

use std::net::IpAddr;

use serde_json::{Value, json};

use super::Kind;
use crate::db::sql::{Connection, OptionalExtension, params};

/// Webhooks a tenant may have: each alert is one delivery per webhook.
pub const MAX_PER_TENANT: i64 = 20;

/// The longest accepted webhook URL.
const MAX_URL: usize = 2048;

/// The longest backlog threshold, in minutes (a week).
pub const MAX_BACKLOG_MINUTES: i64 = 7 * 24 * 60;

/// The backlog threshold when none is given.
pub const DEFAULT_BACKLOG_MINUTES: i64 = 15;

/// A webhook as the API shows it (never with its secret).
#[derive(Debug, Clone, PartialEq)]
pub struct Hook {
    pub id: i64,
    pub url: String,
    pub on: Vec<String>,
    pub format: String,
    pub backlog_minutes: i64,
    pub created: String,
}

impl Hook {
    pub fn json(&self) -> Value {
        json!({
            "id": self.id,
            "url": self.url,
            "on": self.on,
            "format": self.format,
            "backlogMinutes": self.backlog_minutes,
            "created": self.created,
        })
    }
}

/// What creating a webhook asks for.
#[derive(Debug, Clone)]
pub struct NewHook {
    pub url: String,
    pub on: Vec<String>,
    pub format: Option<String>,
    pub backlog_minutes: Option<i64>,
}

/// Why a webhook was not created.
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The request is wrong; the message says how to fix it.
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Db(#[from] crate::db::sql::Error),
}

/// A webhook's URL as admin input: http or https, with a host and no
/// credentials in it; unless `allow_private`, a host that is literally a
/// loopback, private or link-local address (or `localhost`) is refused
/// here. Names are resolved and checked again at each delivery
/// (`alert_worker`), since what a name resolves to can change.
pub fn check_url(url: &str, allow_private: bool) -> Result<reqwest::Url, String> {
    let url = url.trim();
    if url.len() > MAX_URL {
        return Err(format!(
            "The webhook URL is longer than {MAX_URL} characters"
        ));
    }
    let parsed = reqwest::Url::parse(url).map_err(|e| {
        format!("'{url}' is not a URL ({e}); give one such as https://hooks.example.com/scim")
    })?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!(
            "The webhook URL must be http or https, not '{}'",
            parsed.scheme()
        ));
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(
            "The webhook URL must not carry a user name or password; requests are signed with the webhook's secret instead"
                .into(),
        );
    }
    let Some(host) = parsed.host_str().filter(|h| !h.is_empty()) else {
        return Err(format!("The webhook URL '{url}' has no host"));
    };
    if !allow_private {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let refused = match bare.parse::<IpAddr>() {
            Ok(ip) => forbidden(ip),
            Err(_) => {
                let d = bare.trim_end_matches('.').to_ascii_lowercase();
                d == "localhost" || d.ends_with(".localhost")
            }
        };
        if refused {
            return Err(format!(
                "The webhook URL points at a loopback, private or link-local address ({host}); \
                 this server refuses those unless started with `serve --alerts-allow-private`"
            ));
        }
    }
    Ok(parsed)
}

/// Addresses a webhook may not reach without `--alerts-allow-private`:
/// this host, private networks, link-local (cloud metadata services live
/// there), and the other ranges no public receiver uses.
pub fn forbidden(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                // Shared address space (carrier-grade NAT).
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return forbidden(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                // Unique local (fc00::/7) and link-local (fe80::/10).
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
        }
    }
}

/// Checks a new webhook's fields; returns its kinds (as stored), format and
/// backlog threshold.
fn check(new: &NewHook, allow_private: bool) -> Result<(String, Vec<String>, String, i64), String> {
    let url = check_url(&new.url, allow_private)?;
    if new.on.is_empty() {
        return Err(format!(
            "Say which alerts this webhook receives: 'on' lists one or more of {}",
            super::KINDS.join(", ")
        ));
    }
    let mut on: Vec<String> = Vec::new();
    for k in &new.on {
        let k = k.trim();
        if Kind::parse(k).is_none() {
            return Err(format!(
                "'{k}' is not an alert kind; the kinds are {}",
                super::KINDS.join(", ")
            ));
        }
        if !on.iter().any(|o| o == k) {
            on.push(k.to_string());
        }
    }
    let format = new.format.as_deref().unwrap_or("json").trim().to_string();
    if !matches!(format.as_str(), "json" | "slack") {
        return Err(format!(
            "'format' is 'json' (the default) or 'slack', not '{format}'"
        ));
    }
    let minutes = new.backlog_minutes.unwrap_or(DEFAULT_BACKLOG_MINUTES);
    if !(1..=MAX_BACKLOG_MINUTES).contains(&minutes) {
        return Err(format!(
            "'backlogMinutes' must be from 1 to {MAX_BACKLOG_MINUTES}, not {minutes}"
        ));
    }
    Ok((url.to_string(), on, format, minutes))
}

/// A new webhook secret: 256 random bits, hex.
fn new_secret() -> String {
    format!("whsec_{}", hex::encode(rand::random::<[u8; 32]>()))
}

/// Creates a webhook; returns it and its secret (shown once).
pub fn create(
    conn: &Connection,
    tenant: i64,
    new: &NewHook,
    allow_private: bool,
) -> Result<(Hook, String), HookError> {
    let (url, on, format, minutes) = check(new, allow_private).map_err(HookError::Invalid)?;
    let count: i64 = conn
        .prepare_cached("SELECT count(*) FROM alert_hooks WHERE tenant = ?1")?
        .query_row([tenant], |r| r.get(0))?;
    if count >= MAX_PER_TENANT {
        return Err(HookError::Invalid(format!(
            "A tenant has at most {MAX_PER_TENANT} webhooks; remove one first"
        )));
    }
    let secret = new_secret();
    let created = crate::db::now();
    let kinds = serde_json::to_string(&on).unwrap_or_else(|_| "[]".into());
    let id: i64 = conn
        .prepare_cached(
            "INSERT INTO alert_hooks (tenant, url, secret, kinds, format, backlog_minutes, created)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        )?
        .query_row(
            params![tenant, url, secret, kinds, format, minutes, created],
            |r| r.get(0),
        )?;
    Ok((
        Hook {
            id,
            url,
            on,
            format,
            backlog_minutes: minutes,
            created,
        },
        secret,
    ))
}

fn kinds_of(text: &str) -> Vec<String> {
    serde_json::from_str(text).unwrap_or_default()
}

/// The tenant's webhooks, oldest first.
pub fn list(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Vec<Hook>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, url, kinds, format, backlog_minutes, created FROM alert_hooks
         WHERE tenant = ?1 ORDER BY id",
    )?;
    stmt.query_map([tenant], |r| {
        Ok(Hook {
            id: r.get(0)?,
            url: r.get(1)?,
            on: kinds_of(&r.get::<_, String>(2)?),
            format: r.get(3)?,
            backlog_minutes: r.get(4)?,
            created: r.get(5)?,
        })
    })?
    .collect()
}

/// Whether the tenant has the webhook `id` (another tenant's is as absent
/// as one that never existed).
pub fn exists(conn: &Connection, tenant: i64, id: i64) -> crate::db::sql::Result<bool> {
    conn.prepare_cached("SELECT 1 FROM alert_hooks WHERE tenant = ?1 AND id = ?2")?
        .exists(params![tenant, id])
}

/// Removes the tenant's webhook `id`; its deliveries still waiting are
/// marked failed (the log keeps them). False when it has no such webhook.
pub fn remove(conn: &Connection, tenant: i64, id: i64) -> crate::db::sql::Result<bool> {
    let n = conn
        .prepare_cached("DELETE FROM alert_hooks WHERE tenant = ?1 AND id = ?2")?
        .execute(params![tenant, id])?;
    if n == 0 {
        return Ok(false);
    }
    conn.prepare_cached(
        "UPDATE alert_deliveries SET state = 'failed', last_error = 'the webhook was removed'
         WHERE hook = ?1 AND state = 'pending'",
    )?
    .execute([id])?;
    Ok(true)
}

/// A webhook as alerts are queued for it.
#[derive(Debug, Clone)]
pub struct Subscribed {
    pub id: i64,
    pub on: Vec<Kind>,
    pub backlog_minutes: i64,
}

/// The tenant's webhooks and what each wants (one indexed query).
pub fn subscribed(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Vec<Subscribed>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, kinds, backlog_minutes FROM alert_hooks WHERE tenant = ?1 ORDER BY id",
    )?;
    stmt.query_map([tenant], |r| {
        Ok(Subscribed {
            id: r.get(0)?,
            on: kinds_of(&r.get::<_, String>(1)?)
                .iter()
                .filter_map(|k| Kind::parse(k))
                .collect(),
            backlog_minutes: r.get(2)?,
        })
    })?
    .collect()
}

/// Every webhook that wants the outbox backlog: (webhook, tenant, tenant
/// name, threshold in minutes).
pub fn backlog_watchers(conn: &Connection) -> crate::db::sql::Result<Vec<(i64, i64, String, i64)>> {
    let mut stmt = conn.prepare_cached(
        "SELECT h.id, h.tenant, t.name, h.backlog_minutes, h.kinds
         FROM alert_hooks h JOIN tenants t ON t.id = h.tenant ORDER BY h.id",
    )?;
    let rows = stmt.query_map([], |r| {
        Ok((
            r.get::<_, i64>(0)?,
            r.get::<_, i64>(1)?,
            r.get::<_, String>(2)?,
            r.get::<_, i64>(3)?,
            r.get::<_, String>(4)?,
        ))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (id, tenant, name, minutes, kinds) = row?;
        if kinds_of(&kinds)
            .iter()
            .any(|k| k == Kind::OutboxBacklog.as_str())
        {
            out.push((id, tenant, name, minutes));
        }
    }
    Ok(out)
}

/// The tenant's name, for alert bodies.
pub fn tenant_name(conn: &Connection, tenant: i64) -> crate::db::sql::Result<String> {
    Ok(conn
        .prepare_cached("SELECT name FROM tenants WHERE id = ?1")?
        .query_row([tenant], |r| r.get(0))
        .optional()?
        .unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_http_without_credentials_and_private_hosts_need_the_flag() {
        for bad in [
            "ftp://hooks.example.com/x",
            "file:///etc/passwd",
            "https://user:pw@hooks.example.com/x",
            "https://user@hooks.example.com/x",
            "not a url",
            "http://",
        ] {
            assert!(check_url(bad, true).is_err(), "{bad}");
        }
        for private in [
            "http://127.0.0.1:9/x",
            "http://localhost/x",
            "http://10.1.2.3/x",
            "http://192.168.1.1/x",
            "http://172.16.0.1/x",
            "http://169.254.169.254/latest/meta-data",
            "http://[::1]/x",
            "http://[fe80::1]/x",
            "http://[fd00::1]/x",
            "http://[::ffff:127.0.0.1]/x",
            "http://0.0.0.0/x",
            "http://100.64.0.1/x",
        ] {
            let e = check_url(private, false).expect_err(private);
            assert!(e.contains("--alerts-allow-private"), "{e}");
            assert!(check_url(private, true).is_ok(), "{private}");
        }
        assert!(check_url("https://hooks.example.com/scim", false).is_ok());
        assert!(check_url("http://93.184.216.34/x", false).is_ok());
    }

    #[test]
    fn hooks_belong_to_their_tenant() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        let a = crate::db::add_tenant(&conn, "a").unwrap();
        let b = crate::db::add_tenant(&conn, "b").unwrap();
        let (a, b) = (
            crate::db::tenant_id(&conn, &a.name).unwrap(),
            crate::db::tenant_id(&conn, &b.name).unwrap(),
        );
        let new = NewHook {
            url: "https://hooks.example.com/a".into(),
            on: vec!["drift".into(), "drift".into(), "role-mismatch".into()],
            format: None,
            backlog_minutes: None,
        };
        let (hook, secret) = create(&conn, a, &new, false).unwrap();
        assert!(
            secret.starts_with("whsec_") && secret.len() == 70,
            "{secret}"
        );
        assert_eq!(hook.on, ["drift", "role-mismatch"]);
        assert_eq!(hook.format, "json");
        assert_eq!(hook.backlog_minutes, DEFAULT_BACKLOG_MINUTES);
        assert_eq!(list(&conn, a).unwrap(), std::slice::from_ref(&hook));
        assert!(list(&conn, b).unwrap().is_empty());
        assert!(!remove(&conn, b, hook.id).unwrap());
        assert!(exists(&conn, a, hook.id).unwrap());
        let bad = NewHook {
            on: vec!["everything".into()],
            ..new.clone()
        };
        assert!(matches!(
            create(&conn, a, &bad, false),
            Err(HookError::Invalid(_))
        ));
        assert!(remove(&conn, a, hook.id).unwrap());
        assert!(list(&conn, a).unwrap().is_empty());
    }
}
