//! Properties of mapping through the engine over the in-memory store and
//! LMS: mapping a user again applies nothing, a re-mapping brings every
//! learner to its desired state, and explain predicts what mapping applies.

use std::collections::BTreeSet;

use proptest::prelude::*;
use serde_json::Value;

use super::host::{Effect, Grant, GrantKind, MANUAL, Task, Work};
use crate::mapping::Choice;
use crate::strategies::{config, groups, users};
use crate::testkit::Fixture;

/// A rule condition, in the rules document's syntax.
fn condition() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        r#"{ attribute = "department", equals = "Sales" }"#,
        r#"{ attribute = "department", in = ["R&D", "Ops"] }"#,
        r#"{ group = "Sales" }"#,
        r#"{ group = "Engineering" }"#,
        r#"{ attribute = "title", glob = "*ngineer*" }"#,
        r#"{ not = { attribute = "country", in = ["DE", "AT"] } }"#,
        r#"{ attribute = "email_domain", equals = "acme.example" }"#,
        r#"{ any = [{ group = "All Staff" }, { attribute = "userType", equals_ignore_case = "contractor" }] }"#,
    ])
}

/// What a rule grants.
fn grant() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec![
        r#"{ role = "lead" }"#,
        r#"{ role = "admin", teams = ["Admins"] }"#,
        r#"{ teams = ["Dept {department}"] }"#,
        r#"{ learning_paths = ["P1"] }"#,
        r#"{ learning_paths = ["P2"], teams = ["Everyone"] }"#,
    ])
}

/// A rules document of up to four rules.
fn rules() -> impl Strategy<Value = String> {
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec((condition(), grant()), 0..4),
    )
        .prop_map(|(teams, default_role, rules)| {
            let mut doc = format!("version = 1\ngroups_as_teams = {teams}\n");
            if !default_role {
                doc.push_str("default_role = \"\"\n");
            }
            for (i, (when, grant)) in rules.into_iter().enumerate() {
                doc.push_str(&format!(
                    "\n[[rule]]\nname = \"r{i}\"\npriority = {i}\nwhen = {when}\ngrant = {grant}\n"
                ));
            }
            doc
        })
}

