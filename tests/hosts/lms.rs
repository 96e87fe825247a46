//! What SCIM writes do to the LMS, read through `/test/v1/learners/{id}`:
//! learners, their status and profile, the `learner` role, and teams named
//! after groups (the default mapping).

use serde_json::{Value, json};

use crate::support::{
    ENTERPRISE, GROUP_SCHEMA, Host, LEARNER_ROLE, USER_SCHEMA, from_group, grants, id_of, item,
    unique,
};

/// The `learner` role from the default mapping.
fn learner_role() -> Vec<(String, Vec<String>)> {
    vec![item("learner", &[LEARNER_ROLE])]
}

#[track_caller]
fn assert_learner(
    l: &Value,
    status: &str,
    roles: &[(String, Vec<String>)],
    teams: &[(String, Vec<String>)],
) {
    assert_eq!(l["status"], status, "{l}");
    assert_eq!(grants(l, "roles"), roles, "roles of {l}");
    assert_eq!(grants(l, "teams"), teams, "teams of {l}");
    assert_eq!(grants(l, "learningPaths"), [], "learning paths of {l}");
}

fn set_active(h: &Host, id: &str, active: &str) {
    // Entra ID's form: capitalised op, the boolean as a string.
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "Replace", "path": "active", "value": active}]),
    )
    .expect(200);
}

/// A created user is an active learner with the `learner` role and the
/// profile the user's attributes give.
pub fn created_user_is_an_active_learner(h: &Host) {
    let boss = h.create_user(&unique("lms.boss"));
    let name = unique("lms.joiner");
    let r = h
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": name,
                "displayName": "Adele Vance",
                "name": {"givenName": "Adele", "familyName": "Vance"},
                "emails": [
                    {"value": format!("home.{name}@example.org"), "type": "home"},
                    {"value": format!("{name}@example.com"), "type": "work", "primary": true}
                ],
                "locale": "en-GB",
                "title": "Engineer",
                "active": true,
                ENTERPRISE: {"department": "Sales", "manager": {"value": boss}},
            }),
        )
        .expect(201);
    let id = id_of(&r);
    let l = h.learner(&id);
    assert_eq!(l["userName"], name.as_str(), "{l}");
    assert_learner(&l, "active", &learner_role(), &[]);
    assert_eq!(
        l["profile"],
        json!({
            "displayName": "Adele Vance",
            "givenName": "Adele",
            "familyName": "Vance",
            "email": format!("{name}@example.com"),
            "locale": "en-GB",
            "title": "Engineer",
            "department": "Sales",
            "manager": boss,
        }),
        "{l}"
    );

    // A user created inactive is a learner without the role.
    let r = h
        .post(
            "/Users",
            &json!({"schemas": [USER_SCHEMA], "userName": unique("lms.inactive"), "active": false}),
        )
        .expect(201);
    let l = h.learner(&id_of(&r));
    assert_learner(&l, "suspended", &[], &[]);
    assert_eq!(l["profile"]["title"], Value::Null, "{l}");
}

/// `active: false` suspends the learner and takes its mapped role and
/// teams; `active: true` gives them back.
pub fn deactivation_suspends_and_reactivation_restores(h: &Host) {
    let id = h.create_user(&unique("lms.leaver"));
    let team = unique("Leavers");
    let gid = h.create_group(&team, &[&id]);
    let teams = vec![item(&team, &[&from_group(&gid)])];
    assert_learner(&h.learner(&id), "active", &learner_role(), &teams);

    set_active(h, &id, "False");
    assert_learner(&h.learner(&id), "suspended", &[], &[]);
    // Still a member in SCIM.
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(g["members"][0]["value"], id.as_str(), "{g}");

    set_active(h, &id, "True");
    assert_learner(&h.learner(&id), "active", &learner_role(), &teams);

    // Okta's form, and PUT of the whole user, do the same.
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "replace", "value": {"active": false}}]),
    )
    .expect(200);
    assert_eq!(h.learner(&id)["status"], "suspended");
    let user = h.get(&format!("/Users/{id}")).expect(200).json;
    let mut body = user.clone();
    body["active"] = json!(true);
    h.put(&format!("/Users/{id}"), &body).expect(200);
    assert_learner(&h.learner(&id), "active", &learner_role(), &teams);
}

