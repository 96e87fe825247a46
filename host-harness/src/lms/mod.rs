//! The reference LMS: learners, the catalogue of roles, teams and learning
//! paths, and assignments with their source, in the host's SQLite database.
//! The engine decides what each learner should hold; this module stores it.
//! A vendor replaces it with their own LMS behind the WIT `lms` interface.

pub mod admin;
pub mod catalogue;
pub mod search;

use std::collections::HashSet;

use crate::db::sql::{Connection, OptionalExtension, params};

use crate::bindings::lms::scim::lms::{Change, Effect, GrantKind, Item, LearnerStatus, Profile};
use crate::events::EventRow;

/// The most learners `holders` and `rename_grants` answer in one call, as
/// the WIT contract promises the engine (which never asks for more).
pub const MAX_LEARNERS_PER_CALL: u32 = 10_000;

/// A kind as stored and shown (`role`, `team`, `learningPath`).
pub fn kind_name(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::Role => "role",
        GrantKind::Team => "team",
        GrantKind::LearningPath => "learningPath",
    }
}

pub fn kind_of(name: &str) -> Option<GrantKind> {
    match name {
        "role" => Some(GrantKind::Role),
        "team" => Some(GrantKind::Team),
        "learningPath" => Some(GrantKind::LearningPath),
        _ => None,
    }
}

pub fn status_name(s: LearnerStatus) -> &'static str {
    match s {
        LearnerStatus::Active => "active",
        LearnerStatus::Suspended => "suspended",
        LearnerStatus::Removed => "removed",
    }
}

fn status_of(s: &str) -> LearnerStatus {
    match s {
        "active" => LearnerStatus::Active,
        "removed" => LearnerStatus::Removed,
        _ => LearnerStatus::Suspended,
    }
}

/// The group or attribute part of a source (`rule@via`); the whole source
/// when it has none (`manual`).
pub fn via(source: &str) -> &str {
    source.split_once('@').map_or(source, |(_, v)| v)
}

/// A learner's status and assignments.
pub struct Learner {
    pub scim_id: String,
    pub user_name: String,
    pub status: LearnerStatus,
    /// Kind, name, source.
    pub grants: Vec<(GrantKind, String, String)>,
    /// Mapped grants an administrator removed by hand (drift), kept so
    /// mapping can tell them from grants it never made.
    pub withdrawn: Vec<(GrantKind, String, String)>,
}

/// Reads a learner and its assignments (one query).
pub fn learner(
    conn: &Connection,
    tenant: i64,
    id: &str,
) -> crate::db::sql::Result<Option<Learner>> {
    let mut stmt = conn.prepare_cached(
        "SELECT l.user_name, l.status, a.kind, a.name, a.source, a.withdrawn
         FROM learners l LEFT JOIN assignments a ON a.tenant = l.tenant AND a.scim_id = l.scim_id
         WHERE l.tenant = ?1 AND l.scim_id = ?2
         ORDER BY a.kind, a.name, a.source",
    )?;
    let mut rows = stmt.query(params![tenant, id])?;
    let mut out: Option<Learner> = None;
    while let Some(r) = rows.next()? {
        let l = match &mut out {
            Some(l) => l,
            None => out.insert(Learner {
                scim_id: id.to_string(),
                user_name: r.get(0)?,
                status: status_of(&r.get::<_, String>(1)?),
                grants: Vec::new(),
                withdrawn: Vec::new(),
            }),
        };
        if let (Some(kind), Some(name), Some(source)) = (
            r.get::<_, Option<String>>(2)?,
            r.get::<_, Option<String>>(3)?,
            r.get::<_, Option<String>>(4)?,
        ) && let Some(kind) = kind_of(&kind)
        {
            if r.get::<_, Option<bool>>(5)?.unwrap_or(false) {
                l.withdrawn.push((kind, name, source));
            } else {
                l.grants.push((kind, name, source));
            }
        }
    }
    Ok(out)
}

