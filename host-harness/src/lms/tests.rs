use super::*;
use crate::bindings::lms::scim::lms::LearnerRef;

fn who(id: &str) -> LearnerRef {
    LearnerRef {
        scim_id: id.into(),
        user_name: format!("{id}@example.com"),
        external_id: None,
    }
}

fn named() -> Profile {
    Profile {
        display_name: Some("A learner".into()),
        given_name: None,
        family_name: None,
        email: None,
        locale: None,
        title: None,
        department: None,
        manager: None,
    }
}

fn team(name: &str) -> Item {
    Item {
        name: name.into(),
        source: "default@group:g1".into(),
    }
}

fn apply_all(conn: &Connection, tenant: i64, changes: &[Change]) -> Vec<Option<EventRow>> {
    let mut batch = Batch::new(conn, tenant, changes).unwrap();
    changes
        .iter()
        .map(|c| apply(conn, tenant, c, &mut batch).unwrap())
        .collect()
}

fn teams(conn: &Connection, tenant: i64, id: &str) -> Vec<String> {
    learner(conn, tenant, id)
        .unwrap()
        .map(|l| l.grants.into_iter().map(|(_, name, _)| name).collect())
        .unwrap_or_default()
}

/// A re-mapping's changes grant without reading the learner: the batch
/// knows which learners exist, a learner created earlier in the same call
/// counts, and no assignment is made for a learner that does not exist.
#[test]
fn grants_reach_only_learners_that_exist() {
    let (_dir, pool) = crate::db::scratch();
    let conn = pool.get().unwrap();
    crate::db::add_tenant(&conn, "t").unwrap();
    let tenant = crate::db::tenant_id(&conn, "t").unwrap();
    let created = apply_all(
        &conn,
        tenant,
        &[Change {
            learner: who("u1"),
            effects: vec![Effect::Upsert(named())],
        }],
    );
    assert_eq!(created[0].as_ref().unwrap().action, "create");

    let events = apply_all(
        &conn,
        tenant,
        &[
            // Exists: in the batch's read.
            Change {
                learner: who("u1"),
                effects: vec![
                    Effect::LeaveTeam(team("Old")),
                    Effect::JoinTeam(team("New")),
                ],
            },
            // Never provisioned: nothing to grant to.
            Change {
                learner: who("ghost"),
                effects: vec![Effect::JoinTeam(team("New"))],
            },
            // Created and granted by the same change.
            Change {
                learner: who("u2"),
                effects: vec![Effect::Upsert(named()), Effect::JoinTeam(team("New"))],
            },
        ],
    );
    assert_eq!(teams(&conn, tenant, "u1"), ["New"]);
    assert!(learner(&conn, tenant, "ghost").unwrap().is_none());
    let orphans: i64 = conn
        .query_row(
            "SELECT count(*) FROM assignments WHERE scim_id = 'ghost'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(orphans, 0);
    assert!(events[1].is_none(), "nothing happened to the ghost");
    assert_eq!(teams(&conn, tenant, "u2"), ["New"]);

    // Applying the same batch again changes nothing (idempotent).
    let again = apply_all(
        &conn,
        tenant,
        &[Change {
            learner: who("u1"),
            effects: vec![Effect::JoinTeam(team("New"))],
        }],
    );
    assert!(again[0].is_none());
}

/// A renamed group's team moves as a set: only that source's grants, in
/// batches that resume after the last learner, in one tenant, with each
/// learner's change on record; `None` revokes them.
#[test]
fn rename_grants_moves_one_sources_grants_in_batches() {
    let (_dir, pool) = crate::db::scratch();
    let conn = pool.get().unwrap();
    for t in ["t", "other"] {
        crate::db::add_tenant(&conn, t).unwrap();
    }
    let tenant = crate::db::tenant_id(&conn, "t").unwrap();
    let other = crate::db::tenant_id(&conn, "other").unwrap();
    let source = team("Old").source;
    let path = Item {
        name: "Onboarding".into(),
        source: "rules:onboarding@group:g1".into(),
    };
    let manual = Item {
        name: "Old".into(),
        source: "manual".into(),
    };
    let joined = |id: &str, extra: Vec<Effect>| Change {
        learner: who(id),
        effects: [
            vec![Effect::Upsert(named()), Effect::JoinTeam(team("Old"))],
            extra,
        ]
        .concat(),
    };
    apply_all(
        &conn,
        tenant,
        &[
            joined("u1", vec![]),
            joined("u2", vec![Effect::JoinTeam(manual.clone())]),
            joined("u3", vec![Effect::AssignPath(path.clone())]),
            joined("u4", vec![]),
        ],
    );
    apply_all(&conn, other, &[joined("u1", vec![])]);
    let grants = |t: i64, id: &str| -> Vec<(String, String)> {
        learner(&conn, t, id)
            .unwrap()
            .unwrap()
            .grants
            .into_iter()
            .map(|(_, name, source)| (name, source))
            .collect()
    };
    let rename = |to: Option<&str>, after: Option<&str>| -> Vec<String> {
        rename_grants(&conn, tenant, GrantKind::Team, &source, to, after, 2)
            .unwrap()
            .into_iter()
            .map(|e| e.resource_id)
            .collect()
    };

    assert_eq!(rename(Some("New"), None), ["u1", "u2"]);
    assert_eq!(rename(Some("New"), Some("u2")), ["u3", "u4"]);
    assert!(rename(Some("New"), Some("u4")).is_empty());
    assert!(rename(Some("New"), None).is_empty(), "nothing left to move");
    let new = (String::from("New"), source.clone());
    assert_eq!(grants(tenant, "u1"), std::slice::from_ref(&new));
    assert_eq!(
        grants(tenant, "u2"),
        [new.clone(), ("Old".into(), "manual".into())]
    );
    assert!(grants(tenant, "u3").contains(&(path.name.clone(), path.source.clone())));
    assert_eq!(grants(other, "u1"), [("Old".into(), source.clone())]);
    assert!(
        known(&conn, tenant, GrantKind::Team, &["New".into()])
            .unwrap()
            .contains(&"New".to_string())
    );

    // What the sync log gets: the old item left, the new one joined.
    let events = rename_grants(
        &conn,
        tenant,
        GrantKind::Team,
        &source,
        Some("Newer"),
        None,
        10,
    )
    .unwrap();
    assert_eq!(events.len(), 4);
    let e = &events[0];
    assert_eq!(
        (e.action.as_str(), e.resource_name.as_deref()),
        ("update", Some("u1@example.com"))
    );
    assert_eq!(
        e.changes,
        [
            ("team".into(), item_json(&team("New")), None),
            ("team".into(), None, item_json(&team("Newer"))),
        ]
    );

    // `None` revokes them; the manual grant and the rule's path stay.
    assert_eq!(rename(None, None), ["u1", "u2"]);
    assert_eq!(rename(None, Some("u2")), ["u3", "u4"]);
    assert_eq!(grants(tenant, "u2"), [("Old".into(), "manual".into())]);
    assert_eq!(grants(tenant, "u3"), [(path.name, path.source)]);
}