/// The learner's profile follows PATCH and PUT of the user.
pub fn profile_follows_the_user(h: &Host) {
    let name = unique("lms.profile");
    let id = h.create_user(&name);
    let l = h.learner(&id);
    assert_eq!(l["profile"]["givenName"], "Given", "{l}");
    assert_eq!(l["profile"]["email"], format!("{name}@example.com"), "{l}");
    assert_eq!(l["profile"]["title"], Value::Null, "{l}");

    h.patch(
        &format!("/Users/{id}"),
        json!([
            {"op": "add", "path": "title", "value": "Manager"},
            {"op": "add", "path": format!("{ENTERPRISE}:department"), "value": "Support"},
            {"op": "replace", "path": "name.givenName", "value": "Renamed"},
        ]),
    )
    .expect(200);
    let l = h.learner(&id);
    assert_eq!(l["profile"]["title"], "Manager", "{l}");
    assert_eq!(l["profile"]["department"], "Support", "{l}");
    assert_eq!(l["profile"]["givenName"], "Renamed", "{l}");

    // PUT without them clears them; a new userName follows.
    let renamed = unique("lms.profile.renamed");
    h.put(
        &format!("/Users/{id}"),
        &json!({"schemas": [USER_SCHEMA], "userName": renamed, "displayName": "Only Display", "active": true}),
    )
    .expect(200);
    let l = h.learner(&id);
    assert_eq!(l["userName"], renamed.as_str(), "{l}");
    assert_eq!(
        l["profile"],
        json!({
            "displayName": "Only Display", "givenName": null, "familyName": null, "email": null,
            "locale": null, "title": null, "department": null, "manager": null,
        }),
        "{l}"
    );
    assert_learner(&l, "active", &learner_role(), &[]);
}

/// A group membership is a team named after the group, its source the
/// group; leaving the group leaves the team. Teams are sorted by name.
pub fn group_membership_is_a_team(h: &Host) {
    let id = h.create_user(&unique("lms.member"));
    let b_name = unique("B Team");
    let a_name = unique("A Team");
    // Entra ID: an empty group, then members added by PATCH.
    let b = h.create_group(&b_name, &[]);
    assert_learner(&h.learner(&id), "active", &learner_role(), &[]);
    h.patch(
        &format!("/Groups/{b}"),
        json!([{"op": "Add", "path": "members", "value": [{"value": id}]}]),
    )
    .expect(204);
    let b_team = item(&b_name, &[&from_group(&b)]);
    assert_learner(
        &h.learner(&id),
        "active",
        &learner_role(),
        std::slice::from_ref(&b_team),
    );
    // Okta: a group created with its members.
    let a = h.create_group(&a_name, &[&id]);
    let a_team = item(&a_name, &[&from_group(&a)]);
    assert_learner(
        &h.learner(&id),
        "active",
        &learner_role(),
        &[a_team.clone(), b_team],
    );
    // Okta removes a member by filter.
    h.patch(
        &format!("/Groups/{b}"),
        json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}]),
    )
    .expect(204);
    assert_learner(
        &h.learner(&id),
        "active",
        &learner_role(),
        std::slice::from_ref(&a_team),
    );
    // PUT with the full (empty) member list.
    h.put(
        &format!("/Groups/{a}"),
        &json!({"schemas": [GROUP_SCHEMA], "displayName": a_name, "members": []}),
    )
    .expect(200);
    assert_learner(&h.learner(&id), "active", &learner_role(), &[]);
}

/// Renaming a group renames its members' team once the background work is
/// done; deleting it takes the team away.
pub fn group_rename_renames_the_team(h: &Host) {
    let members: Vec<String> = (0..3)
        .map(|i| h.create_user(&unique(&format!("lms.cohort{i}"))))
        .collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let old = unique("Old Cohort");
    let gid = h.create_group(&old, &refs);
    for m in &members {
        assert_learner(
            &h.learner(m),
            "active",
            &learner_role(),
            &[item(&old, &[&from_group(&gid)])],
        );
    }
    let new = unique("New Cohort");
    h.patch(
        &format!("/Groups/{gid}"),
        json!([{"op": "Replace", "path": "displayName", "value": new}]),
    )
    .expect(204);
    h.drain();
    for m in &members {
        assert_learner(
            &h.learner(m),
            "active",
            &learner_role(),
            &[item(&new, &[&from_group(&gid)])],
        );
    }
    h.delete(&format!("/Groups/{gid}")).expect(204);
    h.drain();
    for m in &members {
        assert_learner(&h.learner(m), "active", &learner_role(), &[]);
    }
}

/// Deleting a user suspends its learner (the default on-delete policy):
/// the record and its profile stay, the mapped role and teams go.
pub fn deleted_user_is_suspended(h: &Host) {
    let name = unique("lms.deleted");
    let id = h.create_user(&name);
    let gid = h.create_group(&unique("Deleted Team"), &[&id]);
    h.delete(&format!("/Users/{id}")).expect(204);
    h.get(&format!("/Users/{id}")).expect_error(404, None);
    let l = h.learner(&id);
    assert_learner(&l, "suspended", &[], &[]);
    assert_eq!(l["userName"], name.as_str(), "{l}");
    assert_eq!(l["profile"]["email"], format!("{name}@example.com"), "{l}");
    // The group lost the member.
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert!(g["members"].as_array().is_none_or(|m| m.is_empty()), "{g}");
}
