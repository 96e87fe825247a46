//! What an administrator does to the reference LMS by hand: read a learner
//! with the sources of everything it holds, and grant or revoke items with
//! the source `manual`, which mapping never removes.

use crate::db::sql::Connection;
use serde_json::{Value, json};

use super::{Learner, ensure_team, grant, kind_name, learner, revoke, status_name};
use crate::bindings::lms::scim::lms::{GrantKind, Item};
use crate::events::{self, EventRow, Stamp};

/// The source of grants made by hand.
pub const MANUAL: &str = "manual";

/// A learner as the admin API shows it.
pub fn learner_json(l: &Learner) -> Value {
    let items = |kind: GrantKind| {
        let mut out: Vec<(String, Vec<String>)> = Vec::new();
        for (k, name, source) in &l.grants {
            if *k != kind {
                continue;
            }
            match out.iter_mut().find(|(n, _)| n == name) {
                Some((_, sources)) => sources.push(source.clone()),
                None => out.push((name.clone(), vec![source.clone()])),
            }
        }
        out.into_iter()
            .map(|(name, sources)| json!({"name": name, "sources": sources}))
            .collect::<Vec<_>>()
    };
    json!({
        "id": l.scim_id,
        "userName": l.user_name,
        "status": status_name(l.status),
        "roles": items(GrantKind::Role),
        "teams": items(GrantKind::Team),
        "learningPaths": items(GrantKind::LearningPath),
        "withdrawn": l.withdrawn.iter().map(|(k, name, source)| {
            json!({"kind": kind_name(*k), "name": name, "source": source})
        }).collect::<Vec<_>>(),
    })
}

/// Why a manual change was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("no learner with SCIM id '{0}' in this tenant")]
    NoLearner(String),
    #[error("the {0} '{1}' is not in the LMS catalogue")]
    NotInCatalogue(&'static str, String),
    #[error("the learner does not hold the {0} '{1}'")]
    NotHeld(&'static str, String),
    #[error("a name is required: send {{\"name\": \"...\"}}")]
    NoName,
    #[error(transparent)]
    Db(#[from] crate::db::sql::Error),
}

/// Grants an item by hand; answers the learner afterwards.
pub fn grant_manual(
    conn: &Connection,
    tenant: i64,
    id: &str,
    kind: GrantKind,
    name: &str,
    stamp: &Stamp,
) -> Result<Value, AdminError> {
    let name = name.trim();
    if name.is_empty() {
        return Err(AdminError::NoName);
    }
    let l = learner(conn, tenant, id)?.ok_or_else(|| AdminError::NoLearner(id.into()))?;
    if kind != GrantKind::Team && super::known(conn, tenant, kind, &[name.to_string()])?.is_empty()
    {
        return Err(AdminError::NotInCatalogue(kind_name(kind), name.into()));
    }
    let mut changes = Vec::new();
    let item = Item {
        name: name.into(),
        source: MANUAL.into(),
    };
    if kind == GrantKind::Team {
        ensure_team(conn, tenant, name)?;
    }
    grant(
        conn,
        tenant,
        id,
        kind,
        &item,
        &crate::events::now(),
        &mut changes,
    )?;
    record(conn, tenant, &l, "grant", changes, stamp)?;
    Ok(learner_json(
        &learner(conn, tenant, id)?.expect("read above"),
    ))
}

/// Takes an item away by hand, as an admin does in the LMS's own screens.
/// When the admin granted it by hand, that manual grant goes (undoing one's
/// own grant leaves mapping alone). Otherwise the grants from mapping are
/// withdrawn, which mapping notices the next time it maps the learner
/// (drift) and restores or reports as the tenant's drift policy says.
pub fn revoke_by_hand(
    conn: &Connection,
    tenant: i64,
    id: &str,
    kind: GrantKind,
    name: &str,
    stamp: &Stamp,
) -> Result<(), AdminError> {
    let l = learner(conn, tenant, id)?.ok_or_else(|| AdminError::NoLearner(id.into()))?;
    let mut changes = Vec::new();
    let held: Vec<&(GrantKind, String, String)> = l
        .grants
        .iter()
        .filter(|(k, n, _)| *k == kind && n == name)
        .collect();
    let manual = held.iter().any(|(_, _, s)| s == MANUAL);
    for (_, n, source) in held {
        if manual && source != MANUAL {
            continue;
        }
        let item = Item {
            name: n.clone(),
            source: source.clone(),
        };
        if source == MANUAL {
            revoke(conn, tenant, id, kind, &item, &mut changes)?;
        } else {
            conn.prepare_cached(
                "UPDATE assignments SET withdrawn = 1
                 WHERE tenant = ?1 AND scim_id = ?2 AND kind = ?3 AND name = ?4 AND source = ?5",
            )?
            .execute(crate::params![tenant, id, kind_name(kind), n, source])?;
            changes.push((
                kind_name(kind).into(),
                Some(json!({"name": n, "source": source}).to_string()),
                None,
            ));
        }
    }
    if changes.is_empty() {
        return Err(AdminError::NotHeld(kind_name(kind), name.into()));
    }
    record(conn, tenant, &l, "revoke", changes, stamp)?;
    Ok(())
}

fn record(
    conn: &Connection,
    tenant: i64,
    l: &Learner,
    action: &str,
    changes: Vec<(String, Option<String>, Option<String>)>,
    stamp: &Stamp,
) -> crate::db::sql::Result<()> {
    if changes.is_empty() {
        return Ok(());
    }
    events::insert(
        conn,
        tenant,
        stamp,
        &[EventRow {
            action: action.into(),
            resource_type: crate::events::LEARNER.into(),
            resource_id: l.scim_id.clone(),
            resource_name: Some(l.user_name.clone()),
            status: "success",
            reason: None,
            detail: Some("by an administrator".into()),
            changes,
        }],
    )
}