/// A learner's profile as stored, in `Profile` order (see [`PROFILE_KEYS`]).
pub fn profile(
    conn: &Connection,
    tenant: i64,
    id: &str,
) -> crate::db::sql::Result<Option<[Option<String>; 8]>> {
    conn.prepare_cached(
        "SELECT display_name, given_name, family_name, email, locale, title, department, manager
         FROM learners WHERE tenant = ?1 AND scim_id = ?2",
    )?
    .query_row(params![tenant, id], |r| {
        Ok([
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
            r.get(7)?,
        ])
    })
    .optional()
}

/// The profile's members as JSON shows them, in `Profile` order.
pub const PROFILE_KEYS: [&str; 8] = [
    "displayName",
    "givenName",
    "familyName",
    "email",
    "locale",
    "title",
    "department",
    "manager",
];

/// The parameters of a `tenant = ? AND scim_id IN (...)` statement.
fn tenant_and<'a, T: crate::db::sql::ToSql>(
    tenant: &'a i64,
    ids: &'a [T],
) -> crate::db::sql::ParamsFromIter<impl Iterator<Item = &'a dyn crate::db::sql::ToSql>> {
    crate::db::sql::params_from_iter(
        std::iter::once(tenant as &dyn crate::db::sql::ToSql)
            .chain(ids.iter().map(|id| id as &dyn crate::db::sql::ToSql)),
    )
}

/// Reads many learners and their assignments, one statement per
/// [`crate::db::IN_LIST_CHUNK`] ids.
pub fn learners(
    conn: &Connection,
    tenant: i64,
    ids: &[String],
) -> crate::db::sql::Result<Vec<Learner>> {
    let mut out: Vec<Learner> = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(crate::db::IN_LIST_CHUNK) {
        let marks = crate::db::placeholders(chunk.len());
        let sql = format!(
            "SELECT l.scim_id, l.user_name, l.status, a.kind, a.name, a.source, a.withdrawn
             FROM learners l LEFT JOIN assignments a ON a.tenant = l.tenant AND a.scim_id = l.scim_id
             WHERE l.tenant = ? AND l.scim_id IN ({marks})
             ORDER BY l.scim_id, a.kind, a.name, a.source"
        );
        let mut stmt = conn.prepare_cached(&sql)?;
        let mut rows = stmt.query(tenant_and(&tenant, chunk))?;
        while let Some(r) = rows.next()? {
            let id: String = r.get(0)?;
            if out.last().is_none_or(|l| l.scim_id != id) {
                out.push(Learner {
                    scim_id: id,
                    user_name: r.get(1)?,
                    status: status_of(&r.get::<_, String>(2)?),
                    grants: Vec::new(),
                    withdrawn: Vec::new(),
                });
            }
            let l = out.last_mut().expect("pushed above");
            if let (Some(kind), Some(name), Some(source)) = (
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ) && let Some(kind) = kind_of(&kind)
            {
                if r.get::<_, Option<bool>>(6)?.unwrap_or(false) {
                    l.withdrawn.push((kind, name, source));
                } else {
                    l.grants.push((kind, name, source));
                }
            }
        }
    }
    Ok(out)
}

/// The profile columns, in `Profile` order.
const PROFILE: [&str; 8] = [
    "display_name",
    "given_name",
    "family_name",
    "email",
    "locale",
    "title",
    "department",
    "manager",
];

fn profile_values(p: &Profile) -> [Option<String>; 8] {
    [
        p.display_name.clone(),
        p.given_name.clone(),
        p.family_name.clone(),
        p.email.clone(),
        p.locale.clone(),
        p.title.clone(),
        p.department.clone(),
        p.manager.clone(),
    ]
}

fn json_text(s: &Option<String>) -> Option<String> {
    s.as_ref()
        .map(|s| serde_json::Value::String(s.clone()).to_string())
}

/// Whether an effect needs the learner's status or profile read first.
fn reads_learner(e: &Effect) -> bool {
    matches!(
        e,
        Effect::Upsert(_) | Effect::Suspend | Effect::Reactivate | Effect::Remove
    )
}

fn is_grant(e: &Effect) -> bool {
    matches!(
        e,
        Effect::SetRole(_) | Effect::JoinTeam(_) | Effect::AssignPath(_)
    )
}

