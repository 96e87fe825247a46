//! The `lms` contract (see `wit/lms.wit`), with what `outbox` and
//! `sync-log` take in: learners and their effects, the catalogue, the
//! policy, holders and set renames. A fresh LMS is one tenant's, new: no
//! learners, the role `learner` in its catalogue, the default policy and
//! no mapping installed.
//!
//! `enqueue` and `append` return nothing, so [`Observed`] says what an
//! implementation keeps of them; those checks need it.

use crate::provision::host::AttributeChange;
use crate::provision::host::{
    Change, Effect, Event, EventStatus, Grant, GrantKind, LearnerRef, LearnerStatus, LmsHost,
    Policy, Profile, Task, Work,
};

/// What an implementation kept of the `outbox` and `sync-log` calls made so
/// far, in call order.
pub trait Observed: LmsHost {
    fn queued(&mut self) -> Vec<Task>;
    fn logged(&mut self) -> Vec<Event>;
}

/// A check of `lms` proper: takes a fresh LMS.
pub type Check = fn(&mut dyn LmsHost);

/// A check of what `outbox` and `sync-log` keep.
pub type ObservedCheck = fn(&mut dyn Observed);

/// Every check of `lms` proper, by name.
pub const CHECKS: &[(&str, Check)] = &[
    ("a_fresh_lms_has_defaults", a_fresh_lms_has_defaults),
    ("effects_apply_in_order", effects_apply_in_order),
    ("effects_are_idempotent", effects_are_idempotent),
    (
        "grants_reach_only_learners_that_exist",
        grants_reach_only_learners_that_exist,
    ),
    (
        "holders_page_in_id_order_by_via",
        holders_page_in_id_order_by_via,
    ),
    (
        "renamed_grants_follow_their_new_name",
        renamed_grants_follow_their_new_name,
    ),
];

/// Runs every check, each on a fresh LMS from `fresh`.
pub fn run_all<L: LmsHost>(mut fresh: impl FnMut() -> L) {
    for (name, check) in CHECKS {
        let mut lms = fresh();
        run(name, || check(&mut lms));
    }
}

/// Runs the `outbox` and `sync-log` checks, each on a fresh LMS.
pub fn run_observed<L: Observed>(mut fresh: impl FnMut() -> L) {
    let checks: [(&str, ObservedCheck); 2] = [
        ("tasks_are_queued_as_given", tasks_are_queued_as_given),
        ("events_are_logged_as_given", events_are_logged_as_given),
    ];
    for (name, check) in checks {
        let mut lms = fresh();
        run(name, || check(&mut lms));
    }
}

fn run(name: &str, f: impl FnOnce()) {
    if let Err(e) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
        let msg = e
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        panic!("lms contract '{name}' failed: {msg}");
    }
}

fn who(id: &str) -> LearnerRef {
    LearnerRef {
        scim_id: id.into(),
        user_name: format!("{id}@example.com"),
        external_id: Some(format!("ext-{id}")),
    }
}

fn profile(name: &str) -> Profile {
    Profile {
        display_name: Some(name.into()),
        email: Some(format!("{name}@example.com")),
        department: Some("R&D".into()),
        ..Profile::default()
    }
}

fn grant(kind: GrantKind, name: &str, source: &str) -> Grant {
    Grant {
        kind,
        name: name.into(),
        source: source.into(),
    }
}

fn change(id: &str, effects: Vec<Effect>) -> Change {
    Change {
        learner: who(id),
        effects,
    }
}

/// A learner's status and sorted grants, or `None`.
fn state(lms: &mut dyn LmsHost, id: &str) -> Option<(LearnerStatus, Vec<Grant>)> {
    let mut states = lms.learners(&[id.to_string()]).expect("learners");
    assert!(states.len() <= 1, "one state per learner: {states:?}");
    states.pop().map(|s| {
        assert_eq!(s.scim_id, id);
        let mut grants = s.grants;
        grants.sort();
        (s.status, grants)
    })
}

pub fn a_fresh_lms_has_defaults(lms: &mut dyn LmsHost) {
    assert_eq!(lms.policy().expect("policy"), Policy::default());
    assert_eq!(lms.mapping().expect("mapping"), None);
    assert!(
        lms.learners(&["nobody".into()])
            .expect("learners")
            .is_empty()
    );
    assert_eq!(
        lms.known(GrantKind::Role, &["admin".into(), "learner".into()])
            .expect("known"),
        ["learner"]
    );
    assert!(
        lms.known(GrantKind::LearningPath, &["learner".into()])
            .expect("known")
            .is_empty()
    );
    assert!(
        lms.holders("group:g", None, 10)
            .expect("holders")
            .is_empty()
    );
}

