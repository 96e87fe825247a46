//! Groups and membership through the relation.

use serde_json::json;

use crate::support::{GROUP_SCHEMA, Server};

#[test]
fn create_get_replace_delete_group_with_members() {
    let s = Server::start();
    let alice = s.create_user("alice");
    let bob = s.create_user("bob");
    let g = s
        .post(
            "/Groups",
            &json!({
                "schemas": [GROUP_SCHEMA, "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group"],
                "displayName": "Teachers",
                "externalId": "t-1",
                "members": [{"value": alice, "display": "ignored"}],
                "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group": {"x": 1},
            }),
        )
        .expect(201);
    let gid = g.json["id"].as_str().unwrap().to_string();
    let m = &g.json["members"][0];
    assert_eq!(m["value"], alice);
    assert_eq!(m["type"], "User");
    assert_eq!(m["display"], "alice");
    assert_eq!(m["$ref"], s.url(&format!("/Users/{alice}")));

    // Membership shows on the user as readOnly `groups`.
    let u = s.get(&format!("/Users/{alice}")).expect(200);
    assert_eq!(u.json["groups"][0]["value"], gid);
    assert_eq!(u.json["groups"][0]["display"], "Teachers");
    assert_eq!(u.json["groups"][0]["type"], "direct");

    // PUT with members replaces the membership.
    let put = s
        .put(
            &format!("/Groups/{gid}"),
            &json!({"displayName": "Teachers", "members": [{"value": bob, "type": "User"}]}),
        )
        .expect(200);
    let members: Vec<_> = put.json["members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].clone())
        .collect();
    assert_eq!(members, vec![json!(bob)]);
    assert!(
        s.get(&format!("/Users/{alice}"))
            .json
            .get("groups")
            .is_none()
    );
    assert_eq!(
        s.get(&format!("/Users/{bob}")).json["groups"][0]["value"],
        gid
    );

    // PUT without members (a rename) leaves the membership alone.
    let put = s
        .put(
            &format!("/Groups/{gid}"),
            &json!({"displayName": "Faculty"}),
        )
        .expect(200);
    assert_eq!(put.json["members"][0]["value"], bob);
    assert_eq!(
        s.get(&format!("/Users/{bob}")).json["groups"][0]["display"],
        "Faculty"
    );

    // excludedAttributes=members leaves them out.
    let r = s
        .get(&format!("/Groups/{gid}?excludedAttributes=members"))
        .expect(200);
    assert!(r.json.get("members").is_none());
    assert_eq!(r.json["displayName"], "Faculty");

    // Deleting a user removes it from the group and bumps the group's version.
    let before = s.get(&format!("/Groups/{gid}")).json["meta"]["version"].clone();
    s.delete(&format!("/Users/{bob}")).expect(204);
    let after = s.get(&format!("/Groups/{gid}")).expect(200);
    assert!(after.json.get("members").is_none(), "{}", after.text);
    assert_ne!(after.json["meta"]["version"], before);

    s.delete(&format!("/Groups/{gid}")).expect(204);
    s.get(&format!("/Groups/{gid}")).expect_error(404, None);
    assert!(
        s.get(&format!("/Users/{alice}"))
            .json
            .get("groups")
            .is_none()
    );
}

#[test]
fn group_display_name_is_unique() {
    let s = Server::start();
    s.create_group("Staff", &[]);
    s.post("/Groups", &json!({"displayName": "staff"}))
        .expect_error(409, Some("uniqueness"));
    s.post("/Groups", &json!({"members": []}))
        .expect_error(400, Some("invalidValue"));
}

#[test]
fn nested_groups_show_as_indirect() {
    let s = Server::start();
    let u = s.create_user("nested");
    let inner = s.create_group("Inner", &[&u]);
    let outer = s.create_group("Outer", &[&inner]);
    let top = s.create_group("Top", &[&outer]);
    let outer_json = s.get(&format!("/Groups/{outer}")).expect(200);
    assert_eq!(outer_json.json["members"][0]["type"], "Group");
    let groups = s.get(&format!("/Users/{u}")).json["groups"].clone();
    assert_eq!(groups[0]["value"], inner);
    assert_eq!(groups[0]["type"], "direct");
    assert_eq!(groups[1]["value"], outer);
    assert_eq!(groups[1]["type"], "indirect");
    // Two levels up: each level is read only when the one below is nested.
    assert_eq!(groups[2]["value"], top);
    assert_eq!(groups[2]["type"], "indirect");
    assert_eq!(groups.as_array().unwrap().len(), 3);
}

#[test]
fn a_request_that_fails_half_way_changes_nothing() {
    let s = Server::start();
    let u = s.create_user("member");
    // The group row is written before the unknown member is found; the
    // whole request must be rolled back.
    let r = s
        .post(
            "/Groups",
            &json!({"displayName": "Half", "members": [{"value": u}, {"value": "no-such-id"}]}),
        )
        .expect_error(400, Some("invalidValue"));
    assert!(r.json["detail"].as_str().unwrap().contains("no-such-id"));
    assert_eq!(s.count("/Groups", r#"displayName eq "Half""#), 0);
    assert!(s.get(&format!("/Users/{u}")).json.get("groups").is_none());
    // The name is free: the unique index entry was rolled back too.
    s.create_group("Half", &[&u]);
}
