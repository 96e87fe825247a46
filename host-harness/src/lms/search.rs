//! Finding a learner the way an administrator remembers one: by SCIM id, or
//! by a piece of its userName, display name or email, in any case.

use serde_json::{Value, json};

use super::status_of;
use crate::db::sql::{Connection, params};

/// The most learners one search answers.
pub const MAX_RESULTS: u32 = 100;

/// Learners of `tenant` whose id is `q`, or whose userName, display name or
/// email contains `q` (case-insensitively): the id first, then prefix
/// matches, then the rest, each by userName. Substrings need every learner
/// of the tenant read (its primary key's range): fine at LMS sizes, and
/// bounded by `limit` in what is sent.
pub fn learners(
    conn: &Connection,
    tenant: i64,
    q: &str,
    limit: u32,
) -> crate::db::sql::Result<Vec<Value>> {
    let needle = escape_like(&q.to_lowercase());
    let contains = format!("%{needle}%");
    let prefix = format!("{needle}%");
    let mut stmt = conn.prepare_cached(
        "SELECT scim_id, user_name, display_name, email, status FROM learners
         WHERE tenant = ?1 AND (scim_id = ?2
            OR lower(user_name) LIKE ?3 ESCAPE '\\'
            OR lower(display_name) LIKE ?3 ESCAPE '\\'
            OR lower(email) LIKE ?3 ESCAPE '\\')
         ORDER BY CASE
                WHEN scim_id = ?2 THEN 0
                WHEN lower(user_name) LIKE ?4 ESCAPE '\\'
                    OR lower(display_name) LIKE ?4 ESCAPE '\\'
                    OR lower(email) LIKE ?4 ESCAPE '\\' THEN 1
                ELSE 2 END,
            user_name, scim_id
         LIMIT ?5",
    )?;
    let rows = stmt.query_map(
        params![tenant, q, contains, prefix, limit.clamp(1, MAX_RESULTS)],
        |r| {
            let status: String = r.get(4)?;
            Ok(json!({
                "id": r.get::<_, String>(0)?,
                "userName": r.get::<_, String>(1)?,
                "displayName": r.get::<_, Option<String>>(2)?,
                "email": r.get::<_, Option<String>>(3)?,
                "status": super::status_name(status_of(&status)),
            }))
        },
    )?;
    rows.collect()
}

/// `s` with LIKE's wildcards taken literally (escape character `\`).
fn escape_like(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcards_are_taken_literally() {
        assert_eq!(escape_like("a%b_c\\d"), "a\\%b\\_c\\\\d");
    }
}