/// What the changes of one `apply` call share.
pub struct Batch {
    /// The call's time, stamped on the grants it makes.
    at: String,
    /// Teams already made sure of, so a re-mapping that moves thousands of
    /// learners into one team creates it once.
    teams: HashSet<String>,
    /// Of the learners whose changes grant without reading them (a
    /// re-mapping's), those that exist: asked for all the changes at once.
    present: HashSet<String>,
}

impl Batch {
    pub fn new(
        conn: &Connection,
        tenant: i64,
        changes: &[Change],
    ) -> crate::db::sql::Result<Batch> {
        let ask: Vec<&str> = changes
            .iter()
            .filter(|c| c.effects.iter().any(is_grant) && !c.effects.iter().any(reads_learner))
            .map(|c| c.learner.scim_id.as_str())
            .collect();
        let mut present = HashSet::with_capacity(ask.len());
        for chunk in ask.chunks(crate::db::IN_LIST_CHUNK) {
            let sql = format!(
                "SELECT scim_id FROM learners WHERE tenant = ? AND scim_id IN ({})",
                crate::db::placeholders(chunk.len())
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let mut rows = stmt.query(tenant_and(&tenant, chunk))?;
            while let Some(r) = rows.next()? {
                present.insert(r.get(0)?);
            }
        }
        Ok(Batch {
            at: crate::events::now(),
            teams: HashSet::new(),
            present,
        })
    }
}

/// Applies one learner's effects, in order, idempotently; returns the event
/// describing what actually changed (none when nothing did). `batch` was
/// made from the changes this one belongs to.
pub fn apply(
    conn: &Connection,
    tenant: i64,
    change: &Change,
    batch: &mut Batch,
) -> crate::db::sql::Result<Option<EventRow>> {
    let r = &change.learner;
    let id = r.scim_id.as_str();
    let mut changes = Vec::new();
    let mut action: Option<&'static str> = None;
    let Batch { at, teams, present } = batch;
    let at = at.as_str();
    // What the learner is now, read only when an effect needs its status or
    // profile: a re-mapping's grants and revokes need neither (whether the
    // learner exists comes from the batch).
    let needs_read = change.effects.iter().any(reads_learner);
    let current: Option<(String, [Option<String>; 8])> = if needs_read {
        conn.prepare_cached(
            "SELECT status, display_name, given_name, family_name, email, locale, title,
                department, manager FROM learners WHERE tenant = ?1 AND scim_id = ?2",
        )?
        .query_row(params![tenant, id], |row| {
            Ok((
                row.get(0)?,
                [
                    row.get(1)?,
                    row.get(2)?,
                    row.get(3)?,
                    row.get(4)?,
                    row.get(5)?,
                    row.get(6)?,
                    row.get(7)?,
                    row.get(8)?,
                ],
            ))
        })
        .optional()?
    } else {
        None
    };
    let (mut status, mut profile) = match current {
        Some((s, p)) => (Some(s), p),
        None => (None, Default::default()),
    };
    // Whether there is a learner to grant to: known from the read above
    // (kept up to date below), or from the batch.
    let mut exists = if needs_read {
        status.is_some()
    } else {
        present.contains(id)
    };
    for effect in &change.effects {
        match effect {
            Effect::Upsert(p) => {
                let new = profile_values(p);
                if status.is_none() {
                    conn.prepare_cached(
                        "INSERT INTO learners (tenant, scim_id, user_name, external_id, status,
                            display_name, given_name, family_name, email, locale, title, department,
                            manager, updated)
                         VALUES (?1, ?2, ?3, ?4, 'active', ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
                    )?
                    .execute(params![
                        tenant,
                        id,
                        r.user_name,
                        r.external_id,
                        new[0],
                        new[1],
                        new[2],
                        new[3],
                        new[4],
                        new[5],
                        new[6],
                        new[7],
                        at
                    ])?;
                    status = Some("active".into());
                    // A later change of this call to the same learner
                    // finds it too.
                    exists = true;
                    present.insert(id.to_string());
                    action = Some("create");
                    profile = new.clone();
                    for (col, v) in PROFILE.iter().zip(&new) {
                        if v.is_some() {
                            changes.push((col.to_string(), None, json_text(v)));
                        }
                    }
                    continue;
                }
                let old = std::mem::replace(&mut profile, new.clone());
                let mut differs = false;
                for ((col, o), n) in PROFILE.iter().zip(&old).zip(&new) {
                    if o != n {
                        differs = true;
                        changes.push((col.to_string(), json_text(o), json_text(n)));
                    }
                }
                // The ids may change too (a userName rename).
                conn.prepare_cached(
                    "UPDATE learners SET user_name = ?3, external_id = ?4, display_name = ?5,
                        given_name = ?6, family_name = ?7, email = ?8, locale = ?9, title = ?10,
                        department = ?11, manager = ?12, updated = ?13
                     WHERE tenant = ?1 AND scim_id = ?2
                       AND (user_name IS DISTINCT FROM ?3 OR external_id IS DISTINCT FROM ?4 OR ?14)",
                )?
                .execute(params![
                    tenant,
                    id,
                    r.user_name,
                    r.external_id,
                    new[0],
                    new[1],
                    new[2],
                    new[3],
                    new[4],
                    new[5],
                    new[6],
                    new[7],
                    at,
                    differs
                ])?;
            }
            Effect::Suspend | Effect::Reactivate => {
                let (to, what) = if matches!(effect, Effect::Suspend) {
                    ("suspended", "suspend")
                } else {
                    ("active", "reactivate")
                };
                if status.as_deref().is_some_and(|s| s != to) {
                    set_status(conn, tenant, id, to, at)?;
                    changes.push((
                        "status".into(),
                        json_text(&status),
                        json_text(&Some(to.into())),
                    ));
                    status = Some(to.into());
                    action = Some(what);
                }
            }
            Effect::Remove => {
                if status.as_deref().is_some_and(|s| s != "removed") {
                    conn.prepare_cached(
                        "UPDATE learners SET status = 'removed', user_name = '', external_id = NULL,
                            display_name = NULL, given_name = NULL, family_name = NULL, email = NULL,
                            locale = NULL, title = NULL, department = NULL, manager = NULL, updated = ?3
                         WHERE tenant = ?1 AND scim_id = ?2",
                    )?
                    .execute(params![tenant, id, at])?;
                    conn.prepare_cached(
                        "DELETE FROM assignments WHERE tenant = ?1 AND scim_id = ?2",
                    )?
                    .execute(params![tenant, id])?;
                    changes.push((
                        "status".into(),
                        json_text(&status),
                        json_text(&Some("removed".into())),
                    ));
                    status = Some("removed".into());
                    profile = Default::default();
                    action = Some("remove");
                }
            }
            // No learner, nothing to grant to.
            e if is_grant(e) && !exists => {}
            Effect::SetRole(i) => grant(conn, tenant, id, GrantKind::Role, i, at, &mut changes)?,
            Effect::JoinTeam(i) => {
                if !teams.contains(&i.name) {
                    ensure_team(conn, tenant, &i.name)?;
                    teams.insert(i.name.clone());
                }
                grant(conn, tenant, id, GrantKind::Team, i, at, &mut changes)?
            }
            Effect::AssignPath(i) => grant(
                conn,
                tenant,
                id,
                GrantKind::LearningPath,
                i,
                at,
                &mut changes,
            )?,
            Effect::ClearRole(i) => revoke(conn, tenant, id, GrantKind::Role, i, &mut changes)?,
            Effect::LeaveTeam(i) => revoke(conn, tenant, id, GrantKind::Team, i, &mut changes)?,
            Effect::UnassignPath(i) => {
                revoke(conn, tenant, id, GrantKind::LearningPath, i, &mut changes)?
            }
        }
    }
    if changes.is_empty() {
        return Ok(None);
    }
    Ok(Some(EventRow {
        action: action.unwrap_or("update").into(),
        resource_type: crate::events::LEARNER.into(),
        resource_id: id.to_string(),
        resource_name: Some(r.user_name.clone()).filter(|n| !n.is_empty()),
        status: "success",
        reason: None,
        detail: None,
        changes,
    }))
}

fn set_status(
    conn: &Connection,
    tenant: i64,
    id: &str,
    to: &str,
    at: &str,
) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "UPDATE learners SET status = ?3, updated = ?4 WHERE tenant = ?1 AND scim_id = ?2",
    )?
    .execute(params![tenant, id, to, at])?;
    Ok(())
}

