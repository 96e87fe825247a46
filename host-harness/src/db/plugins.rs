//! Installed mapping plugins, per tenant: every version kept (the newest is
//! in force; a version without a component returned the tenant to its
//! rules), components stored once by content hash, the failure count that
//! disables a plugin, and the inputs of recent failed calls for replay.

use crate::db::sql::{Connection, OptionalExtension, params};
use serde::Serialize;

use crate::sandbox::plugin::PluginLimits;

/// One installed version.
#[derive(Debug, Clone, Serialize)]
pub struct Version {
    pub version: i64,
    /// `None` when this version removed the plugin.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub size: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub settings: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fuel: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub memory_bytes: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_failures: Option<i64>,
    pub installed_at: String,
    pub installed_by: String,
    /// Consecutive failed calls.
    pub failures: i64,
    /// Set when failures disabled the plugin (the rules apply).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub disabled_reason: Option<String>,
}

impl Version {
    /// The call limits this version was installed with.
    pub fn limits(&self) -> PluginLimits {
        let d = PluginLimits::default();
        PluginLimits {
            fuel: self.fuel.map_or(d.fuel, |f| f as u64),
            memory_bytes: self.memory_bytes.map_or(d.memory_bytes, |m| m as usize),
            ..d
        }
    }

    /// Whether this version runs: it has a component and is not disabled.
    pub fn runs(&self) -> bool {
        self.sha256.is_some() && self.disabled_at.is_none()
    }
}

const COLUMNS: &str = "version, sha256, size, settings, fuel, memory_bytes, max_failures,
    installed_at, installed_by, failures, disabled_at, disabled_reason";

fn row(r: &crate::db::sql::Row) -> crate::db::sql::Result<Version> {
    Ok(Version {
        version: r.get(0)?,
        sha256: r.get(1)?,
        size: r.get(2)?,
        settings: r.get(3)?,
        fuel: r.get(4)?,
        memory_bytes: r.get(5)?,
        max_failures: r.get(6)?,
        installed_at: r.get(7)?,
        installed_by: r.get(8)?,
        failures: r.get(9)?,
        disabled_at: r.get(10)?,
        disabled_reason: r.get(11)?,
    })
}

/// The version in force; `None` when no plugin was ever installed.
pub fn current(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Option<Version>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mappers WHERE tenant = ?1 ORDER BY version DESC LIMIT 1"
    ))?
    .query_row([tenant], row)
    .optional()
}

/// The version before the one in force.
pub fn previous(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Option<Version>> {
    conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mappers WHERE tenant = ?1 ORDER BY version DESC LIMIT 1 OFFSET 1"
    ))?
    .query_row([tenant], row)
    .optional()
}

/// Every version, newest first.
pub fn history(conn: &Connection, tenant: i64, limit: u32) -> crate::db::sql::Result<Vec<Version>> {
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {COLUMNS} FROM mappers WHERE tenant = ?1 ORDER BY version DESC LIMIT ?2"
    ))?;
    stmt.query_map(params![tenant, limit], row)?.collect()
}

/// Every tenant whose version in force runs a plugin, with its hash.
pub fn installed(conn: &Connection) -> crate::db::sql::Result<Vec<(i64, String)>> {
    let mut stmt = conn.prepare(
        "SELECT m.tenant, m.sha256 FROM mappers m
          WHERE m.sha256 IS NOT NULL AND m.disabled_at IS NULL
            AND m.version = (SELECT MAX(version) FROM mappers WHERE tenant = m.tenant)",
    )?;
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
        .collect()
}

/// A stored component.
pub fn component(conn: &Connection, sha256: &str) -> crate::db::sql::Result<Option<Vec<u8>>> {
    conn.prepare_cached("SELECT component FROM mapper_components WHERE sha256 = ?1")?
        .query_row([sha256], |r| r.get(0))
        .optional()
}

/// What a new version installs; `None` fields for a removal.
pub struct NewVersion<'a> {
    pub component: Option<(&'a str, &'a [u8])>,
    pub settings: Option<&'a str>,
    pub limits: Option<&'a PluginLimits>,
    pub max_failures: Option<u32>,
    pub by: &'a str,
}

