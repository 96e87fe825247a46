//! Bulk: references in any order, cycles, failOnErrors, per-operation
//! atomicity and limits.

use serde_json::{Value, json};

use crate::testkit::Fixture;

fn bulk(f: &mut Fixture, ops: Value, fail_on_errors: Option<u64>) -> (u16, Value) {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
        "Operations": ops,
    });
    if let Some(n) = fail_on_errors {
        body["failOnErrors"] = json!(n);
    }
    f.call("POST", "/Bulk", Some(body))
}

fn statuses(resp: &Value) -> Vec<String> {
    resp["Operations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["status"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn creates_with_references_in_any_order() {
    let mut f = Fixture::new();
    // The group refers to a user created by a later operation.
    let (status, resp) = bulk(
        &mut f,
        json!([
            {"method": "POST", "path": "/Groups", "bulkId": "g", "data": {
                "displayName": "Tour Guides", "members": [{"type": "User", "value": "bulkId:u"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "u", "data": {"userName": "alice"}},
            {"method": "PATCH", "path": "/Users/bulkId:u", "data": {
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
                "Operations": [{"op": "replace", "path": "title", "value": "Guide"}]}}
        ]),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        resp["schemas"][0],
        "urn:ietf:params:scim:api:messages:2.0:BulkResponse"
    );
    assert_eq!(statuses(&resp), ["201", "201", "200"]);
    let ops = resp["Operations"].as_array().unwrap();
    assert_eq!(ops[0]["bulkId"], "g");
    assert!(ops[1]["location"].as_str().unwrap().contains("/Users/"));
    assert_eq!(ops[1]["version"], "W/\"1\"");
    let user_id = ops[1]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    let group_id = ops[0]["location"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap()
        .to_string();
    assert_eq!(f.member_ids(&group_id), [user_id.as_str()]);
    assert_eq!(
        f.ok("GET", &format!("/Users/{user_id}"), None)["title"],
        "Guide"
    );
}

#[test]
fn cycles_and_unknown_references_fail_with_409() {
    let mut f = Fixture::new();
    let (_, resp) = bulk(
        &mut f,
        json!([
            {"method": "POST", "path": "/Groups", "bulkId": "a", "data": {"displayName": "A", "members": [{"value": "bulkId:b"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "b", "data": {"displayName": "B", "members": [{"value": "bulkId:a"}]}},
            {"method": "POST", "path": "/Groups", "bulkId": "c", "data": {"displayName": "C", "members": [{"value": "bulkId:nope"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "ok", "data": {"userName": "fine"}}
        ]),
        None,
    );
    assert_eq!(statuses(&resp), ["409", "409", "409", "201"]);
    let detail = resp["Operations"][0]["response"]["detail"]
        .as_str()
        .unwrap();
    assert!(detail.contains("Circular"), "{detail}");
    assert!(f.names("/Groups").is_empty());
}

#[test]
fn each_operation_is_atomic_and_fail_on_errors_stops() {
    let mut f = Fixture::new();
    let existing = f.user("taken", json!({}));
    let (_, resp) = bulk(
        &mut f,
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "1", "data": {"userName": "one"}},
            // Fails after writing the group row: must leave nothing.
            {"method": "POST", "path": "/Groups", "bulkId": "2", "data": {"displayName": "Half", "members": [{"value": "ghost"}]}},
            {"method": "POST", "path": "/Users", "bulkId": "3", "data": {"userName": "TAKEN"}},
            {"method": "POST", "path": "/Users", "bulkId": "4", "data": {"userName": "never"}}
        ]),
        Some(2),
    );
    assert_eq!(statuses(&resp), ["201", "400", "409"]);
    assert_eq!(resp["Operations"][2]["response"]["scimType"], "uniqueness");
    assert_eq!(f.names("/Users"), ["taken", "one"]);
    assert!(f.names("/Groups").is_empty());
    // An operation referring to a failed one fails too.
    let (_, resp) = bulk(
        &mut f,
        json!([
            {"method": "POST", "path": "/Users", "bulkId": "x", "data": {"userName": "taken"}},
            {"method": "DELETE", "path": "/Users/bulkId:x"},
            {"method": "DELETE", "path": format!("/Users/{existing}"), "version": "W/\"9\""},
            {"method": "DELETE", "path": format!("/Users/{existing}")}
        ]),
        None,
    );
    assert_eq!(statuses(&resp), ["409", "409", "412", "204"]);
}

#[test]
fn malformed_requests_and_limits() {
    let mut f = Fixture::new();
    let (status, err) = f.call(
        "POST",
        "/Bulk",
        Some(json!({"schemas": ["urn:x"], "Operations": []})),
    );
    assert_eq!(
        (status, err["scimType"].as_str()),
        (400, Some("invalidSyntax"))
    );
    let (status, _) = f.call("POST", "/Bulk", Some(json!({"Operations": "nope"})));
    assert_eq!(status, 400);
    let too_many: Vec<Value> = (0..1001)
        .map(|i| json!({"method": "DELETE", "path": format!("/Users/{i}")}))
        .collect();
    let (status, err) = bulk(&mut f, json!(too_many), None);
    assert_eq!(status, 413);
    assert!(err["detail"].as_str().unwrap().contains("1000"));
    let (_, resp) = bulk(
        &mut f,
        json!([
            {"method": "GET", "path": "/Users"},
            {"method": "POST", "path": "/Users/abc", "data": {"userName": "x"}},
            {"method": "POST", "path": "/Bulk", "data": {}},
            {"method": "PUT", "path": "/Users/abc"}
        ]),
        None,
    );
    assert_eq!(statuses(&resp), ["400", "400", "400", "400"]);
    let (status, _) = f.call("GET", "/Bulk", None);
    assert_eq!(status, 405);
}
