//! Tenants and their tokens: a SCIM token for the identity provider and an
//! admin token for the LMS's administrators, so the identity provider can
//! neither change mappings nor read the sync log. Only SHA-256 hashes are
//! stored; the final comparison runs in constant time.

use crate::db::sql::{Connection, OptionalExtension, params};
use anyhow::{Context as _, Result, bail};
use rand::RngCore;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::gate::Share;

/// A tenant as the host knows it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: i64,
    pub name: String,
    pub signing_key: Vec<u8>,
    /// Its share of the server (read with its token, so a change applies
    /// to the next request).
    pub share: Share,
}

/// Which of a tenant's two tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenKind {
    /// Held by the identity provider: `/scim/v2` only.
    Scim,
    /// Held by the LMS's administrators: `/admin/v1` and the CLI.
    Admin,
}

impl TokenKind {
    fn column(self) -> &'static str {
        match self {
            TokenKind::Scim => "token_hash",
            TokenKind::Admin => "admin_token_hash",
        }
    }

    fn prefix(self) -> &'static str {
        match self {
            TokenKind::Scim => "scim",
            TokenKind::Admin => "adm",
        }
    }
}

/// A new tenant's tokens, shown once.
#[derive(Debug, Clone, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct NewTenant {
    pub name: String,
    pub scim_token: String,
    pub admin_token: String,
}

pub fn hash_token(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    rand::rng().fill_bytes(&mut b);
    b
}

/// A new random bearer token of a kind (`scim_…` or `adm_…`).
pub fn new_token(kind: TokenKind) -> String {
    format!("{}_{}", kind.prefix(), hex::encode(random_bytes::<24>()))
}

/// The tenant a token of `kind` belongs to.
pub fn authenticate(conn: &Connection, kind: TokenKind, token: &str) -> Result<Option<Tenant>> {
    let hash = hash_token(token);
    // One fixed statement per kind: every request runs it.
    let sql = match kind {
        TokenKind::Scim => {
            "SELECT id, name, signing_key, token_hash, max_concurrent, rate_per_sec
               FROM tenants WHERE token_hash = ?1"
        }
        TokenKind::Admin => {
            "SELECT id, name, signing_key, admin_token_hash, max_concurrent, rate_per_sec
               FROM tenants WHERE admin_token_hash = ?1"
        }
    };
    let row = conn
        .prepare_cached(sql)?
        .query_row([&hash[..]], |r| {
            Ok((
                Tenant {
                    id: r.get(0)?,
                    name: r.get(1)?,
                    signing_key: r.get(2)?,
                    share: Share {
                        max_concurrent: r.get(4)?,
                        rate_per_sec: r.get(5)?,
                    },
                },
                r.get::<_, Vec<u8>>(3)?,
            ))
        })
        .optional()?;
    Ok(row.and_then(|(tenant, stored)| bool::from(stored.ct_eq(&hash)).then_some(tenant)))
}

/// Creates a tenant with new random tokens and the catalogue's `learner`
/// role.
pub fn add_tenant(conn: &Connection, name: &str) -> Result<NewTenant> {
    let scim_token = new_token(TokenKind::Scim);
    let admin_token = new_token(TokenKind::Admin);
    conn.execute(
        "INSERT INTO tenants (name, token_hash, admin_token_hash, signing_key) VALUES (?1, ?2, ?3, ?4)",
        params![
            name,
            &hash_token(&scim_token)[..],
            &hash_token(&admin_token)[..],
            &random_bytes::<32>()[..]
        ],
    )
    .with_context(|| format!("creating tenant '{name}' (does it exist already? see `tenant list`)"))?;
    seed_catalogue(conn, name)?;
    Ok(NewTenant {
        name: name.to_string(),
        scim_token,
        admin_token,
    })
}

fn seed_catalogue(conn: &Connection, name: &str) -> Result<()> {
    conn.execute(
        "INSERT OR IGNORE INTO catalogue (tenant, kind, name)
         SELECT id, 'role', 'learner' FROM tenants WHERE name = ?1",
        [name],
    )?;
    Ok(())
}

