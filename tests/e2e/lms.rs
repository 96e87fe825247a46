//! LMS provisioning: SCIM writes keep learners, their roles and their teams
//! in step, in Entra ID's and Okta's dialects; group renames and deletes are
//! re-mapped in the background through a durable outbox that survives a
//! kill -9; the admin API, its token and the sync log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{ENTERPRISE, GROUP_SCHEMA, LmsServer, USER_SCHEMA, grants, item, learner};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
/// The source of the role every active user holds.
const LEARNER_ROLE: &str = "default:learner-role@active";
const MANUAL: &str = "manual";

// ---------------------------------------------------------------------------
// Helpers

/// The source of a team mapped from group `gid`.
pub(crate) fn from_group(gid: &str) -> String {
    format!("default:groups-as-teams@group:{gid}")
}

/// The names of a learner's teams, sorted (a name held twice shows twice).
pub(crate) fn team_names(l: &Value) -> Vec<String> {
    grants(l, "teams").into_iter().map(|(n, _)| n).collect()
}

/// Asserts the learner's status, roles and teams in one go.
#[track_caller]
pub(crate) fn assert_learner(
    l: &Value,
    status: &str,
    roles: &[(String, Vec<String>)],
    teams: &[(String, Vec<String>)],
) {
    assert_eq!(l["status"], status, "{l}");
    assert_eq!(grants(l, "roles"), roles, "roles of {l}");
    assert_eq!(grants(l, "teams"), teams, "teams of {l}");
}

/// The `learner` role from the default mapping.
pub(crate) fn mapped_role() -> (String, Vec<String>) {
    item("learner", &[LEARNER_ROLE])
}

/// Polls `GET /admin/v1/sync` until nothing is pending (60 s at most) and
/// returns the last answer.
#[track_caller]
pub(crate) fn wait_synced(s: &LmsServer) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let r = s.admin_get("/admin/v1/sync").expect(200);
        let pending = r.json["pending"]
            .as_u64()
            .unwrap_or_else(|| panic!("sync status without pending: {}", r.text));
        let age = &r.json["oldestAgeSeconds"];
        assert!(age.is_null() || age.is_number(), "{}", r.text);
        assert!(r.json["tasks"].is_array(), "{}", r.text);
        if pending == 0 {
            return r.json;
        }
        assert!(
            Instant::now() < deadline,
            "background re-mapping still pending after 60 s: {}\nserver log:\n{}",
            r.text,
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `GET /admin/v1/events?{query}`, newest first.
#[track_caller]
pub(crate) fn events(s: &LmsServer, query: &str) -> Vec<Value> {
    let r = s
        .admin_get(&format!("/admin/v1/events?{query}"))
        .expect(200);
    r.json["events"]
        .as_array()
        .unwrap_or_else(|| panic!("no events array: {}", r.text))
        .clone()
}

/// The events of one user (its `User` and `Learner` events), newest first.
pub(crate) fn user_events(s: &LmsServer, user: &str) -> Vec<Value> {
    events(s, &format!("user={user}&limit=100"))
}

/// The newest event of this resource type and action among `evs`.
#[track_caller]
fn newest<'a>(evs: &'a [Value], resource_type: &str, action: &str) -> &'a Value {
    evs.iter()
        .find(|e| e["resourceType"] == resource_type && e["action"] == action)
        .unwrap_or_else(|| {
            panic!(
                "no {resource_type} {action} event among {}",
                serde_json::to_string_pretty(evs).unwrap()
            )
        })
}

/// Whether an event grants (`side` = "new") or revokes (`side` = "old") the
/// item `name` of this change kind (`team`, `role`, `learningPath`).
pub(crate) fn touches(e: &Value, kind: &str, side: &str, name: &str) -> bool {
    e["changes"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["name"] == kind && c[side]["name"] == name)
    })
}

/// The `Learner` events among `evs` that grant team `name`.
pub(crate) fn granting_team<'a>(evs: &'a [Value], name: &str) -> Vec<&'a Value> {
    evs.iter()
        .filter(|e| e["resourceType"] == "Learner" && touches(e, "team", "new", name))
        .collect()
}