pub fn effects_apply_in_order(lms: &mut dyn LmsHost) {
    let role = grant(GrantKind::Role, "learner", "default");
    let team = grant(GrantKind::Team, "Sales", "default@group:g1");
    let path = grant(
        GrantKind::LearningPath,
        "Onboarding",
        "rules:r@attr:department",
    );
    lms.apply(vec![change(
        "u1",
        vec![
            Effect::Upsert(profile("Ada")),
            Effect::Grant(role.clone()),
            Effect::Grant(team.clone()),
            Effect::Grant(path.clone()),
        ],
    )])
    .expect("apply");
    let mut want = vec![role.clone(), team.clone(), path.clone()];
    want.sort();
    assert_eq!(state(lms, "u1"), Some((LearnerStatus::Active, want)));
    lms.apply(vec![
        change("u1", vec![Effect::Suspend, Effect::Revoke(team.clone())]),
        change("u2", vec![Effect::Upsert(profile("Bob"))]),
    ])
    .expect("apply");
    let mut want = vec![role.clone(), path.clone()];
    want.sort();
    assert_eq!(
        state(lms, "u1"),
        Some((LearnerStatus::Suspended, want.clone()))
    );
    assert_eq!(state(lms, "u2"), Some((LearnerStatus::Active, vec![])));
    lms.apply(vec![change("u1", vec![Effect::Reactivate])])
        .expect("apply");
    assert_eq!(state(lms, "u1"), Some((LearnerStatus::Active, want)));
    // An upsert of an existing learner keeps its status and grants.
    lms.apply(vec![change("u1", vec![Effect::Upsert(profile("Ada L"))])])
        .expect("apply");
    assert_eq!(state(lms, "u1").map(|s| s.1.len()), Some(2));
    lms.apply(vec![change("u1", vec![Effect::Remove])])
        .expect("apply");
    assert_eq!(state(lms, "u1"), Some((LearnerStatus::Removed, vec![])));
    let both = lms
        .learners(&["u2".into(), "ghost".into(), "u1".into()])
        .expect("learners");
    let mut ids: Vec<String> = both.into_iter().map(|s| s.scim_id).collect();
    ids.sort();
    assert_eq!(ids, ["u1", "u2"], "unknown ids are skipped");
}

pub fn effects_are_idempotent(lms: &mut dyn LmsHost) {
    let team = grant(GrantKind::Team, "Sales", "default@group:g1");
    let same_name_other_source = grant(GrantKind::Team, "Sales", "rules:r@group:g2");
    let effects = vec![
        Effect::Upsert(profile("Ada")),
        Effect::Grant(team.clone()),
        Effect::Grant(same_name_other_source.clone()),
        Effect::Suspend,
    ];
    lms.apply(vec![change("u1", effects.clone())])
        .expect("apply");
    let once = state(lms, "u1");
    lms.apply(vec![change("u1", effects)]).expect("apply again");
    assert_eq!(state(lms, "u1"), once, "applying the same change twice");
    let mut want = vec![team.clone(), same_name_other_source];
    want.sort();
    assert_eq!(once, Some((LearnerStatus::Suspended, want)));
    lms.apply(vec![change(
        "u1",
        vec![Effect::Revoke(team.clone()), Effect::Revoke(team)],
    )])
    .expect("revoke twice");
    assert_eq!(state(lms, "u1").map(|s| s.1.len()), Some(1));
    lms.apply(vec![change(
        "u1",
        vec![Effect::Reactivate, Effect::Reactivate],
    )])
    .expect("apply");
    assert_eq!(state(lms, "u1").map(|s| s.0), Some(LearnerStatus::Active));
}

pub fn grants_reach_only_learners_that_exist(lms: &mut dyn LmsHost) {
    let team = grant(GrantKind::Team, "Sales", "default@group:g1");
    lms.apply(vec![change(
        "ghost",
        vec![Effect::Grant(team.clone()), Effect::Suspend],
    )])
    .expect("apply");
    assert_eq!(
        state(lms, "ghost"),
        None,
        "no learner is made without an upsert"
    );
    // A learner created earlier in the same call counts.
    lms.apply(vec![
        change("u1", vec![Effect::Upsert(profile("Ada"))]),
        change("u1", vec![Effect::Grant(team.clone())]),
    ])
    .expect("apply");
    assert_eq!(state(lms, "u1"), Some((LearnerStatus::Active, vec![team])));
}

pub fn holders_page_in_id_order_by_via(lms: &mut dyn LmsHost) {
    let mut changes = Vec::new();
    for (id, source) in [
        ("u4", "default@group:g1"),
        ("u2", "rules:a@group:g1"),
        ("u3", "rules:b@group:g2"),
        ("u1", "default@group:g1"),
        ("u5", "rules:a@attr:department"),
    ] {
        changes.push(change(
            id,
            vec![
                Effect::Upsert(profile(id)),
                Effect::Grant(grant(GrantKind::Team, "T", source)),
                Effect::Grant(grant(GrantKind::LearningPath, "P", source)),
            ],
        ));
    }
    lms.apply(changes).expect("apply");
    assert_eq!(
        lms.holders("group:g1", None, 10).expect("holders"),
        ["u1", "u2", "u4"]
    );
    assert_eq!(
        lms.holders("group:g1", None, 2).expect("holders"),
        ["u1", "u2"]
    );
    assert_eq!(
        lms.holders("group:g1", Some("u2"), 2).expect("holders"),
        ["u4"]
    );
    assert_eq!(
        lms.holders("attr:department", None, 10).expect("holders"),
        ["u5"]
    );
    assert!(
        lms.holders("group:g9", None, 10)
            .expect("holders")
            .is_empty()
    );
}