/// Makes `token` the tenant's token of `kind`, creating the tenant if needed
/// (`serve --token` / `--admin-token`).
pub fn set_tenant_token(conn: &Connection, name: &str, kind: TokenKind, token: &str) -> Result<()> {
    let col = kind.column();
    let placeholder = new_token(TokenKind::Scim);
    conn.execute(
        "INSERT INTO tenants (name, token_hash, signing_key) VALUES (?1, ?2, ?3)
         ON CONFLICT (name) DO NOTHING",
        params![
            name,
            &hash_token(&placeholder)[..],
            &random_bytes::<32>()[..]
        ],
    )?;
    if kind == TokenKind::Admin {
        // A different admin token (a leaked one replaced at a restart) ends
        // the sessions opened with the old one; the same token keeps them.
        conn.execute(
            "DELETE FROM admin_sessions WHERE tenant IN (SELECT id FROM tenants
                WHERE name = ?1 AND (admin_token_hash IS NULL OR admin_token_hash <> ?2))",
            params![name, &hash_token(token)[..]],
        )?;
    }
    conn.execute(
        &format!("UPDATE tenants SET {col} = ?2 WHERE name = ?1"),
        params![name, &hash_token(token)[..]],
    )
    .with_context(|| {
        format!("setting the {col} of tenant '{name}' (is the token another tenant's?)")
    })?;
    seed_catalogue(conn, name)?;
    Ok(())
}

/// Replaces a tenant's token of `kind` with a new random one; returns it.
/// A new admin token ends every console session of the tenant: whoever
/// signed in with the old one is signed out.
pub fn rotate_token(conn: &Connection, name: &str, kind: TokenKind) -> Result<String> {
    let token = new_token(kind);
    if kind == TokenKind::Admin {
        end_sessions_of(conn, name)?;
    }
    let n = conn.execute(
        &format!("UPDATE tenants SET {} = ?2 WHERE name = ?1", kind.column()),
        params![name, &hash_token(&token)[..]],
    )?;
    if n == 0 {
        bail!("no tenant named '{name}'; see `scim-host tenant list`");
    }
    Ok(token)
}

/// How long a console session lasts (the cookie's `Max-Age`).
pub const SESSION_SECONDS: i64 = 8 * 3600;

/// A console session: what the admin token was exchanged for at sign-in.
#[derive(Debug, Clone)]
pub struct Session {
    pub tenant: Tenant,
    /// The token every write of the session must echo (`X-CSRF-Token`).
    pub csrf: String,
    /// When it ends, as stored (RFC 3339, UTC).
    pub expires: String,
}

/// Starts a session for `tenant`: returns the cookie's value (only its hash
/// is stored) and the session. Expired sessions of every tenant are purged
/// on the way, so the table holds live sessions and a few stale ones.
pub fn start_session(conn: &Connection, tenant: &Tenant) -> Result<(String, Session)> {
    let now = time::OffsetDateTime::now_utc();
    conn.execute(
        "DELETE FROM admin_sessions WHERE expires <= ?1",
        [super::timestamp(now)],
    )?;
    let cookie = hex::encode(random_bytes::<32>());
    let csrf = hex::encode(random_bytes::<32>());
    let expires = super::timestamp(now + time::Duration::seconds(SESSION_SECONDS));
    conn.execute(
        "INSERT INTO admin_sessions (id_hash, tenant, csrf, created, expires)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            &hash_token(&cookie)[..],
            tenant.id,
            csrf,
            super::timestamp(now),
            expires
        ],
    )?;
    Ok((
        cookie,
        Session {
            tenant: tenant.clone(),
            csrf,
            expires,
        },
    ))
}

/// The live session a cookie's value names; `None` when it is unknown,
/// ended or expired.
pub fn session(conn: &Connection, cookie: &str) -> Result<Option<Session>> {
    let row = conn
        .prepare_cached(
            "SELECT t.id, t.name, t.signing_key, t.max_concurrent, t.rate_per_sec, s.csrf, s.expires
             FROM admin_sessions s JOIN tenants t ON t.id = s.tenant
             WHERE s.id_hash = ?1 AND s.expires > ?2",
        )?
        .query_row(
            params![&hash_token(cookie)[..], super::now()],
            |r| {
                Ok(Session {
                    tenant: Tenant {
                        id: r.get(0)?,
                        name: r.get(1)?,
                        signing_key: r.get(2)?,
                        share: Share {
                            max_concurrent: r.get(3)?,
                            rate_per_sec: r.get(4)?,
                        },
                    },
                    csrf: r.get(5)?,
                    expires: r.get(6)?,
                })
            },
        )
        .optional()?;
    Ok(row)
}