type Changes = Vec<(String, Option<String>, Option<String>)>;

fn item_json(i: &Item) -> Option<String> {
    #[derive(serde::Serialize)]
    struct ItemText<'a> {
        name: &'a str,
        source: &'a str,
    }
    serde_json::to_string(&ItemText {
        name: &i.name,
        source: &i.source,
    })
    .ok()
}

/// Adds a team to the catalogue unless it is there (teams are created on
/// demand).
pub fn ensure_team(conn: &Connection, tenant: i64, name: &str) -> crate::db::sql::Result<()> {
    conn.prepare_cached(
        "INSERT OR IGNORE INTO catalogue (tenant, kind, name) VALUES (?1, 'team', ?2)",
    )?
    .execute(params![tenant, name])?;
    Ok(())
}

/// Adds an assignment to a learner the caller knows exists, or restores a
/// withdrawn one; a no-op when held. One row from `VALUES`, so SQLite
/// keeps no statement journal for it (an `INSERT ... SELECT` needs one).
pub fn grant(
    conn: &Connection,
    tenant: i64,
    id: &str,
    kind: GrantKind,
    i: &Item,
    at: &str,
    changes: &mut Changes,
) -> crate::db::sql::Result<()> {
    let n = conn
        .prepare_cached(
            "INSERT INTO assignments (tenant, scim_id, kind, name, source, via, granted)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
             ON CONFLICT (tenant, scim_id, kind, name, source)
             DO UPDATE SET withdrawn = 0, granted = excluded.granted
               WHERE assignments.withdrawn = 1",
        )?
        .execute(params![
            tenant,
            id,
            kind_name(kind),
            i.name,
            i.source,
            via(&i.source),
            at
        ])?;
    if n > 0 {
        changes.push((kind_name(kind).into(), None, item_json(i)));
    }
    Ok(())
}