pub fn renamed_grants_follow_their_new_name(lms: &mut dyn LmsHost) {
    let source = "default:groups-as-teams@group:g1";
    let team = |name: &str| grant(GrantKind::Team, name, source);
    let mut changes = Vec::new();
    for id in ["u1", "u2", "u3"] {
        changes.push(change(
            id,
            vec![Effect::Upsert(profile(id)), Effect::Grant(team("Old"))],
        ));
    }
    // u2 already holds the new name from the same source; u3 also holds a
    // team of that name from elsewhere, and a path from this source.
    let other = grant(GrantKind::Team, "Old", "rules:r@group:g2");
    let path = grant(GrantKind::LearningPath, "Old", source);
    changes.push(change("u2", vec![Effect::Grant(team("New"))]));
    changes.push(change(
        "u3",
        vec![Effect::Grant(other.clone()), Effect::Grant(path.clone())],
    ));
    changes.push(change(
        "u4",
        vec![Effect::Upsert(profile("u4")), Effect::Grant(team("New"))],
    ));
    lms.apply(changes).expect("apply");
    let first = lms
        .rename_grants(GrantKind::Team, source, Some("New"), None, 2)
        .expect("rename");
    assert_eq!(first, ["u1", "u2"], "learners changed, in id order");
    let rest = lms
        .rename_grants(GrantKind::Team, source, Some("New"), Some("u2"), 2)
        .expect("rename");
    assert_eq!(rest, ["u3"], "u4 already holds the new name");
    assert_eq!(state(lms, "u1").map(|s| s.1), Some(vec![team("New")]));
    assert_eq!(
        state(lms, "u2").map(|s| s.1),
        Some(vec![team("New")]),
        "one grant, not two"
    );
    let mut want = vec![team("New"), other, path];
    want.sort();
    assert_eq!(state(lms, "u3").map(|s| s.1), Some(want.clone()));
    let none = lms
        .rename_grants(GrantKind::Team, source, Some("New"), None, 10)
        .expect("rename");
    assert!(none.is_empty(), "nothing left to rename");
    // Without a new name, the grants go.
    let gone = lms
        .rename_grants(GrantKind::Team, source, None, None, 10)
        .expect("revoke");
    assert_eq!(gone, ["u1", "u2", "u3", "u4"]);
    assert_eq!(state(lms, "u1").map(|s| s.1), Some(vec![]));
    want.retain(|g| g.source != source || g.kind != GrantKind::Team);
    assert_eq!(state(lms, "u3").map(|s| s.1), Some(want));
}

pub fn tasks_are_queued_as_given(lms: &mut dyn Observed) {
    let tasks = vec![
        Task {
            work: Work::Users(vec!["u1".into(), "u2".into()]),
            cursor: None,
        },
        Task {
            work: Work::Everyone,
            cursor: None,
        },
        Task {
            work: Work::Members("g1".into()),
            cursor: Some("u7".into()),
        },
        Task {
            work: Work::Renamed("g2".into()),
            cursor: None,
        },
        Task {
            work: Work::Source("group:g3".into()),
            cursor: None,
        },
    ];
    for t in &tasks {
        lms.enqueue(t.clone());
    }
    assert_eq!(lms.queued(), tasks);
}

pub fn events_are_logged_as_given(lms: &mut dyn Observed) {
    let events = vec![
        Event {
            action: "create".into(),
            resource_type: "Group".into(),
            resource_id: "g1".into(),
            resource_name: Some("Sales".into()),
            status: EventStatus::Success,
            reason: None,
            detail: None,
            changes: vec![AttributeChange {
                name: "displayName".into(),
                old: None,
                new: Some("\"Sales\"".into()),
            }],
        },
        Event {
            action: "map".into(),
            resource_type: "User".into(),
            resource_id: "u1".into(),
            resource_name: None,
            status: EventStatus::Skipped,
            reason: Some("unknown-role".into()),
            detail: Some("the role 'x' is not in the catalogue".into()),
            changes: vec![],
        },
        Event {
            action: "map".into(),
            resource_type: "User".into(),
            resource_id: "u2".into(),
            resource_name: Some("u2@example.com".into()),
            status: EventStatus::Failure,
            reason: Some("plugin-error".into()),
            detail: None,
            changes: vec![],
        },
    ];
    lms.append(events[..1].to_vec());
    lms.append(events[1..].to_vec());
    assert_eq!(lms.logged(), events);
}