/// Ends the session a cookie's value names (nothing when there is none).
pub fn end_session(conn: &Connection, cookie: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM admin_sessions WHERE id_hash = ?1",
        [&hash_token(cookie)[..]],
    )?;
    Ok(())
}

/// Ends every session of tenant `name`.
fn end_sessions_of(conn: &Connection, name: &str) -> Result<()> {
    conn.execute(
        "DELETE FROM admin_sessions WHERE tenant IN (SELECT id FROM tenants WHERE name = ?1)",
        [name],
    )?;
    Ok(())
}

/// Deletes a tenant and everything stored for it, in one transaction.
pub fn remove_tenant(conn: &mut Connection, name: &str) -> Result<()> {
    let tx = conn.transaction(crate::db::Begin::Write(None))?;
    let id: Option<i64> = tx
        .query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(id) = id else {
        bail!("no tenant named '{name}'; see `scim-host tenant list`");
    };
    tx.execute(
        "DELETE FROM members WHERE group_seq IN (SELECT seq FROM documents WHERE tenant = ?1)
            OR member_seq IN (SELECT seq FROM documents WHERE tenant = ?1)",
        [id],
    )?;
    // Tenant ids can be reused: a new tenant must not inherit a removed
    // one's plugins or log.
    for table in tenant_tables(&tx)? {
        tx.execute(&format!("DELETE FROM \"{table}\" WHERE tenant = ?1"), [id])?;
    }
    // Plugin components are shared by content hash; drop the unused ones.
    tx.execute(
        "DELETE FROM mapper_components WHERE sha256 NOT IN
            (SELECT sha256 FROM mappers WHERE sha256 IS NOT NULL)",
        [],
    )?;
    tx.execute("DELETE FROM tenants WHERE id = ?1", [id])?;
    tx.commit()?;
    Ok(())
}

/// A tenant's provisioning policy as stored.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PolicyRow {
    /// `suspend` or `remove`.
    pub on_delete: String,
    /// `restore` or `report`.
    pub drift: String,
    /// Percent of learners a mapping change may take something from before
    /// it needs an explicit confirmation.
    pub confirm_threshold: f64,
    /// Roles a mapping plugin may not grant.
    pub plugin_denied_roles: Vec<String>,
}

/// Why a policy value is refused (`Ok` when every given one is valid),
/// worded for the CLI's flags and the admin API's members alike.
pub fn check_policy(
    on_delete: Option<&str>,
    drift: Option<&str>,
    confirm_threshold: Option<f64>,
) -> Result<(), String> {
    if let Some(v) = on_delete
        && !matches!(v, "suspend" | "remove")
    {
        return Err(format!(
            "on-delete must be 'suspend' or 'remove', not '{v}'"
        ));
    }
    if let Some(v) = drift
        && !matches!(v, "restore" | "report")
    {
        return Err(format!("drift must be 'restore' or 'report', not '{v}'"));
    }
    if let Some(t) = confirm_threshold
        && !(0.0..=100.0).contains(&t)
    {
        return Err(format!(
            "the confirm threshold is a percentage from 0 to 100, not {t}"
        ));
    }
    Ok(())
}