/// Records a new version in force and returns its number.
pub fn insert(conn: &Connection, tenant: i64, v: &NewVersion) -> crate::db::sql::Result<i64> {
    if let Some((sha, bytes)) = v.component {
        conn.execute(
            "INSERT OR IGNORE INTO mapper_components (sha256, component) VALUES (?1, ?2)",
            params![sha, bytes],
        )?;
    }
    let version: i64 = conn.query_row(
        "SELECT coalesce(max(version), 0) + 1 FROM mappers WHERE tenant = ?1",
        [tenant],
        |r| r.get(0),
    )?;
    conn.execute(
        "INSERT INTO mappers (tenant, version, sha256, size, settings, fuel, memory_bytes,
            max_failures, installed_at, installed_by)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
        params![
            tenant,
            version,
            v.component.map(|(s, _)| s),
            v.component.map(|(_, b)| b.len() as i64),
            v.settings,
            v.limits.map(|l| l.fuel as i64),
            v.limits.map(|l| l.memory_bytes as i64),
            v.max_failures,
            super::now(),
            v.by,
        ],
    )?;
    Ok(version)
}

/// Counts a failed call of `version`; returns the consecutive count.
pub fn failed(conn: &Connection, tenant: i64, version: i64) -> crate::db::sql::Result<i64> {
    conn.prepare_cached(
        "UPDATE mappers SET failures = failures + 1 WHERE tenant = ?1 AND version = ?2
         RETURNING failures",
    )?
    .query_row(params![tenant, version], |r| r.get(0))
}

/// A successful call: the consecutive count starts again.
pub fn succeeded(conn: &Connection, tenant: i64, version: i64) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "UPDATE mappers SET failures = 0 WHERE tenant = ?1 AND version = ?2 AND failures > 0",
    )?
    .execute(params![tenant, version])
    .map(|_| ())
}

/// Disables `version` (the rules take over).
pub fn disable(
    conn: &Connection,
    tenant: i64,
    version: i64,
    reason: &str,
) -> crate::db::sql::Result<()> {
    conn.execute(
        "UPDATE mappers SET disabled_at = ?3, disabled_reason = ?4 WHERE tenant = ?1 AND version = ?2",
        params![tenant, version, super::now(), reason],
    )
    .map(|_| ())
}

/// Failed calls kept per tenant for replay.
pub const KEPT_FAILURES: i64 = 50;

/// A failed call's input, for replay.
#[derive(Debug, Clone, Serialize)]
pub struct FailedCall {
    pub id: i64,
    pub at: String,
    pub sha256: String,
    /// The user as the plugin received it (JSON).
    pub input: String,
    pub settings: String,
    pub reason: String,
    pub detail: String,
}

/// Keeps a failed call's input, dropping the oldest beyond [`KEPT_FAILURES`].
pub fn keep_failure(
    conn: &Connection,
    tenant: i64,
    sha256: &str,
    input: &str,
    settings: &str,
    reason: &str,
    detail: &str,
) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "INSERT INTO mapper_failures (tenant, at, sha256, input, settings, reason, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        tenant,
        super::now(),
        sha256,
        input,
        settings,
        reason,
        detail
    ])?;
    conn.prepare_cached(
        "DELETE FROM mapper_failures WHERE tenant = ?1 AND id <= (
            SELECT id FROM mapper_failures WHERE tenant = ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2)",
    )?
    .execute(params![tenant, KEPT_FAILURES])
    .map(|_| ())
}

/// The kept failed calls, newest first.
pub fn failures(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Vec<FailedCall>> {
    let mut stmt = conn.prepare_cached(
        "SELECT id, at, sha256, input, settings, reason, detail FROM mapper_failures
         WHERE tenant = ?1 ORDER BY id DESC",
    )?;
    stmt.query_map([tenant], |r| {
        Ok(FailedCall {
            id: r.get(0)?,
            at: r.get(1)?,
            sha256: r.get(2)?,
            input: r.get(3)?,
            settings: r.get(4)?,
            reason: r.get(5)?,
            detail: r.get(6)?,
        })
    })?
    .collect()
}
