//! Provisioning through the engine, natively: requests in, LMS state out.

use serde_json::json;

use super::host::{Effect, Grant, GrantKind, LearnerStatus, MANUAL, OnDelete, Work};
use super::sync::INLINE_USERS;
use crate::testkit::Fixture;

const PATCH: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

fn patch(ops: serde_json::Value) -> Option<serde_json::Value> {
    Some(json!({"schemas": [PATCH], "Operations": ops}))
}

/// Runs every queued background task to completion, in batches of `batch`.
fn drain_all(f: &mut Fixture, batch: u32) {
    while !f.lms.outbox.is_empty() {
        let mut task = f.lms.outbox.remove(0);
        while let Some(cursor) = crate::drain(&task, batch, &mut f.store, &mut f.lms).unwrap() {
            task.cursor = Some(cursor);
        }
    }
}

fn status(f: &Fixture, id: &str) -> LearnerStatus {
    f.lms.learners[id].status
}

#[test]
fn a_new_user_is_an_active_learner_with_its_profile() {
    let mut f = Fixture::new();
    let id = f.user(
        "ada@example.com",
        json!({"name": {"givenName": "Ada", "familyName": "L"}, "title": "Eng",
               "emails": [{"value": "x@example.com"}, {"value": "ada@example.com", "primary": true}],
               "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": "R&D"}}),
    );
    let l = &f.lms.learners[&id];
    assert_eq!(l.status, LearnerStatus::Active);
    assert_eq!(l.profile.email.as_deref(), Some("ada@example.com"));
    assert_eq!(l.profile.department.as_deref(), Some("R&D"));
    assert_eq!(f.lms.holds(&id, GrantKind::Role), ["learner"]);
    let create = f.lms.events.iter().find(|e| e.resource_id == id).unwrap();
    assert_eq!(create.action, "create");
    assert!(create.changes.iter().any(|c| c.name == "title"));
}

#[test]
fn groups_become_teams_with_their_source_and_moves_follow() {
    let mut f = Fixture::new();
    let u = f.user("u", json!({}));
    let sales = f.group("Sales", &[&u]);
    let team = f.lms.learners[&u]
        .grants
        .iter()
        .find(|g| g.kind == GrantKind::Team)
        .cloned()
        .unwrap();
    assert_eq!(team.name, "Sales");
    assert_eq!(
        team.source,
        format!("default:groups-as-teams@group:{sales}")
    );

    let ops = f.group("Ops", &[]);
    f.ok(
        "PATCH",
        &format!("/Groups/{ops}"),
        patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])),
    );
    f.ok(
        "PATCH",
        &format!("/Groups/{sales}"),
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{u}\"]")}])),
    );
    assert_eq!(f.lms.holds(&u, GrantKind::Team), ["Ops"]);
}

#[test]
fn deactivation_suspends_first_and_reactivation_restores() {
    let mut f = Fixture::new();
    let u = f.user("u", json!({"active": true}));
    f.group("Sales", &[&u]);
    // Entra's dialect: a string boolean in a path-less value.
    f.ok(
        "PATCH",
        &format!("/Users/{u}"),
        patch(json!([{"op": "Replace", "value": {"active": "False"}}])),
    );
    assert_eq!(status(&f, &u), LearnerStatus::Suspended);
    assert!(f.lms.learners[&u].grants.is_empty());
    // The suspension was applied before (and apart from) any mapping.
    let last_two = &f.lms.applied[f.lms.applied.len() - 2..];
    assert!(last_two[0].effects.contains(&Effect::Suspend));
    assert!(
        !last_two[0]
            .effects
            .iter()
            .any(|e| matches!(e, Effect::Grant(_) | Effect::Revoke(_)))
    );
    assert!(
        last_two[1]
            .effects
            .iter()
            .all(|e| matches!(e, Effect::Revoke(_)))
    );

    f.ok(
        "PATCH",
        &format!("/Users/{u}"),
        patch(json!([{"op": "replace", "path": "active", "value": true}])),
    );
    assert_eq!(status(&f, &u), LearnerStatus::Active);
    assert_eq!(f.lms.holds(&u, GrantKind::Team), ["Sales"]);
    assert_eq!(f.lms.holds(&u, GrantKind::Role), ["learner"]);
    let actions: Vec<&str> = f
        .lms
        .events
        .iter()
        .filter(|e| e.resource_type == "User")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(actions, ["create", "disable", "enable"]);
}

#[test]
fn a_missing_catalogue_role_is_skipped_and_never_blocks_suspension() {
    let mut f = Fixture::new();
    f.lms.catalogue.clear();
    let u = f.user("u", json!({}));
    assert!(f.lms.holds(&u, GrantKind::Role).is_empty());
    let skip = f.lms.events.iter().find(|e| e.action == "skip").unwrap();
    assert_eq!(skip.reason.as_deref(), Some("unknown-role"));
    f.ok(
        "PUT",
        &format!("/Users/{u}"),
        Some(json!({"userName": "u", "active": false})),
    );
    assert_eq!(status(&f, &u), LearnerStatus::Suspended);
}