/// Removes one source's assignment (held or withdrawn); a no-op when
/// there is none.
pub fn revoke(
    conn: &Connection,
    tenant: i64,
    id: &str,
    kind: GrantKind,
    i: &Item,
    changes: &mut Changes,
) -> crate::db::sql::Result<()> {
    let n = conn
        .prepare_cached(
            "DELETE FROM assignments WHERE tenant = ?1 AND scim_id = ?2 AND kind = ?3 AND name = ?4
               AND source = ?5",
        )?
        .execute(params![tenant, id, kind_name(kind), i.name, i.source])?;
    if n > 0 {
        changes.push((kind_name(kind).into(), item_json(i), None));
    }
    Ok(())
}

/// Which names exist in the catalogue as items of `kind`.
pub fn known(
    conn: &Connection,
    tenant: i64,
    kind: GrantKind,
    names: &[String],
) -> crate::db::sql::Result<Vec<String>> {
    let mut stmt = conn
        .prepare_cached("SELECT 1 FROM catalogue WHERE tenant = ?1 AND kind = ?2 AND name = ?3")?;
    let mut out = Vec::new();
    for n in names {
        if stmt.exists(params![tenant, kind_name(kind), n])? {
            out.push(n.clone());
        }
    }
    Ok(out)
}

/// Learners holding a grant whose `via` is `via`, in id order.
pub fn holders(
    conn: &Connection,
    tenant: i64,
    via: &str,
    after: Option<&str>,
    limit: u32,
) -> crate::db::sql::Result<Vec<String>> {
    let mut stmt = conn.prepare_cached(
        "SELECT DISTINCT scim_id FROM assignments WHERE tenant = ?1 AND via = ?2 AND scim_id > ?3
         ORDER BY scim_id LIMIT ?4",
    )?;
    stmt.query_map(params![tenant, via, after.unwrap_or(""), limit], |r| {
        r.get(0)
    })?
    .collect()
}

