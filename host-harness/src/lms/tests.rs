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