/// The id of a newly created resource.
#[track_caller]
fn id_of(r: &crate::support::Resp) -> String {
    r.json["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id: {}", r.text))
        .to_string()
}

/// A SCIM PatchOp request body.
pub(crate) fn patch_ops(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

/// Creates `n` users in one Bulk request; their ids, in request order.
#[track_caller]
pub(crate) fn bulk_users(s: &LmsServer, n: usize) -> Vec<String> {
    let ops: Vec<Value> = (0..n)
        .map(|i| {
            json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"),
                   "data": {"schemas": [USER_SCHEMA], "userName": format!("member{i:03}")}})
        })
        .collect();
    let r = s
        .post("/Bulk", &json!({"schemas": [BULK], "Operations": ops}))
        .expect(200);
    let ids: Vec<String> = r.json["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            assert_eq!(o["status"], "201", "{o}");
            o["location"]
                .as_str()
                .unwrap()
                .rsplit('/')
                .next()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(ids.len(), n);
    ids
}

/// Grants an item by hand: `POST /admin/v1/learners/{id}/{kind}`, 201.
#[track_caller]
fn grant_by_hand(s: &LmsServer, id: &str, kind: &str, name: &str) -> Value {
    let r = s
        .admin(
            "POST",
            &format!("/admin/v1/learners/{id}/{kind}"),
            Some(&json!({"name": name})),
        )
        .expect(201);
    assert_eq!(r.json["id"], id, "{}", r.text);
    r.json
}

// ---------------------------------------------------------------------------
// Entra ID

/// A user as Entra ID creates it.
fn entra_user(s: &LmsServer, user_name: &str) -> String {
    let r = s
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "externalId": format!("ext-{user_name}"),
                "userName": user_name,
                "active": true,
                "displayName": format!("User {user_name}"),
                "emails": [{"primary": true, "type": "work", "value": user_name}],
                "meta": {"resourceType": "User"},
                "name": {"formatted": "Given Family", "familyName": "Family", "givenName": "Given"},
                "title": "Engineer",
                ENTERPRISE: {"department": "Sales"},
            }),
        )
        .expect(201);
    id_of(&r)
}

/// A group as Entra ID creates it: without members, which it adds by PATCH.
fn entra_group(s: &LmsServer, name: &str) -> String {
    let r = s
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_SCHEMA],
                "externalId": format!("ext-{name}"),
                "displayName": name,
                "meta": {"resourceType": "Group"},
            }),
        )
        .expect(201);
    id_of(&r)
}

fn entra_add_member(s: &LmsServer, gid: &str, uid: &str) {
    s.patch(
        &format!("/Groups/{gid}"),
        &patch_ops(json!([{"op": "Add", "path": "members", "value": [{"value": uid}]}])),
    )
    .expect(204);
}

fn entra_remove_member(s: &LmsServer, gid: &str, uid: &str) {
    s.patch(
        &format!("/Groups/{gid}"),
        &patch_ops(json!([{"op": "Remove", "path": format!("members[value eq \"{uid}\"]")}])),
    )
    .expect(204);
}

fn entra_set_active(s: &LmsServer, uid: &str, active: &str) -> Value {
    s.patch(
        &format!("/Users/{uid}"),
        &patch_ops(json!([{"op": "Replace", "path": "active", "value": active}])),
    )
    .expect(200)
    .json
}