#[test]
fn delete_suspends_by_default_and_removes_under_the_other_policy() {
    let mut f = Fixture::new();
    let u = f.user("u", json!({"name": {"givenName": "U"}}));
    f.ok("DELETE", &format!("/Users/{u}"), None);
    let l = &f.lms.learners[&u];
    assert_eq!(l.status, LearnerStatus::Suspended);
    assert!(l.grants.is_empty());
    assert_eq!(
        l.profile.given_name.as_deref(),
        Some("U"),
        "records are kept"
    );

    f.lms.policy.on_delete = OnDelete::Remove;
    let v = f.user("v", json!({"name": {"givenName": "V"}}));
    f.ok("DELETE", &format!("/Users/{v}"), None);
    let l = &f.lms.learners[&v];
    assert_eq!(l.status, LearnerStatus::Removed);
    assert_eq!(l.profile.given_name, None, "anonymised");
}

#[test]
fn a_group_rename_remaps_its_members_through_the_outbox() {
    let mut f = Fixture::new();
    let users: Vec<String> = (0..7)
        .map(|i| f.user(&format!("u{i}"), json!({})))
        .collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let g = f.group("Old", &refs);
    f.ok(
        "PATCH",
        &format!("/Groups/{g}"),
        patch(json!([{"op": "replace", "path": "displayName", "value": "New"}])),
    );
    // Not in the request: queued.
    assert_eq!(f.lms.holds(&users[0], GrantKind::Team), ["Old"]);
    assert_eq!(f.lms.outbox.len(), 1);
    assert_eq!(f.lms.outbox[0].work, Work::Source(format!("group:{g}")));
    drain_all(&mut f, 3);
    for u in &users {
        assert_eq!(f.lms.holds(u, GrantKind::Team), ["New"], "{u}");
    }

    f.ok("DELETE", &format!("/Groups/{g}"), None);
    drain_all(&mut f, 2);
    for u in &users {
        assert!(f.lms.holds(u, GrantKind::Team).is_empty(), "{u}");
        assert_eq!(f.lms.holds(u, GrantKind::Role), ["learner"]);
    }
}

#[test]
fn manual_grants_survive_remapping_and_suspension() {
    let mut f = Fixture::new();
    let u = f.user("u", json!({}));
    let manual = Grant {
        kind: GrantKind::Team,
        name: "Mentors".into(),
        source: MANUAL.into(),
    };
    f.lms
        .learners
        .get_mut(&u)
        .unwrap()
        .grants
        .insert(manual.clone());
    let g = f.group("Sales", &[&u]);
    f.ok(
        "PATCH",
        &format!("/Groups/{g}"),
        patch(json!([{"op": "remove", "path": "members"}])),
    );
    f.ok(
        "PATCH",
        &format!("/Users/{u}"),
        patch(json!([{"op": "replace", "path": "active", "value": false}])),
    );
    assert!(f.lms.learners[&u].grants.contains(&manual));
    assert_eq!(f.lms.learners[&u].grants.len(), 1);
}

#[test]
fn a_failed_bulk_operation_provisions_nothing() {
    let mut f = Fixture::new();
    let body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": [
            {"method": "POST", "path": "/Users", "bulkId": "a", "data": {"userName": "ok"}},
            {"method": "POST", "path": "/Users", "bulkId": "b", "data": {"userName": "ok"}},
        ]
    });
    f.ok("POST", "/Bulk", Some(body));
    assert_eq!(f.lms.learners.len(), 1);
}

#[test]
fn large_membership_changes_go_to_the_outbox() {
    let mut f = Fixture::new();
    let n = INLINE_USERS + 5;
    let users: Vec<String> = (0..n)
        .map(|i| f.user(&format!("u{i}"), json!({})))
        .collect();
    let g = f.group("Big", &[]);
    let members: Vec<serde_json::Value> = users.iter().map(|u| json!({"value": u})).collect();
    f.ok(
        "PATCH",
        &format!("/Groups/{g}"),
        patch(json!([{"op": "add", "path": "members", "value": members}])),
    );
    assert!(f.lms.holds(&users[0], GrantKind::Team).is_empty());
    assert!(!f.lms.outbox.is_empty());
    drain_all(&mut f, 250);
    assert!(
        users
            .iter()
            .all(|u| f.lms.holds(u, GrantKind::Team) == ["Big"])
    );
}

#[test]
fn unchanged_state_applies_nothing() {
    let mut f = Fixture::new();
    let u = f.user("u", json!({}));
    let g = f.group("Sales", &[&u]);
    let before = f.lms.applied.len();
    // Adding an existing member changes no membership and no grant.
    f.ok(
        "PATCH",
        &format!("/Groups/{g}"),
        patch(json!([{"op": "add", "path": "members", "value": [{"value": u}]}])),
    );
    assert_eq!(f.lms.applied.len(), before);
}
