//! Writes over HTTP: PATCH, entity tags and preconditions, concurrent
//! clients, Bulk.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::Server;

fn patch_op(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn member_count(s: &Server, group: &str) -> usize {
    s.get(&format!("/Groups/{group}")).expect(200).json["members"]
        .as_array()
        .map_or(0, Vec::len)
}

#[test]
fn patch_user_and_group_over_http() {
    let s = Server::start();
    let u = s.create_user("entra-user");
    let r = s
        .patch(
            &format!("/Users/{u}"),
            &patch_op(json!([
                {"op": "Replace", "path": "active", "value": "False"},
                {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"}
            ])),
        )
        .expect(200);
    assert_eq!(r.json["active"], false);
    assert_eq!(r.json["phoneNumbers"][0]["type"], "mobile");
    assert_eq!(r.header("etag"), Some("W/\"2\""));

    let g = s.create_group("Teachers", &[]);
    let r = s
        .patch(
            &format!("/Groups/{g}"),
            &patch_op(
                json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": u}]}]),
            ),
        )
        .expect(204);
    assert_eq!(r.text, "");
    assert!(r.header("etag").is_some());
    assert_eq!(member_count(&s, &g), 1);
    // Entra's removal with a value list removes that member only.
    let other = s.create_user("other");
    s.patch(
        &format!("/Groups/{g}"),
        &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": other}]}])),
    )
    .expect(204);
    s.patch(
        &format!("/Groups/{g}"),
        &patch_op(
            json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": u}]}]),
        ),
    )
    .expect(204);
    let members = s.get(&format!("/Groups/{g}")).json["members"].clone();
    assert_eq!(members.as_array().unwrap().len(), 1);
    assert_eq!(members[0]["value"], other);
    // A failing PATCH changes nothing.
    s.patch(
        &format!("/Groups/{g}"),
        &patch_op(json!([
            {"op": "Remove", "path": "members"},
            {"op": "Add", "path": "members", "value": [{"value": "no-such-user"}]}
        ])),
    )
    .expect_error(400, Some("invalidValue"));
    assert_eq!(member_count(&s, &g), 1);
}

#[test]
fn entity_tags_and_preconditions() {
    let s = Server::start();
    let u = s.create_user("etag");
    let path = format!("/Users/{u}");
    let r = s.get(&path).expect(200);
    let tag = r.header("etag").unwrap().to_string();
    assert_eq!(r.json["meta"]["version"], tag);
    let r = s.send("GET", &path, None, &[("if-none-match", &tag)]);
    assert_eq!(r.status, 304);
    assert_eq!(r.text, "");
    let changed = s
        .send(
            "PUT",
            &path,
            Some(&json!({"userName": "etag", "title": "v2"})),
            &[("if-match", &tag)],
        )
        .expect(200);
    let new_tag = changed.header("etag").unwrap().to_string();
    assert_ne!(new_tag, tag);
    // Stale tags: 412, and nothing changes.
    s.send(
        "PATCH",
        &path,
        Some(&patch_op(
            json!([{"op": "replace", "path": "title", "value": "v3"}]),
        )),
        &[("if-match", &tag)],
    )
    .expect_error(412, None);
    s.send(
        "PUT",
        &path,
        Some(&json!({"userName": "etag"})),
        &[("if-match", &tag)],
    )
    .expect_error(412, None);
    s.send("DELETE", &path, None, &[("if-match", &tag)])
        .expect_error(412, None);
    assert_eq!(s.get(&path).json["title"], "v2");
    assert_eq!(
        s.send("GET", &path, None, &[("if-none-match", &tag)])
            .status,
        200
    );
    s.send("DELETE", &path, None, &[("if-match", &new_tag)])
        .expect(204);
    assert_eq!(
        s.get("/ServiceProviderConfig").json["etag"]["supported"],
        true
    );
}

#[test]
fn concurrent_member_patches_lose_nothing() {
    let s = Arc::new(Server::start());
    let g = s.create_group("Busy", &[]);
    let users: Vec<String> = (0..120).map(|i| s.create_user(&format!("c{i}"))).collect();
    let users = Arc::new(users);
    let threads: Vec<_> = (0..12)
        .map(|t| {
            let (s, users, g) = (s.clone(), users.clone(), g.clone());
            std::thread::spawn(move || {
                for i in (t..users.len()).step_by(12) {
                    s.patch(
                        &format!("/Groups/{g}"),
                        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": users[i]}]}])),
                    )
                    .expect(204);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(member_count(&s, &g), 120);
    // Every PATCH bumped the version exactly once.
    assert_eq!(
        s.get(&format!("/Groups/{g}")).json["meta"]["version"],
        "W/\"121\""
    );
}

#[test]
fn concurrent_conditional_writes_let_exactly_one_win() {
    let s = Arc::new(Server::start());
    let u = s.create_user("contended");
    let path = format!("/Users/{u}");
    let tag = s.get(&path).header("etag").unwrap().to_string();
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let (s, path, tag) = (s.clone(), path.clone(), tag.clone());
            std::thread::spawn(move || {
                s.send(
                    "PATCH",
                    &path,
                    Some(&patch_op(
                        json!([{"op": "replace", "path": "title", "value": format!("writer {i}")}]),
                    )),
                    &[("if-match", &tag)],
                )
                .status
            })
        })
        .collect();
    let statuses: Vec<u16> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        statuses.iter().filter(|s| **s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 412).count(),
        9,
        "{statuses:?}"
    );
    assert_eq!(s.get(&path).json["meta"]["version"], "W/\"2\"");
}

#[test]
fn bulk_over_http() {
    let s = Server::start_with(&["--max-body-bytes", "200000"]);
    let r = s
        .post(
            "/Bulk",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
                "failOnErrors": 5,
                "Operations": [
                    {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {"displayName": "Bulk group", "members": [{"value": "bulkId:u1"}, {"value": "bulkId:u2"}]}},
                    {"method": "POST", "path": "/Users", "bulkId": "u1", "data": {"userName": "bulk1"}},
                    {"method": "POST", "path": "/Users", "bulkId": "u2", "data": {"userName": "bulk2"}},
                    {"method": "POST", "path": "/Users", "bulkId": "dup", "data": {"userName": "BULK1"}}
                ]
            }),
        )
        .expect(200);
    let statuses: Vec<&str> = r.json["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["201", "201", "201", "409"]);
    let g = r.json["Operations"][0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(member_count(&s, &g), 2);
    let spc = s.get("/ServiceProviderConfig").json;
    assert_eq!(spc["bulk"]["supported"], true);
    assert_eq!(spc["bulk"]["maxOperations"], 1000);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 200000);
    // Over the payload limit: 413 before anything runs.
    let ops: Vec<Value> = (0..2000)
        .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("b{i}"), "data": {"userName": format!("big{i}")}}))
        .collect();
    s.post("/Bulk", &json!({"Operations": ops}))
        .expect_error(413, None);
    assert_eq!(s.count("/Users", r#"userName sw "big""#), 0);
}