/// Renames (or, with `to` `None`, revokes) the grants of `kind` from
/// `source` held under another name, for at most `limit` learners after
/// `after` in id order: the set form of a renamed group's team moving
/// learner by learner. Returns the learners changed, in id order, with the
/// event recording each one's change as `apply` would (the old item left,
/// the new one joined).
pub fn rename_grants(
    conn: &Connection,
    tenant: i64,
    kind: GrantKind,
    source: &str,
    to: Option<&str>,
    after: Option<&str>,
    limit: u32,
) -> crate::db::sql::Result<Vec<EventRow>> {
    let (via, kind) = (via(source), kind_name(kind));
    let after = after.unwrap_or("");
    // Rows in `assignments_by_via` order: the read and the write below walk
    // the same stretch of the index.
    let mut stmt = conn.prepare_cached(
        "SELECT a.scim_id, a.name, l.user_name FROM assignments a
           JOIN learners l ON l.tenant = a.tenant AND l.scim_id = a.scim_id
         WHERE a.tenant = ?1 AND a.via = ?2 AND a.scim_id > ?3 AND a.kind = ?4 AND a.source = ?5
           AND a.name IS DISTINCT FROM ?6
         ORDER BY a.scim_id LIMIT ?7",
    )?;
    let mut rows = stmt.query(params![tenant, via, after, kind, source, to, limit])?;
    let mut out: Vec<EventRow> = Vec::new();
    while let Some(r) = rows.next()? {
        let (id, name, user_name): (String, String, String) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let old = Item {
            name,
            source: source.to_string(),
        };
        if out.last().is_none_or(|e| e.resource_id != id) {
            out.push(EventRow {
                action: "update".into(),
                resource_type: crate::events::LEARNER.into(),
                resource_id: id,
                resource_name: Some(user_name).filter(|n| !n.is_empty()),
                status: "success",
                reason: None,
                detail: None,
                changes: Vec::new(),
            });
        }
        let event = out.last_mut().expect("pushed above");
        event.changes.push((kind.into(), item_json(&old), None));
    }
    drop(rows);
    let Some(last) = out.last().map(|e| e.resource_id.clone()) else {
        return Ok(out);
    };
    let range = params![tenant, via, after, last, kind, source, to];
    match to {
        Some(to) => {
            if kind == kind_name(GrantKind::Team) {
                ensure_team(conn, tenant, to)?;
            }
            // A learner already holding the new name from this source keeps
            // one row of it: the renamed one, as SQLite's `UPDATE OR REPLACE`
            // kept (written out, for PostgreSQL).
            conn.prepare_cached(
                "DELETE FROM assignments
                 WHERE tenant = ?1 AND kind = ?5 AND source = ?6 AND name = ?7
                   AND scim_id IN (SELECT scim_id FROM assignments
                     WHERE tenant = ?1 AND via = ?2 AND scim_id > ?3 AND scim_id <= ?4
                       AND kind = ?5 AND source = ?6 AND name <> ?7)",
            )?
            .execute(range)?;
            conn.prepare_cached(
                "UPDATE assignments SET name = ?7
                 WHERE tenant = ?1 AND via = ?2 AND scim_id > ?3 AND scim_id <= ?4 AND kind = ?5
                   AND source = ?6 AND name <> ?7",
            )?
            .execute(range)?;
            let new = item_json(&Item {
                name: to.to_string(),
                source: source.to_string(),
            });
            for e in &mut out {
                e.changes.push((kind.into(), None, new.clone()));
            }
        }
        None => {
            conn.prepare_cached(
                "DELETE FROM assignments
                 WHERE tenant = ?1 AND via = ?2 AND scim_id > ?3 AND scim_id <= ?4 AND kind = ?5
                   AND source = ?6 AND name IS DISTINCT FROM ?7",
            )?
            .execute(range)?;
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