/// Users, groups and learners under `installed` rules (or the default
/// mapping), every background task drained; some learners also hold a
/// grant made by hand. Returns the user ids.
fn tenant(
    installed: Option<String>,
    users: &[Value],
    groups: &[(String, Vec<usize>)],
    manual: &[bool],
) -> (Fixture, Vec<String>) {
    let mut f = Fixture::new();
    for (kind, name) in [
        (GrantKind::Role, "lead"),
        (GrantKind::Role, "admin"),
        (GrantKind::LearningPath, "P1"),
        (GrantKind::LearningPath, "P2"),
    ] {
        f.lms.catalogue.insert((kind, name.into()));
    }
    f.lms.mapping = installed;
    let ids: Vec<String> = users
        .iter()
        .map(|u| {
            f.ok("POST", "/Users", Some(u.clone()))["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    for (name, members) in groups {
        let members: Vec<&str> = members.iter().map(|&i| ids[i].as_str()).collect();
        f.group(name, &members);
    }
    for (id, _) in ids.iter().zip(manual).filter(|(_, m)| **m) {
        let l = f.lms.learners.get_mut(id).unwrap();
        l.grants.insert(manual_grant());
    }
    drain_all(&mut f);
    (f, ids)
}

fn manual_grant() -> Grant {
    Grant {
        kind: GrantKind::Team,
        name: "Hand-picked".into(),
        source: MANUAL.into(),
    }
}

fn drain_all(f: &mut Fixture) {
    while !f.lms.outbox.is_empty() {
        let mut task = f.lms.outbox.remove(0);
        while let Some(cursor) = crate::drain(&task, 3, &mut f.store, &mut f.lms).unwrap() {
            task.cursor = Some(cursor);
        }
    }
}

/// Re-maps every user, as installing a rules document does.
fn remap(f: &mut Fixture, rules: Option<String>) {
    f.lms.mapping = rules;
    f.lms.outbox.push(Task {
        work: Work::Everyone,
        cursor: None,
    });
    drain_all(f);
}

/// A grant or revoke as explain shows it: (effect, kind, name, source).
type Step = (String, String, String, String);

fn steps_of_explain(x: &Value) -> BTreeSet<Step> {
    x["effects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("effect"), s("kind"), s("name"), s("source"))
        })
        .collect()
}

fn steps_applied(f: &Fixture, from: usize, id: &str) -> BTreeSet<Step> {
    let step = |what: &str, g: &Grant| {
        (
            what.to_string(),
            g.kind.as_str().to_string(),
            g.name.clone(),
            g.source.clone(),
        )
    };
    f.lms.applied[from..]
        .iter()
        .filter(|c| c.learner.scim_id == id)
        .flat_map(|c| &c.effects)
        .map(|e| match e {
            Effect::Grant(g) => step("grant", g),
            Effect::Revoke(g) => step("revoke", g),
            other => (
                "other".into(),
                format!("{other:?}"),
                String::new(),
                String::new(),
            ),
        })
        .collect()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn mapping_a_user_twice_applies_nothing_the_second_time(
        installed in prop::option::of(rules()),
        users in users(1, 8),
        groups in groups(8, 3),
        manual in prop::collection::vec(any::<bool>(), 8),
    ) {
        let groups: Vec<_> = groups.into_iter()
            .map(|(n, m)| (n, m.into_iter().filter(|&i| i < users.len()).collect()))
            .collect();
        let (mut f, ids) = tenant(installed, &users, &groups, &manual);
        f.lms.outbox.push(Task { work: Work::Users(ids.clone()), cursor: None });
        drain_all(&mut f);
        let once = f.lms.applied.len();
        let state = f.lms.learners.clone();
        f.lms.outbox.push(Task { work: Work::Users(ids), cursor: None });
        drain_all(&mut f);
        prop_assert_eq!(&f.lms.applied[once..], &[]);
        prop_assert_eq!(&f.lms.learners, &state);
    }

    #[test]
    fn a_remapping_brings_every_learner_to_its_desired_state(
        before in prop::option::of(rules()),
        after in prop::option::of(rules()),
        users in users(1, 8),
        groups in groups(8, 3),
        manual in prop::collection::vec(any::<bool>(), 8),
    ) {
        let groups: Vec<_> = groups.into_iter()
            .map(|(n, m)| (n, m.into_iter().filter(|&i| i < users.len()).collect()))
            .collect();
        let (mut f, ids) = tenant(before, &users, &groups, &manual);
        remap(&mut f, after);
        for (id, manual) in ids.iter().zip(&manual) {
            let x = crate::explain_mapping(&Choice::Installed, id, &mut f.store, &mut f.lms).unwrap();
            prop_assert_eq!(steps_of_explain(&x), BTreeSet::new(), "{}", x);
            let desired: BTreeSet<Grant> = x["desired"]
                .as_array()
                .unwrap()
                .iter()
                .map(|g| Grant {
                    kind: match g["kind"].as_str().unwrap() {
                        "role" => GrantKind::Role,
                        "team" => GrantKind::Team,
                        _ => GrantKind::LearningPath,
                    },
                    name: g["name"].as_str().unwrap().into(),
                    source: g["source"].as_str().unwrap().into(),
                })
                .collect();
            let held = &f.lms.learners[id].grants;
            let mapped: BTreeSet<Grant> = held.iter().filter(|g| g.source != MANUAL).cloned().collect();
            prop_assert_eq!(mapped, desired);
            prop_assert_eq!(held.contains(&manual_grant()), *manual);
        }
    }

    #[test]
    fn explain_predicts_what_a_remapping_applies(
        before in prop::option::of(rules()),
        after in prop::option::of(rules()),
        users in users(1, 8),
        groups in groups(8, 3),
    ) {
        let groups: Vec<_> = groups.into_iter()
            .map(|(n, m)| (n, m.into_iter().filter(|&i| i < users.len()).collect()))
            .collect();
        let (mut f, ids) = tenant(before, &users, &groups, &[]);
        let choice = match &after {
            Some(doc) => Choice::Document(doc.clone()),
            None => Choice::Default,
        };
        let predicted: Vec<BTreeSet<Step>> = ids
            .iter()
            .map(|id| steps_of_explain(
                &crate::explain_mapping(&choice, id, &mut f.store, &mut f.lms).unwrap(),
            ))
            .collect();
        let mark = f.lms.applied.len();
        remap(&mut f, after);
        for (id, predicted) in ids.iter().zip(predicted) {
            prop_assert_eq!(steps_applied(&f, mark, id), predicted);
        }
    }
}

#[test]
fn the_generated_rules_documents_are_valid() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    for _ in 0..100 {
        let doc = rules().new_tree(&mut runner).unwrap().current();
        let report = crate::check_mapping(&doc, None).unwrap();
        assert!(report.valid(), "{doc}\n{:?}", report.diagnostics);
    }
}