#[test]
fn entra_provisions_learners_teams_and_roles() {
    let s = LmsServer::start();

    // Join: a learner, active, with the learner role.
    let u = entra_user(&s, "adele@contoso.com");
    let l = learner(&s, &u);
    assert_eq!(l["userName"], "adele@contoso.com");
    assert_learner(&l, "active", &[mapped_role()], &[]);
    assert_eq!(l["learningPaths"], json!([]), "{l}");
    let evs = user_events(&s, &u);
    let created = newest(&evs, "Learner", "create");
    assert_eq!(created["status"], "success", "{created}");
    assert!(touches(created, "role", "new", "learner"), "{created}");
    assert_eq!(
        created["changes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "role")
            .unwrap()["new"],
        json!({"name": "learner", "source": LEARNER_ROLE})
    );
    assert_eq!(
        created["changeId"],
        newest(&evs, "User", "create")["changeId"],
        "one request, one change id"
    );

    // Join a group: the team, with the group as its source, by the time the
    // PATCH returns.
    let sales = entra_group(&s, "Sales");
    entra_add_member(&s, &sales, &u);
    let l = learner(&s, &u);
    assert_learner(
        &l,
        "active",
        &[mapped_role()],
        &[item("Sales", &[&from_group(&sales)])],
    );

    // A team granted by hand.
    let l = grant_by_hand(&s, &u, "teams", "Mentors");
    assert_eq!(
        grants(&l, "teams"),
        [
            item("Mentors", &[MANUAL]),
            item("Sales", &[&from_group(&sales)])
        ]
    );

    // Move to another group: added to Support, removed from Sales.
    let support = entra_group(&s, "Support");
    let colleague = entra_user(&s, "brian@contoso.com");
    entra_add_member(&s, &support, &colleague);
    entra_add_member(&s, &support, &u);
    entra_remove_member(&s, &sales, &u);
    let support_team = item("Support", &[&from_group(&support)]);
    let l = learner(&s, &u);
    assert_learner(
        &l,
        "active",
        &[mapped_role()],
        &[item("Mentors", &[MANUAL]), support_team.clone()],
    );

    // Deactivate ("False" as a string): suspended when the response arrives,
    // mapped role and team revoked, the manual team kept.
    let user = entra_set_active(&s, &u, "False");
    assert_eq!(user["active"], false, "{user}");
    let l = learner(&s, &u);
    assert_learner(&l, "suspended", &[], &[item("Mentors", &[MANUAL])]);
    let evs = user_events(&s, &u);
    let suspend = newest(&evs, "Learner", "suspend");
    assert!(touches(suspend, "role", "old", "learner"), "{suspend}");
    assert!(touches(suspend, "team", "old", "Support"), "{suspend}");
    assert_eq!(
        suspend["changeId"],
        newest(&evs, "User", "disable")["changeId"]
    );

    // Reactivate: role and team are back, the manual team still there.
    entra_set_active(&s, &u, "True");
    let l = learner(&s, &u);
    assert_learner(
        &l,
        "active",
        &[mapped_role()],
        &[item("Mentors", &[MANUAL]), support_team],
    );
    let evs = user_events(&s, &u);
    let reactivate = newest(&evs, "Learner", "reactivate");
    assert_eq!(
        reactivate["changeId"],
        newest(&evs, "User", "enable")["changeId"]
    );

    // Rename the group: the members are re-mapped in the background.
    s.patch(
        &format!("/Groups/{support}"),
        &patch_ops(json!([{"op": "Replace", "path": "displayName", "value": "Customer Success"}])),
    )
    .expect(204);
    wait_synced(&s);
    let renamed = item("Customer Success", &[&from_group(&support)]);
    assert_learner(
        &learner(&s, &u),
        "active",
        &[mapped_role()],
        &[renamed.clone(), item("Mentors", &[MANUAL])],
    );
    assert_learner(
        &learner(&s, &colleague),
        "active",
        &[mapped_role()],
        &[renamed],
    );
    // The background re-mapping carries the rename's change id, once.
    let group_events = events(&s, "limit=100");
    let rename = group_events
        .iter()
        .find(|e| e["resourceType"] == "Group" && e["resourceId"] == support.as_str())
        .expect("the rename's Group event");
    assert_eq!(rename["action"], "update", "{rename}");
    for member in [&u, &colleague] {
        let evs = user_events(&s, member);
        let remapped = granting_team(&evs, "Customer Success");
        assert_eq!(remapped.len(), 1, "{remapped:?}");
        assert!(
            touches(remapped[0], "team", "old", "Support"),
            "{}",
            remapped[0]
        );
        assert_eq!(remapped[0]["changeId"], rename["changeId"]);
    }

    // Delete the user: suspended, and the record is kept.
    s.delete(&format!("/Users/{u}")).expect(204);
    s.get(&format!("/Users/{u}")).expect(404);
    let l = learner(&s, &u);
    assert_eq!(l["status"], "suspended", "{l}");
    assert_eq!(l["userName"], "adele@contoso.com", "{l}");

    // Delete the group: its remaining member loses the team (background).
    s.delete(&format!("/Groups/{support}")).expect(204);
    wait_synced(&s);
    assert_learner(&learner(&s, &colleague), "active", &[mapped_role()], &[]);
}

// ---------------------------------------------------------------------------
// Okta

/// A user as Okta creates it.
fn okta_user_body(user_name: &str, active: bool) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Isaac", "familyName": "Brock"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Isaac Brock",
        "locale": "en-US",
        "externalId": "00ujl29u0le5T6Aj10h7",
        "password": "1mz050nq",
        "active": active,
    })
}

