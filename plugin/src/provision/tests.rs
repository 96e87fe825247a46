//! Provisioning through the engine, natively: requests in, LMS state out.

use serde_json::json;

use super::host::{
    Drift, Effect, EventStatus, Grant, GrantKind, LearnerStatus, MANUAL, OnDelete, Task, Work,
};
use super::sync::INLINE_USERS;
use crate::mapper::group_source;
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
    // Under the default mapping, the holders of its grants.
    assert_eq!(f.lms.outbox[0].work, Work::Renamed(g.clone()));
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

/// A renamed group's team is renamed as a set: to the group's latest name,
/// for every learner of it, and nothing else a learner holds moves.
#[test]
fn a_renamed_groups_team_follows_its_latest_name_and_nothing_else() {
    let mut f = Fixture::new();
    let users: Vec<String> = (0..5)
        .map(|i| f.user(&format!("u{i}"), json!({})))
        .collect();
    let refs: Vec<&str> = users.iter().map(String::as_str).collect();
    let g = f.group("Old", &refs);
    let team = |name: &str, source: &str| Grant {
        kind: GrantKind::Team,
        name: name.into(),
        source: source.into(),
    };
    // u0 also holds the old name by hand; u1 had the team withdrawn by hand.
    f.lms
        .learners
        .get_mut(&users[0])
        .unwrap()
        .grants
        .insert(team("Old", MANUAL));
    f.lms.withdraw(&users[1], GrantKind::Team, "Old");
    let rename = |f: &mut Fixture, name: &str| {
        f.ok(
            "PATCH",
            &format!("/Groups/{g}"),
            patch(json!([{"op": "replace", "path": "displayName", "value": name}])),
        );
    };
    rename(&mut f, "Mid");
    // u4 leaves, then the group is renamed again, all before the drain.
    f.ok(
        "PATCH",
        &format!("/Groups/{g}"),
        patch(json!([{"op": "remove", "path": format!("members[value eq \"{}\"]", users[4])}])),
    );
    rename(&mut f, "New");
    assert_eq!(f.lms.outbox.len(), 2);
    drain_all(&mut f, 2);
    let source = group_source(&g);
    for u in [&users[0], &users[2], &users[3]] {
        assert!(
            f.lms.learners[u].grants.contains(&team("New", &source)),
            "{u}"
        );
    }
    assert!(
        f.lms.learners[&users[0]]
            .grants
            .contains(&team("Old", MANUAL))
    );
    let u1 = &f.lms.learners[&users[1]];
    assert!(
        u1.withdrawn.contains(&team("New", &source)),
        "stays withdrawn"
    );
    assert!(!u1.grants.iter().any(|g| g.kind == GrantKind::Team));
    assert!(f.lms.holds(&users[4], GrantKind::Team).is_empty());
    for u in &users {
        assert_eq!(f.lms.holds(u, GrantKind::Role), ["learner"], "{u}");
    }

    // Renamed and then deleted before the drain: the team goes.
    rename(&mut f, "Last");
    f.ok("DELETE", &format!("/Groups/{g}"), None);
    drain_all(&mut f, 2);
    for u in &users {
        let l = &f.lms.learners[u];
        assert!(
            !l.grants
                .iter()
                .chain(&l.withdrawn)
                .any(|x| x.source == source),
            "{u}"
        );
    }
    assert!(
        f.lms.learners[&users[0]]
            .grants
            .contains(&team("Old", MANUAL))
    );
}

