//! A request the engine answers with a 4xx after it has already written to
//! the store must leave nothing behind: the host runs each request in one
//! transaction and rolls it back when the answer is an error.
//!
//! Both requests here really write before they fail (read from the engine,
//! `plugin/src`), so a host that commits a failed request's writes, or
//! writes through without a transaction, fails these cases:
//!
//! - `POST /Groups` (`handlers/crud.rs`, `create_resource`) inserts the
//!   group document first (`store.insert`), then adds its members
//!   (`membership::add` → `store.members-add`). A member given with
//!   `"type": "User"` is trusted by `membership::resolve` and only checked by
//!   the host in `members-add`, which answers `missing`: 400 invalidValue,
//!   with the group already inserted.
//! - `PATCH /Groups/{id}` (`patch/mod.rs`) applies its operations in order;
//!   member operations write the membership relation at once
//!   (`patch/apply.rs`, `members`: `membership::remove` →
//!   `store.members-remove`). A first op removing a member is written
//!   before a second op adding an unknown member fails in
//!   `membership::resolve`: 400 invalidValue, with the member removed.
//!
//! Checked against scim-host with its rollback of failed requests turned
//! into a commit (`App::execute`, the `Ok(mut response) =>` arm): both cases
//! fail there, the first finding the ghost group, the second a group
//! without the removed member.

use serde_json::{Value, json};

use crate::support::{
    GROUP_SCHEMA, Host, LEARNER_ROLE, encode, from_group, grants, item, member_ids, resources,
    unique,
};

/// A POST /Groups that inserts the group and then fails on a member leaves
/// no group, no team and no successful event.
pub fn group_create_failing_on_a_member_leaves_nothing(h: &Host) {
    let member = h.create_user(&unique("rollback.member"));
    let name = unique("Ghost Group");
    let before = h.events().len();
    h.post(
        "/Groups",
        &json!({
            "schemas": [GROUP_SCHEMA],
            "displayName": name,
            "members": [
                {"value": member},
                {"value": "6f1c2b8e-0000-4000-8000-00000000dead", "type": "User"}
            ],
        }),
    )
    .expect_error(400, Some("invalidValue"));

    let r = h
        .get(&format!(
            "/Groups?filter={}",
            encode(&format!("displayName eq \"{name}\""))
        ))
        .expect(200);
    assert_eq!(
        r.json["totalResults"], 0,
        "the failed create left its group: {}",
        r.text
    );
    assert!(resources(&r).is_empty(), "{}", r.text);
    let u = h.get(&format!("/Users/{member}")).expect(200).json;
    assert!(
        u["groups"].as_array().is_none_or(|g| g.is_empty()),
        "the failed create left a membership: {u}"
    );
    let l = h.learner(&member);
    assert_eq!(grants(&l, "teams"), [], "{l}");
    assert_eq!(
        grants(&l, "roles"),
        [item("learner", &[LEARNER_ROLE])],
        "{l}"
    );
    let after: Vec<Value> = h.events().into_iter().skip(before).collect();
    let leaked: Vec<&Value> = after
        .iter()
        .filter(|e| {
            e["status"] == "success"
                && (e["resourceType"] == "Group" && e["resourceName"] == name.as_str()
                    || e["resourceId"] == member.as_str())
        })
        .collect();
    assert!(leaked.is_empty(), "events of a failed request: {leaked:?}");
}

/// A PATCH whose first op removes a member (written at once) and whose
/// second op fails leaves the group, its version, the member's team and
/// the sync log as they were.
pub fn patch_failing_after_a_written_op_leaves_nothing(h: &Host) {
    let kept = h.create_user(&unique("rollback.kept"));
    let removed = h.create_user(&unique("rollback.removed"));
    let name = unique("Rollback Group");
    let gid = h.create_group(&name, &[&kept, &removed]);
    let path = format!("/Groups/{gid}");
    let before_doc = h.get(&path).expect(200);
    let version = before_doc.header("etag").expect("ETag on GET").to_string();
    let team = vec![item(&name, &[&from_group(&gid)])];
    assert_eq!(grants(&h.learner(&removed), "teams"), team);
    let before = h.events().len();

    h.patch(
        &path,
        json!([
            {"op": "Replace", "path": "displayName", "value": unique("Never Renamed")},
            {"op": "remove", "path": format!("members[value eq \"{removed}\"]")},
            {"op": "add", "path": "members", "value": [{"value": "6f1c2b8e-0000-4000-8000-00000000dead"}]},
        ]),
    )
    .expect_error(400, Some("invalidValue"));

    let r = h.get(&path).expect(200);
    let mut both = vec![kept.clone(), removed.clone()];
    both.sort();
    assert_eq!(
        member_ids(&r.json),
        both,
        "the failed PATCH's first op was kept: {}",
        r.text
    );
    assert_eq!(r.json["displayName"], name.as_str(), "{}", r.text);
    assert_eq!(
        r.header("etag"),
        Some(version.as_str()),
        "the version moved"
    );
    assert_eq!(grants(&h.learner(&removed), "teams"), team);
    assert_eq!(grants(&h.learner(&kept), "teams"), team);
    let after: Vec<Value> = h.events().into_iter().skip(before).collect();
    let leaked: Vec<&Value> = after
        .iter()
        .filter(|e| {
            e["status"] == "success"
                && [gid.as_str(), kept.as_str(), removed.as_str()]
                    .iter()
                    .any(|id| e["resourceId"] == *id)
        })
        .collect();
    assert!(leaked.is_empty(), "events of a failed request: {leaked:?}");
}