/// Okta sets a group's membership with PUT and the full member list.
fn okta_put_group(s: &LmsServer, gid: &str, name: &str, members: &[&str]) {
    let members: Vec<Value> = members
        .iter()
        .map(|m| json!({"value": m, "display": "Isaac Brock"}))
        .collect();
    s.put(
        &format!("/Groups/{gid}"),
        &json!({"schemas": [GROUP_SCHEMA], "id": gid, "displayName": name, "members": members}),
    )
    .expect(200);
}

fn okta_group(s: &LmsServer, name: &str) -> String {
    let r = s
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": []}),
        )
        .expect(201);
    id_of(&r)
}

fn okta_patch_active(s: &LmsServer, uid: &str, active: bool) {
    s.patch(
        &format!("/Users/{uid}"),
        &patch_ops(json!([{"op": "replace", "value": {"active": active}}])),
    )
    .expect(200);
}

#[test]
fn okta_provisions_learners_teams_and_roles() {
    let s = LmsServer::start();

    // Join.
    let u = id_of(
        &s.post("/Users", &okta_user_body("isaac.brock@example.com", true))
            .expect(201),
    );
    let l = learner(&s, &u);
    assert_eq!(l["userName"], "isaac.brock@example.com");
    assert_learner(&l, "active", &[mapped_role()], &[]);
    assert_eq!(l["learningPaths"], json!([]), "{l}");

    // Join a group (PUT with the full member list).
    let sales = okta_group(&s, "Sales");
    okta_put_group(&s, &sales, "Sales", &[&u]);
    let sales_team = item("Sales", &[&from_group(&sales)]);
    assert_learner(
        &learner(&s, &u),
        "active",
        &[mapped_role()],
        std::slice::from_ref(&sales_team),
    );

    // Manual grants: a team of its own, the mapped team and the mapped role
    // once more. Unknown roles are refused.
    grant_by_hand(&s, &u, "teams", "Mentors");
    grant_by_hand(&s, &u, "teams", "Sales");
    let l = grant_by_hand(&s, &u, "roles", "learner");
    assert_eq!(
        grants(&l, "roles"),
        [item("learner", &[LEARNER_ROLE, MANUAL])]
    );
    assert_eq!(
        grants(&l, "teams"),
        [
            item("Mentors", &[MANUAL]),
            item("Sales", &[&from_group(&sales), MANUAL])
        ]
    );
    s.admin(
        "POST",
        &format!("/admin/v1/learners/{u}/roles"),
        Some(&json!({"name": "no-such-role"})),
    )
    .expect(400);
    // Revoking by hand removes the manual grant only.
    s.admin(
        "DELETE",
        &format!("/admin/v1/learners/{u}/teams/Sales"),
        None,
    )
    .expect(204);
    assert_eq!(
        grants(&learner(&s, &u), "teams"),
        [item("Mentors", &[MANUAL]), sales_team.clone()]
    );

    // Move: Okta PUTs the new group with the user and the old one without.
    let support = okta_group(&s, "Support");
    okta_put_group(&s, &support, "Support", &[&u]);
    okta_put_group(&s, &sales, "Sales", &[]);
    let support_team = item("Support", &[&from_group(&support)]);
    let manual_role = item("learner", &[MANUAL]);
    let both_roles = item("learner", &[LEARNER_ROLE, MANUAL]);
    assert_learner(
        &learner(&s, &u),
        "active",
        std::slice::from_ref(&both_roles),
        &[item("Mentors", &[MANUAL]), support_team.clone()],
    );

    // Deactivate by PATCH without a path: suspended at once; the mapped
    // grants are revoked, the manual ones stay.
    okta_patch_active(&s, &u, false);
    assert_learner(
        &learner(&s, &u),
        "suspended",
        std::slice::from_ref(&manual_role),
        &[item("Mentors", &[MANUAL])],
    );
    // Reactivate by PATCH.
    okta_patch_active(&s, &u, true);
    assert_learner(
        &learner(&s, &u),
        "active",
        std::slice::from_ref(&both_roles),
        &[item("Mentors", &[MANUAL]), support_team.clone()],
    );
    // Deactivate and reactivate by PUT of the whole user.
    s.put(
        &format!("/Users/{u}"),
        &okta_user_body("isaac.brock@example.com", false),
    )
    .expect(200);
    assert_learner(
        &learner(&s, &u),
        "suspended",
        std::slice::from_ref(&manual_role),
        &[item("Mentors", &[MANUAL])],
    );
    s.put(
        &format!("/Users/{u}"),
        &okta_user_body("isaac.brock@example.com", true),
    )
    .expect(200);
    assert_learner(
        &learner(&s, &u),
        "active",
        std::slice::from_ref(&both_roles),
        &[item("Mentors", &[MANUAL]), support_team],
    );

    // Rename, Okta style: replace without a path; re-mapped in the background.
    s.patch(
        &format!("/Groups/{support}"),
        &patch_ops(json!([{"op": "replace", "value": {"id": support, "displayName": "Helpdesk"}}])),
    )
    .expect(204);
    wait_synced(&s);
    let l = learner(&s, &u);
    assert_learner(
        &l,
        "active",
        std::slice::from_ref(&both_roles),
        &[
            item("Helpdesk", &[&from_group(&support)]),
            item("Mentors", &[MANUAL]),
        ],
    );

    // Delete: suspended, record kept; the manual grants survive it too.
    s.delete(&format!("/Users/{u}")).expect(204);
    let l = learner(&s, &u);
    assert_eq!(l["status"], "suspended", "{l}");
    assert_eq!(l["userName"], "isaac.brock@example.com", "{l}");
    assert!(team_names(&l).contains(&"Mentors".to_string()), "{l}");
    assert!(!team_names(&l).contains(&"Helpdesk".to_string()), "{l}");
}