/// The default mapping reads no attributes, so a re-mapping reads only a
/// user's ids and `active`: those must still reach the LMS as they are.
#[test]
fn a_remapping_under_the_default_mapping_still_reads_ids_and_status() {
    let mut f = Fixture::new();
    let ada = f.user("ada", json!({"externalId": "e-ada"}));
    let bob = f.user("bob", json!({"active": false}));
    // The LMS drifted from the identity provider: Ada lost her role and Bob
    // was reactivated by hand.
    f.lms.learners.get_mut(&ada).unwrap().grants.clear();
    f.lms.learners.get_mut(&bob).unwrap().status = LearnerStatus::Active;
    f.lms.applied.clear();
    f.lms.outbox.push(Task {
        work: Work::Users(vec![ada.clone(), bob.clone()]),
        cursor: None,
    });
    drain_all(&mut f, 10);
    assert_eq!(f.lms.holds(&ada, GrantKind::Role), ["learner"]);
    assert_eq!(status(&f, &bob), LearnerStatus::Suspended);
    let change = f
        .lms
        .applied
        .iter()
        .find(|c| c.learner.scim_id == ada)
        .unwrap();
    assert_eq!(change.learner.user_name, "ada");
    assert_eq!(change.learner.external_id.as_deref(), Some("e-ada"));
    let effects = f.lms.applied.iter().flat_map(|c| &c.effects);
    assert!(
        !effects.into_iter().any(|e| matches!(e, Effect::Upsert(_))),
        "profiles are not rewritten"
    );
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

// Rules installed in the LMS (`f.lms.mapping`), through the engine.

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

const SALES_RULES: &str = r#"
[[rule]]
name = "sales"
when = { attribute = "department", equals = "Sales" }
grant = { learning_paths = ["Sales Onboarding"], teams = ["Dept {department}"] }

[[rule]]
name = "ghost"
when = { attribute = "department", equals = "Sales" }
grant = { learning_paths = ["Ghost Path"] }
"#;

fn dept(name: &str) -> serde_json::Value {
    json!({ENTERPRISE: {"department": name}})
}

/// A fixture with `text` installed and the learning path `Sales Onboarding`
/// (not `Ghost Path`) in the catalogue.
fn with_rules(text: &str) -> Fixture {
    let mut f = Fixture::new();
    f.lms.mapping = Some(text.to_string());
    f.lms
        .catalogue
        .insert((GrantKind::LearningPath, "Sales Onboarding".into()));
    f
}

fn grants_of(f: &Fixture, id: &str) -> Vec<String> {
    f.lms.learners[id]
        .grants
        .iter()
        .map(|g| format!("{} {} <- {}", g.kind.as_str(), g.name, g.source))
        .collect()
}

fn events_for<'a>(f: &'a Fixture, id: &str, action: &str) -> Vec<&'a super::host::Event> {
    f.lms
        .events
        .iter()
        .filter(|e| e.resource_id == id && e.action == action)
        .collect()
}

fn retitle(f: &mut Fixture, id: &str, title: &str) {
    f.ok(
        "PATCH",
        &format!("/Users/{id}"),
        patch(json!([{"op": "replace", "path": "title", "value": title}])),
    );
}

#[test]
fn installed_rules_grant_by_department_and_skip_unknown_paths() {
    let mut f = with_rules(SALES_RULES);
    let sales = f.user("s", dept("Sales"));
    let ops = f.user("o", dept("Ops"));
    f.group("Everyone", &[&sales, &ops]);
    assert_eq!(
        grants_of(&f, &sales),
        [
            "role learner <- default:learner-role@active",
            "team Dept Sales <- rules:sales@attr:department",
            "learningPath Sales Onboarding <- rules:sales@attr:department",
        ],
        "no team for the group: groups_as_teams is off"
    );
    assert_eq!(
        grants_of(&f, &ops),
        ["role learner <- default:learner-role@active"]
    );
    let skips = events_for(&f, &sales, "skip");
    assert!(!skips.is_empty());
    assert!(skips.iter().all(|e| {
        e.reason.as_deref() == Some("unknown-learning-path")
            && e.status == EventStatus::Skipped
            && e.detail
                .as_deref()
                .unwrap()
                .contains("'Ghost Path' (from rules:ghost@attr:department)")
    }));
    assert!(events_for(&f, &ops, "skip").is_empty());

    // Moving to another department takes the path and team away.
    f.ok(
        "PATCH",
        &format!("/Users/{sales}"),
        patch(
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Ops"}]),
        ),
    );
    assert_eq!(
        grants_of(&f, &sales),
        ["role learner <- default:learner-role@active"]
    );
}