/// Changes the parts of tenant `name`'s policy that are given.
pub fn set_policy(
    conn: &Connection,
    name: &str,
    on_delete: Option<&str>,
    drift: Option<&str>,
    confirm_threshold: Option<f64>,
    plugin_denied_roles: Option<&[String]>,
) -> Result<PolicyRow> {
    check_policy(on_delete, drift, confirm_threshold).map_err(anyhow::Error::msg)?;
    let denied = plugin_denied_roles.map(|roles| {
        let mut r: Vec<&str> = roles
            .iter()
            .map(|r| r.trim())
            .filter(|r| !r.is_empty())
            .collect();
        r.sort_unstable();
        r.dedup();
        serde_json::to_string(&r).expect("strings serialize")
    });
    let n = conn.execute(
        "UPDATE tenants SET on_delete = coalesce(?2, on_delete), drift = coalesce(?3, drift),
            confirm_threshold = coalesce(?4, confirm_threshold),
            plugin_denied_roles = coalesce(?5, plugin_denied_roles)
         WHERE name = ?1",
        params![name, on_delete, drift, confirm_threshold, denied],
    )?;
    if n == 0 {
        bail!("no tenant named '{name}'; see `scim-host tenant list`");
    }
    Ok(policy(conn, tenant_id(conn, name)?)?)
}

/// The tenant's policy.
pub fn policy(conn: &Connection, tenant: i64) -> crate::db::sql::Result<PolicyRow> {
    conn.prepare_cached(
        "SELECT on_delete, drift, confirm_threshold, plugin_denied_roles FROM tenants WHERE id = ?1",
    )?
    .query_row([tenant], |r| {
        let denied: String = r.get(3)?;
        Ok(PolicyRow {
            on_delete: r.get(0)?,
            drift: r.get(1)?,
            confirm_threshold: r.get(2)?,
            plugin_denied_roles: serde_json::from_str(&denied).unwrap_or_default(),
        })
    })
}

/// Sets a tenant's share of the server (`None` leaves a field as it is;
/// `Some(None)` returns it to the server's default) and returns it.
pub fn set_share(
    conn: &Connection,
    name: &str,
    max_concurrent: Option<Option<u32>>,
    rate_per_sec: Option<Option<f64>>,
) -> Result<Share> {
    if max_concurrent.flatten() == Some(0) {
        bail!("--max-concurrent must be at least 1 (or 'default')");
    }
    if rate_per_sec
        .flatten()
        .is_some_and(|r| !r.is_finite() || r < 0.0)
    {
        bail!("--rate must be a number of requests per second, 0 for none (or 'default')");
    }
    let id = tenant_id(conn, name)?;
    if let Some(m) = max_concurrent {
        conn.execute(
            "UPDATE tenants SET max_concurrent = ?2 WHERE id = ?1",
            params![id, m],
        )?;
    }
    if let Some(r) = rate_per_sec {
        conn.execute(
            "UPDATE tenants SET rate_per_sec = ?2 WHERE id = ?1",
            params![id, r],
        )?;
    }
    Ok(conn.query_row(
        "SELECT max_concurrent, rate_per_sec FROM tenants WHERE id = ?1",
        [id],
        |r| {
            Ok(Share {
                max_concurrent: r.get(0)?,
                rate_per_sec: r.get(1)?,
            })
        },
    )?)
}

/// The id of the tenant called `name`.
pub fn tenant_id(conn: &Connection, name: &str) -> Result<i64> {
    conn.query_row("SELECT id FROM tenants WHERE name = ?1", [name], |r| {
        r.get(0)
    })
    .optional()?
    .with_context(|| format!("no tenant named '{name}'; see `scim-host tenant list`"))
}

/// Whether tenant `name` exists and has an admin token.
pub fn has_admin_token(conn: &Connection, name: &str) -> Result<bool> {
    Ok(conn
        .query_row(
            "SELECT admin_token_hash IS NOT NULL FROM tenants WHERE name = ?1",
            [name],
            |r| r.get(0),
        )
        .optional()?
        .unwrap_or(false))
}

/// Names of all tenants.
/// Every table with a `tenant` column, read from the schema so that a table
/// added later cannot be forgotten when a tenant is removed.
fn tenant_tables(conn: &Connection) -> crate::db::sql::Result<Vec<String>> {
    let sql = match conn.dialect() {
        crate::db::Dialect::Sqlite => {
            "SELECT m.name FROM sqlite_schema m, pragma_table_info(m.name) c
             WHERE m.type = 'table' AND c.name = 'tenant'"
        }
        crate::db::Dialect::Postgres => {
            "SELECT c.table_name::text FROM information_schema.columns c
             JOIN information_schema.tables t
               ON t.table_schema = c.table_schema AND t.table_name = c.table_name
             WHERE c.table_schema = current_schema() AND c.column_name = 'tenant'
               AND t.table_type = 'BASE TABLE'"
        }
    };
    conn.prepare(sql)?.query_map([], |r| r.get(0))?.collect()
}

