//! The reference LMS's catalogue: the roles, teams and learning paths that
//! exist. Mapping grants only what is here (teams are added on demand);
//! admins add roles and learning paths through the admin API or the CLI.

use crate::db::sql::{Connection, params};
use serde_json::{Value, json};

use super::{kind_name, kind_of};
use crate::bindings::lms::scim::lms::GrantKind;

/// Longest item name accepted.
const MAX_NAME: usize = 200;

/// Every item, by kind (`roles`, `teams`, `learningPaths`).
pub fn list(conn: &Connection, tenant: i64) -> crate::db::sql::Result<Value> {
    let mut stmt = conn
        .prepare_cached("SELECT kind, name FROM catalogue WHERE tenant = ?1 ORDER BY kind, name")?;
    let mut out = json!({"roles": [], "teams": [], "learningPaths": []});
    let rows = stmt.query_map([tenant], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })?;
    for row in rows {
        let (kind, name) = row?;
        let key = match kind_of(&kind) {
            Some(GrantKind::Role) => "roles",
            Some(GrantKind::Team) => "teams",
            Some(GrantKind::LearningPath) => "learningPaths",
            None => continue,
        };
        if let Some(list) = out[key].as_array_mut() {
            list.push(Value::String(name));
        }
    }
    Ok(out)
}

/// Adds an item; returns whether it was new. A name is trimmed and must be
/// 1 to 200 characters without control characters.
pub fn add(conn: &Connection, tenant: i64, kind: GrantKind, name: &str) -> Result<bool, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(format!(
            "a {} name must have 1 to {MAX_NAME} characters and no control characters",
            kind_name(kind)
        ));
    }
    conn.prepare_cached("INSERT OR IGNORE INTO catalogue (tenant, kind, name) VALUES (?1, ?2, ?3)")
        .and_then(|mut s| s.execute(params![tenant, kind_name(kind), name]))
        .map(|n| n > 0)
        .map_err(|e| e.to_string())
}