#[test]
fn rule_grants_through_a_group_follow_the_group() {
    let mut f = with_rules(
        r#"
[[rule]]
name = "sales group"
when = { group = "sales" }
grant = { teams = ["Sellers"] }

[[rule]]
name = "by external id"
when = { group_external_id = "ext-42" }
grant = { learning_paths = ["Sales Onboarding"] }
"#,
    );
    let u = f.user("u", json!({}));
    let g = f.ok(
        "POST",
        "/Groups",
        Some(json!({"displayName": "SALES", "externalId": "ext-42", "members": [{"value": u}]})),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        grants_of(&f, &u),
        [
            "role learner <- default:learner-role@active".to_string(),
            format!("team Sellers <- rules:sales group@group:{g}"),
            format!("learningPath Sales Onboarding <- rules:by external id@group:{g}"),
        ]
    );
    // Deleting the group re-maps its holders in the background.
    f.ok("DELETE", &format!("/Groups/{g}"), None);
    drain_all(&mut f, 10);
    assert_eq!(
        grants_of(&f, &u),
        ["role learner <- default:learner-role@active"]
    );
}

#[test]
fn drift_is_restored_or_reported_as_the_policy_says() {
    let mut f = with_rules(SALES_RULES);
    let u = f.user("u", dept("Sales"));
    let lp = "Sales Onboarding";
    f.lms.withdraw(&u, GrantKind::LearningPath, lp);
    assert!(
        !f.lms
            .holds(&u, GrantKind::LearningPath)
            .contains(&lp.to_string())
    );

    retitle(&mut f, &u, "Rep");
    assert_eq!(f.lms.holds(&u, GrantKind::LearningPath), [lp]);
    assert!(f.lms.learners[&u].withdrawn.is_empty());
    let drift = events_for(&f, &u, "drift");
    assert_eq!(drift.len(), 1);
    assert_eq!(drift[0].reason.as_deref(), Some("restored"));
    assert_eq!(drift[0].status, EventStatus::Success);
    assert!(
        drift[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("'Sales Onboarding'")
    );

    // Once restored, it is not drift any more.
    retitle(&mut f, &u, "Senior Rep");
    assert_eq!(events_for(&f, &u, "drift").len(), 1);

    f.lms.policy.drift = Drift::Report;
    f.lms.withdraw(&u, GrantKind::Team, "Dept Sales");
    retitle(&mut f, &u, "Lead");
    assert!(f.lms.holds(&u, GrantKind::Team).is_empty(), "not restored");
    let drift = events_for(&f, &u, "drift");
    assert_eq!(drift.len(), 2);
    assert_eq!(drift[1].reason.as_deref(), Some("drift-reported"));
    assert_eq!(drift[1].status, EventStatus::Skipped);
    assert_eq!(f.lms.learners[&u].withdrawn.len(), 1);

    // When the rules no longer want it, the withdrawal is forgotten.
    f.ok(
        "PATCH",
        &format!("/Users/{u}"),
        patch(
            json!([{"op": "replace", "path": format!("{ENTERPRISE}:department"), "value": "Ops"}]),
        ),
    );
    assert!(f.lms.learners[&u].withdrawn.is_empty());
    assert_eq!(events_for(&f, &u, "drift").len(), 2);
}

#[test]
fn a_manual_role_beside_a_different_mapped_role_is_reported_and_kept() {
    let mut f = with_rules(
        r#"
[[rule]]
name = "teachers"
when = { attribute = "title", glob = "*teacher*" }
grant = { role = "instructor" }
"#,
    );
    f.lms
        .catalogue
        .insert((GrantKind::Role, "instructor".into()));
    let u = f.user("u", json!({"title": "Teacher"}));
    let manual = |name: &str| Grant {
        kind: GrantKind::Role,
        name: name.into(),
        source: MANUAL.into(),
    };
    let grants = &mut f.lms.learners.get_mut(&u).unwrap().grants;
    grants.insert(manual("admin"));
    grants.insert(manual("instructor"));
    retitle(&mut f, &u, "Head Teacher");
    let mismatch = events_for(&f, &u, "mismatch");
    assert_eq!(mismatch.len(), 1, "only the role that differs");
    assert_eq!(mismatch[0].reason.as_deref(), Some("manual-role-differs"));
    assert!(
        mismatch[0].detail.as_deref().unwrap().contains(
            "'admin' by hand while mapping gives 'instructor' (from rules:teachers@attr:title)"
        ),
        "{:?}",
        mismatch[0].detail
    );
    let l = &f.lms.learners[&u];
    assert!(l.grants.contains(&manual("admin")), "manual roles are kept");
    assert_eq!(f.lms.holds(&u, GrantKind::Role), ["admin", "instructor"]);

    // The default mapping does not hold roles exclusively: no report.
    f.lms.mapping = None;
    retitle(&mut f, &u, "Teacher");
    assert_eq!(events_for(&f, &u, "mismatch").len(), 1);
}

#[test]
fn preview_reports_each_users_difference_and_changes_nothing() {
    use crate::mapping::Choice;
    let mut f = Fixture::new();
    f.lms
        .catalogue
        .insert((GrantKind::LearningPath, "Sales Onboarding".into()));
    f.lms
        .catalogue
        .insert((GrantKind::Role, "instructor".into()));
    let a = f.user("a", dept("Sales"));
    let b = f.user("b", dept("Ops"));
    let c = f.user("c", json!({"title": "Teacher"}));
    f.group("Sales", &[&a]);
    let before = f.lms.learners.clone();
    let (applied, events) = (f.lms.applied.len(), f.lms.events.len());

    let text = r#"
groups_as_teams = true

[[rule]]
name = "sales"
when = { attribute = "department", equals = "Sales" }
grant = { learning_paths = ["Sales Onboarding", "Ghost Path"] }

[[rule]]
name = "teachers"
when = { attribute = "title", equals = "Teacher" }
grant = { role = "instructor" }
"#;
    let page = crate::preview_mapping(
        &Choice::Document(text.into()),
        None,
        100,
        &mut f.store,
        &mut f.lms,
    )
    .unwrap();
    assert_eq!(page.scanned, 3);
    assert_eq!(page.next, None);
    type Items = Vec<(GrantKind, String)>;
    let summary: Vec<(&str, Items, Items, Items)> = page
        .users
        .iter()
        .map(|u| {
            (
                u.user_name.as_str(),
                u.gains.clone(),
                u.losses.clone(),
                u.skipped.clone(),
            )
        })
        .collect();
    let item = |k: GrantKind, n: &str| (k, n.to_string());
    assert_eq!(
        summary,
        [
            (
                "a",
                vec![item(GrantKind::LearningPath, "Sales Onboarding")],
                vec![],
                vec![item(GrantKind::LearningPath, "Ghost Path")]
            ),
            (
                "c",
                vec![item(GrantKind::Role, "instructor")],
                vec![item(GrantKind::Role, "learner")],
                vec![]
            ),
        ],
        "b keeps what it has: not listed"
    );
    assert!(page.users.iter().all(|u| u.failure.is_none()));
    assert!(page.users.iter().all(|u| u.scim_id == a || u.scim_id == c));

    // Without groups_as_teams, a's group team would go.
    let page = crate::preview_mapping(
        &Choice::Document(text.replace("groups_as_teams = true", "")),
        None,
        1,
        &mut f.store,
        &mut f.lms,
    )
    .unwrap();
    assert_eq!(page.scanned, 1);
    assert!(page.next.is_some());
    assert_eq!(page.users[0].losses, [item(GrantKind::Team, "Sales")]);

    // A candidate that does not parse is refused.
    let err = crate::preview_mapping(
        &Choice::Document("[[rule]]\nname = \"x\"\n".into()),
        None,
        100,
        &mut f.store,
        &mut f.lms,
    )
    .unwrap_err();
    assert_eq!(err.status, 400);

    assert_eq!(f.lms.learners, before);
    assert_eq!(f.lms.applied.len(), applied);
    assert_eq!(f.lms.events.len(), events);
    assert_eq!(f.lms.mapping, None);
    let _ = b;
}

#[test]
fn explain_shows_rules_desired_grants_and_effects() {
    use crate::mapping::Choice;
    let mut f = with_rules(SALES_RULES);
    let u = f.user("u", dept("Sales"));
    let before = f.lms.learners.clone();
    let x = crate::explain_mapping(&Choice::Installed, &u, &mut f.store, &mut f.lms).unwrap();
    assert_eq!(x["mapper"], "rules");
    assert_eq!(x["user"]["userName"], "u");
    assert_eq!(x["facts"]["attributes"]["department"], json!(["Sales"]));
    let rules = x["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 2);
    assert_eq!(rules[0]["rule"], "sales");
    assert_eq!(rules[0]["matched"], true);
    assert_eq!(rules[0]["via"], "attr:department");
    assert_eq!(rules[0]["condition"]["values"], json!(["Sales"]));
    assert!(
        x["desired"]
            .as_array()
            .unwrap()
            .contains(&json!({"kind": "learningPath", "name": "Sales Onboarding", "source": "rules:sales@attr:department"}))
    );
    // Everything but the unknown path is already held.
    assert_eq!(
        x["effects"],
        json!([{"effect": "grant", "kind": "learningPath", "name": "Ghost Path",
                "source": "rules:ghost@attr:department",
                "note": "not in the LMS catalogue: it would be skipped and recorded"}])
    );

    // A candidate: what would change.
    let candidate = "[[rule]]\nname = \"all\"\ngrant = { teams = [\"Everyone\"] }\n";
    let x = crate::explain_mapping(
        &Choice::Document(candidate.into()),
        &u,
        &mut f.store,
        &mut f.lms,
    )
    .unwrap();
    let mut effects: Vec<(&str, &str)> = x["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["effect"].as_str().unwrap(), e["name"].as_str().unwrap()))
        .collect();
    effects.sort();
    // The default role keeps its source: no effect for it.
    assert_eq!(
        effects,
        [
            ("grant", "Everyone"),
            ("revoke", "Dept Sales"),
            ("revoke", "Sales Onboarding"),
        ]
    );
    assert_eq!(f.lms.learners, before, "explain applies nothing");
}

#[test]
fn broken_installed_rules_fail_mapping_but_never_suspension() {
    let mut f = with_rules(SALES_RULES);
    let u = f.user("u", dept("Sales"));
    let held = f.lms.learners[&u].grants.clone();
    f.lms.mapping = Some("[[rule]]\nname = \"broken\"\n".into());

    retitle(&mut f, &u, "Rep");
    let failed = events_for(&f, &u, "map");
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].status, EventStatus::Failure);
    assert_eq!(failed[0].reason.as_deref(), Some("rules-invalid"));
    assert!(
        failed[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("missing field `grant`")
    );
    assert_eq!(f.lms.learners[&u].grants, held, "nothing is taken away");

    f.ok(
        "PATCH",
        &format!("/Users/{u}"),
        patch(json!([{"op": "replace", "path": "active", "value": false}])),
    );
    assert_eq!(status(&f, &u), LearnerStatus::Suspended);
    assert_eq!(events_for(&f, &u, "map").len(), 2);

    // Explain says why.
    let x = crate::explain_mapping(
        &crate::mapping::Choice::Installed,
        &u,
        &mut f.store,
        &mut f.lms,
    )
    .unwrap();
    assert_eq!(x["failure"]["reason"], "rules-invalid");
}

#[test]
fn a_rename_re_maps_every_member_only_when_rules_test_group_names() {
    let rename = |rules: &str| {
        let mut f = Fixture::new();
        f.lms.mapping = Some(rules.to_string());
        let u = f.user("u", json!({}));
        let g = f.group("Sales", &[&u]);
        f.ok(
            "PATCH",
            &format!("/Groups/{g}"),
            patch(json!([{"op": "replace", "path": "displayName", "value": "Sales EMEA"}])),
        );
        (f.lms.outbox[0].work.clone(), g)
    };
    let (work, g) = rename(
        "[[rule]]\nname = \"s\"\nwhen = { group = \"Sales\" }\ngrant.learning_paths = [\"P\"]\n",
    );
    assert_eq!(work, Work::Members(g));
    let (work, g) = rename("groups_as_teams = true\n");
    assert_eq!(work, Work::Renamed(g));
}

/// Entra ID's custom extension attributes: kept as sent, returned, patched
/// with Entra's paths, and testable by rules.
#[test]
fn custom_extension_attributes_are_kept_patched_and_mapped() {
    const EXT: &str = "urn:ietf:params:scim:schemas:extension:CustomExtensionName:2.0:User";
    let mut f = Fixture::new();
    f.lms
        .catalogue
        .insert((GrantKind::LearningPath, "Forklift Safety".into()));
    f.lms.mapping = Some(format!(
        "[[rule]]\nname = \"warehouse\"\nwhen = {{ attribute = \"{EXT}:site\", equals = \"Warehouse\" }}\ngrant.learning_paths = [\"Forklift Safety\"]\n"
    ));
    let id = f.user(
        "w@example.com",
        json!({"schemas": [EXT], EXT: {"site": "Office", "gone": null}}),
    );
    let got = f.ok("GET", &format!("/Users/{id}"), None);
    assert_eq!(got[EXT], json!({"site": "Office"}));
    assert!(
        got["schemas"].as_array().unwrap().contains(&json!(EXT)),
        "{got}"
    );
    assert!(f.lms.holds(&id, GrantKind::LearningPath).is_empty());

    // Entra's PATCH of one custom attribute.
    f.ok(
        "PATCH",
        &format!("/Users/{id}"),
        patch(json!([{"op": "Replace", "path": format!("{EXT}:site"), "value": "Warehouse"}])),
    );
    assert_eq!(
        f.lms.holds(&id, GrantKind::LearningPath),
        ["Forklift Safety"]
    );
    let got = f.ok("GET", &format!("/Users/{id}?attributes=userName"), None);
    assert!(got.get(EXT).is_none(), "named attributes only: {got}");

    // Removing it takes the learning path away again.
    f.ok(
        "PATCH",
        &format!("/Users/{id}"),
        patch(json!([{"op": "remove", "path": format!("{EXT}:site")}])),
    );
    let got = f.ok("GET", &format!("/Users/{id}"), None);
    assert!(got.get(EXT).is_none(), "{got}");
    assert!(!got["schemas"].as_array().unwrap().contains(&json!(EXT)));
    assert!(f.lms.holds(&id, GrantKind::LearningPath).is_empty());

    // A URN outside the RFC's extension naming is still refused as a path.
    let (status, _) = f.call(
        "PATCH",
        &format!("/Users/{id}"),
        patch(json!([{"op": "add", "path": "urn:example:unknown:attr", "value": "x"}])),
    );
    assert_eq!(status, 400);
}

#[test]
fn explain_finds_a_user_by_user_name_too() {
    use crate::mapping::Choice;
    let mut f = Fixture::new();
    let id = f.user("Ada.Lovelace@example.com", json!({}));
    let by_name = crate::explain_mapping(
        &Choice::Installed,
        "ada.lovelace@EXAMPLE.com",
        &mut f.store,
        &mut f.lms,
    )
    .unwrap();
    assert_eq!(by_name["user"]["id"], json!(id));
    let err =
        crate::explain_mapping(&Choice::Installed, "nobody", &mut f.store, &mut f.lms).unwrap_err();
    assert_eq!(err.status, 404);
}

#[test]
fn a_role_missing_from_the_catalogue_keeps_the_current_role_in_mapping_and_explain() {
    use crate::mapping::Choice;
    let mut f = Fixture::new();
    let id = f.user("ada", json!({"title": "Lead"}));
    assert_eq!(f.lms.holds(&id, GrantKind::Role), ["learner"]);
    let rules = "[[rule]]\nname = \"leads\"\nwhen = { attribute = \"title\", equals = \"Lead\" }\ngrant.role = \"team-lead\"\n";
    let x = crate::explain_mapping(
        &Choice::Document(rules.into()),
        &id,
        &mut f.store,
        &mut f.lms,
    )
    .unwrap();
    let effects = x["effects"].as_array().unwrap();
    assert_eq!(effects.len(), 1, "{x}");
    assert_eq!(effects[0]["effect"], "grant");
    assert!(
        effects[0]["note"]
            .as_str()
            .unwrap()
            .contains("current role kept")
    );

    f.lms.mapping = Some(rules.into());
    f.ok(
        "PATCH",
        &format!("/Users/{id}"),
        patch(json!([{"op": "replace", "path": "title", "value": "Lead"}])),
    );
    f.ok(
        "PATCH",
        &format!("/Users/{id}"),
        patch(json!([{"op": "replace", "path": "displayName", "value": "Ada"}])),
    );
    assert_eq!(f.lms.holds(&id, GrantKind::Role), ["learner"]);
    assert!(
        f.lms
            .events
            .iter()
            .any(|e| e.reason.as_deref() == Some("unknown-role"))
    );
}

mod plugins {
    use super::*;
    use crate::mapper::MapError;
    use crate::mapper::plugin::{Assigned, PluginInfo, UserFacts};
    use crate::mapping::Choice;

    fn info() -> PluginInfo {
        PluginInfo {
            sha256: "cd".repeat(32),
            version: 1,
        }
    }

    /// Teams from the user's title; a role the catalogue lacks for "Wizard".
    fn by_title(u: &UserFacts) -> Result<Vec<Assigned>, MapError> {
        let v: serde_json::Value = serde_json::from_str(&u.scim_json).unwrap();
        let title = v["title"].as_str().unwrap_or("none").to_string();
        let mut out = vec![
            Assigned {
                kind: GrantKind::Role,
                name: "learner".into(),
                reason: "active".into(),
            },
            Assigned {
                kind: GrantKind::Team,
                name: format!("Team {title}"),
                reason: "attr:title".into(),
            },
        ];
        if title == "Wizard" {
            out.push(Assigned {
                kind: GrantKind::Role,
                name: "wizard".into(),
                reason: "attr:title".into(),
            });
        }
        Ok(out)
    }

    fn traps(_: &UserFacts) -> Result<Vec<Assigned>, MapError> {
        Err(MapError {
            reason: "plugin-trap".into(),
            detail: "the plugin trapped: wasm `unreachable`".into(),
        })
    }

    #[test]
    fn an_installed_plugin_replaces_the_rules_and_records_its_reasons() {
        let mut f = with_rules("default_role = \"learner\"\n");
        f.lms.plugin = Some((info(), by_title));
        let u = f.user("p", json!({"title": "Eng"}));
        assert_eq!(f.lms.holds(&u, GrantKind::Team), ["Team Eng"]);
        assert!(
            f.lms.learners[&u]
                .grants
                .iter()
                .any(|g| g.source == "plugin:assign@attr:title")
        );
        retitle(&mut f, &u, "Ops");
        assert_eq!(f.lms.holds(&u, GrantKind::Team), ["Team Ops"]);
    }

    #[test]
    fn a_failing_plugin_leaves_the_learner_as_it_was_and_never_blocks_suspension() {
        let mut f = Fixture::new();
        f.lms.plugin = Some((info(), by_title));
        let u = f.user("p", json!({"title": "Eng"}));
        let before = f.lms.learners[&u].grants.clone();
        f.lms.plugin = Some((info(), traps));
        retitle(&mut f, &u, "Ops");
        assert_eq!(f.lms.learners[&u].grants, before);
        let failed = events_for(&f, &u, "map");
        assert_eq!(
            failed.last().unwrap().reason.as_deref(),
            Some("plugin-trap")
        );
        assert!(
            failed
                .last()
                .unwrap()
                .detail
                .as_deref()
                .unwrap()
                .contains("plugin cdcdcdcdcdcd")
        );
        f.ok(
            "PATCH",
            &format!("/Users/{u}"),
            patch(json!([{"op": "replace", "path": "active", "value": false}])),
        );
        assert_eq!(status(&f, &u), LearnerStatus::Suspended);
    }

    #[test]
    fn an_item_missing_from_the_catalogue_fails_the_whole_plugin_answer() {
        let mut f = Fixture::new();
        f.lms.plugin = Some((info(), by_title));
        let u = f.user("p", json!({"title": "Eng"}));
        retitle(&mut f, &u, "Wizard");
        // Neither the unknown role nor the new team: the state stays whole.
        assert_eq!(f.lms.holds(&u, GrantKind::Team), ["Team Eng"]);
        assert_eq!(f.lms.holds(&u, GrantKind::Role), ["learner"]);
        let failed = events_for(&f, &u, "map");
        assert_eq!(
            failed.last().unwrap().reason.as_deref(),
            Some("plugin-unknown-item")
        );
        // Preview says the same, and applies nothing.
        let page =
            crate::preview_mapping(&Choice::Plugin, None, 100, &mut f.store, &mut f.lms).unwrap();
        let p = page.users.iter().find(|p| p.scim_id == u).unwrap();
        assert!(
            p.failure
                .as_deref()
                .unwrap()
                .starts_with("plugin-unknown-item")
        );
        assert!(p.gains.is_empty());
    }

    #[test]
    fn previewing_a_plugin_without_one_is_a_clear_error() {
        let mut f = Fixture::new();
        let e = crate::preview_mapping(&Choice::Plugin, None, 100, &mut f.store, &mut f.lms)
            .unwrap_err();
        assert_eq!(e.status, 400);
    }
}

#[test]
fn re_mapping_everyone_walks_the_users_in_id_order() {
    let mut f = Fixture::new();
    let mut ids: Vec<String> = (0..7)
        .map(|i| f.user(&format!("u{i}"), json!({})))
        .collect();
    f.lms.outbox.clear();
    f.lms.outbox.push(Task {
        work: Work::Everyone,
        cursor: None,
    });
    let task = f.lms.outbox.remove(0);
    // The first step maps no one: it queues every user, in id order.
    let next = crate::drain(&task, 3, &mut f.store, &mut f.lms).unwrap();
    assert_eq!(next, None);
    let queued: Vec<String> = f
        .lms
        .outbox
        .iter()
        .flat_map(|t| match &t.work {
            Work::Users(users) => users.clone(),
            other => panic!("{other:?}"),
        })
        .collect();
    ids.sort();
    assert_eq!(queued, ids);
    // A task that was already under way goes on in creation order.
    f.lms.outbox.clear();
    let started = Task {
        work: Work::Everyone,
        cursor: Some("0".into()),
    };
    let next = crate::drain(&started, 3, &mut f.store, &mut f.lms).unwrap();
    assert!(next.is_some());
    assert!(f.lms.outbox.is_empty());
}