// ---------------------------------------------------------------------------
// Policy, crash safety, tokens, the sync log, the command line

#[test]
fn delete_policy_remove_anonymises_the_learner() {
    let s = LmsServer::start();
    let kept = s.create_user("kept");
    let gone = s.create_user("gone");
    let g = s.create_group("Cohort", &[&kept, &gone]);
    assert_eq!(team_names(&learner(&s, &gone)), ["Cohort"]);

    // Under the default policy a deleted user's learner is suspended.
    s.delete(&format!("/Users/{kept}")).expect(204);
    assert_eq!(learner(&s, &kept)["status"], "suspended");

    // The policy is a database update; the running server follows it.
    let out = s.cli(&["tenant", "policy", "default", "--on-delete", "remove"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    s.delete(&format!("/Users/{gone}")).expect(204);
    let l = learner(&s, &gone);
    assert_learner(&l, "removed", &[], &[]);
    let evs = user_events(&s, &gone);
    let removed = newest(&evs, "Learner", "remove");
    assert_eq!(removed["status"], "success", "{removed}");
    assert_eq!(
        removed["changeId"],
        newest(&evs, "User", "delete")["changeId"]
    );

    // The group itself is untouched by either.
    s.get(&format!("/Groups/{g}")).expect(200);
}

#[test]
fn background_remapping_survives_kill_9() {
    let mut s = LmsServer::start_with(&["--drain-batch", "10", "--drain-delay-ms", "20"]);
    const N: usize = 300;
    let ids = bulk_users(&s, N);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let g = s.create_group("Old Cohort", &refs);
    wait_synced(&s);
    assert_eq!(team_names(&learner(&s, &ids[N - 1])), ["Old Cohort"]);

    // Rename, and kill the server while the re-mapping drains.
    s.patch(
        &format!("/Groups/{g}"),
        &patch_ops(json!([{"op": "replace", "path": "displayName", "value": "New Cohort"}])),
    )
    .expect(204);
    let rename = events(&s, "limit=1000")
        .into_iter()
        .find(|e| e["resourceType"] == "Group" && e["resourceId"] == g.as_str())
        .expect("the rename's Group event");
    assert_eq!(rename["action"], "update", "{rename}");
    // Let the first batch commit, so that the kill lands between batches.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !events(&s, "limit=1")
        .first()
        .is_some_and(|e| e["resourceType"] == "Learner" && touches(e, "team", "new", "New Cohort"))
    {
        assert!(Instant::now() < deadline, "no re-mapping batch within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    s.kill9();
    // 30 batches with 20 ms between them cannot all be done yet.
    let status = s.cli_json(&["sync", "status", "--json"]);
    assert!(
        status["pending"].as_u64().is_some_and(|p| p > 0),
        "the re-mapping finished before the kill, so the crash was not \
         exercised: {status}"
    );
    assert_eq!(
        status["tasks"][0]["work"],
        json!({"remap": "renamed", "group": g}),
        "{status}"
    );

    s.restart();
    wait_synced(&s);
    let new_team = item("New Cohort", &[&from_group(&g)]);
    for id in &ids {
        let l = learner(&s, id);
        assert_learner(
            &l,
            "active",
            &[mapped_role()],
            std::slice::from_ref(&new_team),
        );
    }
    // No batch was applied twice: for every member, one Learner event grants
    // the new team, under the rename's change id.
    for id in &ids {
        let evs = user_events(&s, id);
        let granted = granting_team(&evs, "New Cohort");
        assert_eq!(
            granted.len(),
            1,
            "{id}: {}",
            serde_json::to_string_pretty(&evs).unwrap()
        );
        assert!(
            touches(granted[0], "team", "old", "Old Cohort"),
            "{}",
            granted[0]
        );
        assert_eq!(granted[0]["changeId"], rename["changeId"], "{}", granted[0]);
    }
}

#[test]
fn members_who_leave_during_a_re_mapping_keep_no_team() {
    // Small batches with pauses, so the requests below land between them.
    let s = LmsServer::start_with(&["--drain-batch", "10", "--drain-delay-ms", "20"]);
    let mut ids = bulk_users(&s, 200);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let g = s.create_group("Old Cohort", &refs);
    wait_synced(&s);

    s.patch(
        &format!("/Groups/{g}"),
        &patch_ops(json!([{"op": "replace", "path": "displayName", "value": "New Cohort"}])),
    )
    .expect(204);
    // The drain goes in id order: remove every other member from the end,
    // so removals keep landing on batches that are about to be applied
    // (and planned before the removal).
    ids.sort();
    let (mut left, mut stayed) = (Vec::new(), Vec::new());
    for (i, id) in ids.iter().enumerate().rev() {
        if i % 2 == 0 {
            entra_remove_member(&s, &g, id);
            left.push(id);
        } else {
            stayed.push(id);
        }
    }
    let status = wait_synced(&s);
    assert!(status["tasks"].as_array().unwrap().is_empty(), "{status}");

    let new_team = item("New Cohort", &[&from_group(&g)]);
    for id in left {
        assert_learner(&learner(&s, id), "active", &[mapped_role()], &[]);
    }
    for id in stayed {
        assert_learner(
            &learner(&s, id),
            "active",
            &[mapped_role()],
            std::slice::from_ref(&new_team),
        );
    }
}

#[test]
fn admin_token_is_separate_and_tenants_are_isolated() {
    let s = LmsServer::start();
    let u = s.create_user("alice");
    let learner_url = s.admin_url(&format!("/admin/v1/learners/{u}"));
    assert_eq!(learner(&s, &u)["status"], "active");

    // The SCIM token, a wrong token and no token are refused on /admin/v1.
    for token in [Some(s.token.as_str()), Some("wrong"), None] {
        s.send_as(token, "GET", &learner_url, None).expect(401);
        s.send_as(token, "GET", &s.admin_url("/admin/v1/sync"), None)
            .expect(401);
        s.send_as(
            token,
            "POST",
            &format!("{learner_url}/teams"),
            Some(&json!({"name": "Sneaky"})),
        )
        .expect(401);
    }
    assert_eq!(team_names(&learner(&s, &u)), Vec::<String>::new());
    // The admin token is refused on SCIM.
    s.send_as(Some(&s.admin_token), "GET", &s.url("/Users"), None)
        .expect(401);
    s.send_as(
        Some(&s.admin_token),
        "GET",
        &s.url(&format!("/Users/{u}")),
        None,
    )
    .expect(401);
    // Unknown learners are 404.
    s.admin_get("/admin/v1/learners/no-such-id").expect(404);

    // A second tenant sees none of the first one's learners or events.
    let second = s.cli_json(&["tenant", "add", "second", "--json"]);
    assert_eq!(second["name"], "second", "{second}");
    let scim2 = second["scimToken"].as_str().expect("scimToken").to_string();
    let admin2 = second["adminToken"]
        .as_str()
        .expect("adminToken")
        .to_string();
    assert_ne!(scim2, admin2);
    s.send_as(Some(&admin2), "GET", &learner_url, None)
        .expect(404);
    s.send_as(Some(&scim2), "GET", &learner_url, None)
        .expect(401);
    let r = s
        .send_as(Some(&admin2), "GET", &s.admin_url("/admin/v1/events"), None)
        .expect(200);
    assert_eq!(r.json["events"], json!([]), "{}", r.text);
    // Its own users are its own learners.
    let r = s
        .send_as(
            Some(&scim2),
            "POST",
            &s.url("/Users"),
            Some(&json!({"schemas": [USER_SCHEMA], "userName": "bob"})),
        )
        .expect(201);
    let bob = id_of(&r);
    let bob_url = s.admin_url(&format!("/admin/v1/learners/{bob}"));
    let r = s.send_as(Some(&admin2), "GET", &bob_url, None).expect(200);
    assert_eq!(r.json["userName"], "bob");
    s.admin_get(&format!("/admin/v1/learners/{bob}"))
        .expect(404);
    // The second tenant's admin token cannot grant to the first's learner.
    s.send_as(
        Some(&admin2),
        "POST",
        &format!("{learner_url}/teams"),
        Some(&json!({"name": "Sneaky"})),
    )
    .expect(404);
    assert_eq!(team_names(&learner(&s, &u)), Vec::<String>::new());
}

#[test]
fn a_failed_request_is_in_the_sync_log() {
    let s = LmsServer::start();
    let u = s.create_user("dup");
    s.post(
        "/Users",
        &json!({"schemas": [USER_SCHEMA], "userName": "dup"}),
    )
    .expect_error(409, Some("uniqueness"));

    let failed = events(&s, "failed=true");
    assert_eq!(failed.len(), 1, "{failed:?}");
    let f = &failed[0];
    assert_eq!(f["status"], "failure", "{f}");
    assert_eq!(f["reason"], "uniqueness", "{f}");
    assert_eq!(f["resourceType"], "User", "{f}");
    assert_eq!(f["action"], "create", "{f}");
    assert!(
        f["requestId"].as_str().is_some_and(|r| !r.is_empty()),
        "{f}"
    );
    assert!(f["changeId"].as_str().is_some_and(|r| !r.is_empty()), "{f}");
    assert!(f["time"].as_str().is_some_and(|t| !t.is_empty()), "{f}");

    // Nothing of the failed request stayed: one user, one learner created.
    assert_eq!(s.count("/Users", r#"userName eq "dup""#), 1);
    let all = events(&s, "limit=100");
    let learner_creates: Vec<_> = all
        .iter()
        .filter(|e| e["resourceType"] == "Learner" && e["action"] == "create")
        .collect();
    assert_eq!(learner_creates.len(), 1, "{all:?}");
    assert_eq!(learner_creates[0]["resourceId"], u.as_str());
    // Newest first: the failure comes before the successful create.
    assert_eq!(all[0]["id"], f["id"], "{all:?}");
    // The successful create is logged too, under its own change id.
    let creates: Vec<_> = all
        .iter()
        .filter(|e| e["resourceType"] == "User" && e["action"] == "create")
        .collect();
    assert_eq!(creates.len(), 2, "{all:?}");
    assert_eq!(creates[1]["status"], "success", "{}", creates[1]);
    assert_eq!(creates[1]["resourceId"], u.as_str());
    assert_eq!(creates[1]["changeId"], learner_creates[0]["changeId"]);
    assert_ne!(creates[1]["changeId"], f["changeId"]);
    assert_eq!(events(&s, "limit=1").len(), 1);

    // `since` bounds the events by time.
    assert!(events(&s, "since=2999-01-01T00:00:00Z").is_empty());
    assert_eq!(
        events(&s, "since=2000-01-01T00:00:00Z&limit=100").len(),
        all.len()
    );
}

#[test]
fn cli_prints_events_and_sync_status_as_json() {
    let s = LmsServer::start();
    let carol = s.create_user("carol");
    let dave = s.create_user("dave");
    s.create_group("Readers", &[&carol]);
    s.post(
        "/Users",
        &json!({"schemas": [USER_SCHEMA], "userName": "carol"}),
    )
    .expect(409);

    // The command line prints what the admin API answers.
    let cli = s.cli_json(&["events", "--tenant", "default", "--json"]);
    let cli_events = cli["events"].as_array().expect("events").clone();
    let api_events = events(&s, "limit=100");
    let ids = |evs: &[Value]| -> Vec<Value> { evs.iter().map(|e| e["id"].clone()).collect() };
    assert_eq!(ids(&cli_events), ids(&api_events));
    assert_eq!(cli_events, api_events);

    // --user by userName: only carol's events, her learner's included.
    let cli = s.cli_json(&["events", "--tenant", "default", "--user", "carol", "--json"]);
    let carols = cli["events"].as_array().expect("events");
    assert!(!carols.is_empty());
    assert!(
        carols
            .iter()
            .all(|e| e["resourceId"] == carol.as_str() || e["resourceName"] == "carol"),
        "{carols:?}"
    );
    assert!(
        carols.iter().all(|e| e["resourceId"] != dave.as_str()),
        "{carols:?}"
    );
    let joined = granting_team(carols, "Readers");
    assert_eq!(joined.len(), 1, "{carols:?}");

    // --failed: the duplicate.
    let cli = s.cli_json(&["events", "--tenant", "default", "--failed", "--json"]);
    let failed = cli["events"].as_array().expect("events");
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["reason"], "uniqueness");
    // --since in the future: nothing.
    let cli = s.cli_json(&[
        "events",
        "--tenant",
        "default",
        "--since",
        "2999-01-01T00:00:00Z",
        "--json",
    ]);
    assert_eq!(cli["events"], json!([]));

    // Sync status, overall.
    wait_synced(&s);
    let status = s.cli_json(&["sync", "status", "--json"]);
    assert_eq!(status["pending"], 0, "{status}");
}