pub fn tenant_names(conn: &Connection) -> Result<Vec<String>> {
    let mut stmt = conn.prepare("SELECT name FROM tenants ORDER BY id")?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<crate::db::sql::Result<Vec<String>>>()?;
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A tenant's share is read with its token, one tenant's change leaves
    /// the other's alone, and nonsense changes nothing.
    #[test]
    fn a_share_is_set_per_tenant_and_read_with_the_token() {
        let (_dir, pool) = crate::db::scratch();
        let conn = pool.get().unwrap();
        let a = add_tenant(&conn, "a").unwrap();
        let b = add_tenant(&conn, "b").unwrap();
        let share = set_share(&conn, "a", Some(Some(3)), Some(Some(50.0))).unwrap();
        let expected = Share {
            max_concurrent: Some(3),
            rate_per_sec: Some(50.0),
        };
        assert_eq!(share, expected);
        let read = |token: &str| {
            authenticate(&conn, TokenKind::Scim, token)
                .unwrap()
                .unwrap()
                .share
        };
        assert_eq!(read(&a.scim_token), expected);
        assert_eq!(
            read(&b.scim_token),
            Share::default(),
            "b keeps the defaults"
        );
        for (m, r) in [
            (Some(Some(0)), None),
            (None, Some(Some(-1.0))),
            (None, Some(Some(f64::NAN))),
        ] {
            assert!(set_share(&conn, "a", m, r).is_err(), "{m:?} {r:?}");
        }
        assert!(set_share(&conn, "nobody", Some(Some(1)), None).is_err());
        assert_eq!(read(&a.scim_token), expected, "refusals changed nothing");
        // `default` (None) returns one field to the server's default.
        let share = set_share(&conn, "a", None, Some(None)).unwrap();
        assert_eq!(share.rate_per_sec, None);
        assert_eq!(share.max_concurrent, Some(3));
    }

    /// A removed tenant leaves no row behind in any table, plugins and their
    /// failures included, so a tenant that later gets its id inherits nothing.
    #[test]
    fn removing_a_tenant_leaves_nothing_a_new_tenant_could_inherit() {
        let (_dir, pool) = crate::db::scratch();
        let mut conn = pool.get().unwrap();
        add_tenant(&conn, "stays").unwrap();
        add_tenant(&conn, "leaving").unwrap();
        let id = tenant_id(&conn, "leaving").unwrap();
        conn.execute_batch(&format!(
            "INSERT INTO mapper_components (sha256, component) VALUES ('abc', x'00');
             INSERT INTO mappers (tenant, version, sha256, installed_at, installed_by)
                VALUES ({id}, 1, 'abc', 'now', 'test');
             INSERT INTO mapper_failures (tenant, at, sha256, input, settings, reason, detail)
                VALUES ({id}, 'now', 'abc', '{{}}', '{{}}', 'trap', 'x');
             INSERT INTO events (tenant, at, request_id, change_id, action, resource_type,
                resource_id, status, changes, duration_us)
                VALUES ({id}, 'now', 'r', 'c', 'create', 'User', 'u', 'success', '[]', 0);"
        ))
        .unwrap();
        remove_tenant(&mut conn, "leaving").unwrap();
        let tables = tenant_tables(&conn).unwrap();
        assert!(tables.len() >= 10, "{tables:?}");
        for t in &tables {
            let n: i64 = conn
                .query_row(
                    &format!("SELECT count(*) FROM \"{t}\" WHERE tenant = ?1"),
                    [id],
                    |r| r.get(0),
                )
                .unwrap();
            assert_eq!(n, 0, "{t} still holds rows of the removed tenant");
        }
        let components: i64 = conn
            .query_row("SELECT count(*) FROM mapper_components", [], |r| r.get(0))
            .unwrap();
        assert_eq!(components, 0, "an unused plugin component was kept");
        assert!(tenant_id(&conn, "stays").is_ok());
    }
}
