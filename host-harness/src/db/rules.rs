//! Installed mapping rules, per tenant: every version kept, the newest is
//! the one in force. A row without a document means "back to the default
//! mapping".

use crate::db::sql::{Connection, OptionalExtension, params};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// One installed version.
#[derive(Debug, Clone, Serialize)]
pub struct Installed {
    pub version: i64,
    /// `None` when this version returned the tenant to the default mapping.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    pub installed_at: String,
    pub installed_by: String,
}

fn row(r: &crate::db::sql::Row) -> crate::db::sql::Result<Installed> {
    Ok(Installed {
        version: r.get(0)?,
        document: r.get(1)?,
        sha256: r.get(2)?,
        installed_at: r.get(3)?,
        installed_by: r.get(4)?,
    })
}

/// The version in force; `None` when rules were never installed.
pub fn current(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Option<Installed>> {
    conn.prepare_cached(
        "SELECT version, document, sha256, installed_at, installed_by FROM mappings
         WHERE tenant = ?1 ORDER BY version DESC LIMIT 1",
    )?
    .query_row([tenant], row)
    .optional()
}

/// What mapping reads: the compiled form of the version in force (its
/// document when it has none); `None` for the default mapping.
pub fn in_force(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Option<String>> {
    conn.prepare_cached(
        "SELECT coalesce(compiled, document) FROM mappings
         WHERE tenant = ?1 ORDER BY version DESC LIMIT 1",
    )?
    .query_row([tenant], |r| r.get(0))
    .optional()
    .map(Option::flatten)
}

/// The version before the one in force, with its document (`None`: the
/// default mapping); `None` when there is no earlier version.
pub fn previous(
    conn: &Connection,
    tenant: i64,
) -> crate::db::sql::Result<Option<(i64, Option<String>)>> {
    conn.prepare_cached(
        "SELECT version, document FROM mappings WHERE tenant = ?1
         ORDER BY version DESC LIMIT 1 OFFSET 1",
    )?
    .query_row([tenant], |r| Ok((r.get(0)?, r.get(1)?)))
    .optional()
}

/// Every version, newest first (documents left out).
pub fn history(
    conn: &Connection,
    tenant: i64,
    limit: u32,
) -> crate::db::sql::Result<Vec<Installed>> {
    let mut stmt = conn.prepare_cached(
        "SELECT version, NULL, sha256, installed_at, installed_by FROM mappings
         WHERE tenant = ?1 ORDER BY version DESC LIMIT ?2",
    )?;
    stmt.query_map(params![tenant, limit], row)?.collect()
}

/// Records a new version in force (`None`: the default mapping).
pub fn insert(
    conn: &Connection,
    tenant: i64,
    document: Option<&str>,
    compiled: Option<&str>,
    by: &str,
) -> crate::db::sql::Result<Installed> {
    let sha256 = document.map(|d| hex::encode(Sha256::digest(d.as_bytes())));
    conn.prepare_cached(
        "INSERT INTO mappings (tenant, version, document, compiled, sha256, installed_at,
            installed_by)
         SELECT ?1, coalesce(max(version), 0) + 1, ?2, ?3, ?4, ?5, ?6 FROM mappings
         WHERE tenant = ?1",
    )?
    .execute(params![
        tenant,
        document,
        compiled,
        sha256,
        super::now(),
        by
    ])?;
    current(conn, tenant)?.ok_or(crate::db::sql::Error::NoRows)
}
