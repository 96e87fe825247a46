//! Identity-provider dialects over HTTP, with the exact requests Entra ID,
//! Okta and Microsoft's reference tools send: unquoted filter values,
//! unqualified extension names, single-valued complex attributes, and
//! garbled `attributes` parameters refused without changing anything.

use serde_json::json;

use crate::support::{ENTERPRISE, Server, encode};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

#[test]
fn entra_reference_filters_with_unquoted_values() {
    let s = Server::start();
    let boss = s.create_user("boss@example.com");
    let report = s.create_user("bjensen@example.com");
    s.patch(
        &format!("/Users/{report}"),
        &json!({"schemas": [PATCH_OP], "Operations": [
            {"op": "Add", "path": "manager", "value": [{"$ref": format!("{}/Users/{boss}", s.base), "value": boss}]},
            {"op": "Add", "path": "department", "value": "Tours"},
            {"op": "Add", "path": "employeeNumber", "value": "701984"}
        ]}),
    )
    .expect(200);
    let cases: Vec<(String, u64)> = vec![
        ("userName eq bjensen@example.com".into(), 1),
        ("userName eq BJENSEN@example.com".into(), 1),
        (format!("id eq {report} and manager eq {boss}"), 1),
        (format!("id eq {boss} and manager eq {boss}"), 0),
        (format!("manager eq \"{boss}\""), 1),
        (format!("manager ne \"{boss}\""), 0),
        ("manager ne \"someone-else\"".into(), 1),
        ("manager pr".into(), 1),
        ("department eq Tours".into(), 1),
        ("employeeNumber eq 701984".into(), 1),
        ("userName sw b".into(), 2),
        (
            "meta.created gt 2015-10-10T14:38:21.8617979-07:00".into(),
            2,
        ),
    ];
    for (filter, want) in cases {
        assert_eq!(s.count("/Users", &filter), want, "{filter}");
    }
    // Truly malformed filters stay a clear 400.
    for bad in [
        "userName eq",
        "userName eq )",
        "active eq yes",
        "(userName eq x",
    ] {
        s.get(&format!("/Users?filter={}", encode(bad)))
            .expect_error(400, Some("invalidFilter"));
    }
    // The stored manager came from a one-element array.
    let u = s.get(&format!("/Users/{report}")).expect(200);
    assert_eq!(u.json[ENTERPRISE]["manager"]["value"], boss.as_str());
}

#[test]
fn garbled_attributes_are_refused_everywhere() {
    let s = Server::start();
    let id = s.create_user("alice");
    for path in [
        "/Users?attributes=[[[,,,".to_string(),
        format!("/Users?excludedAttributes={}", encode("name..givenName")),
        format!("/Users/{id}?attributes=%5B%5B%5B"),
        "/Groups?attributes=displayName,,members".to_string(),
    ] {
        let r = s.get(&path).expect_error(400, Some("invalidPath"));
        assert!(
            r.json["detail"].as_str().unwrap().contains("element"),
            "{path}: {}",
            r.text
        );
    }
    for body in [
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "attributes": ["[[["]}),
        json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"], "excludedAttributes": "emails,,"}),
    ] {
        s.post("/Users/.search", &body)
            .expect_error(400, Some("invalidPath"));
        s.post("/.search", &body)
            .expect_error(400, Some("invalidPath"));
    }
    // A write with a garbled projection changes nothing.
    s.send(
        "PATCH",
        &format!("/Users/{id}?attributes=[[["),
        Some(&json!({"schemas": [PATCH_OP], "Operations": [{"op": "replace", "path": "title", "value": "Boss"}]})),
        &[],
    )
    .expect_error(400, Some("invalidPath"));
    assert!(
        s.get(&format!("/Users/{id}"))
            .expect(200)
            .json
            .get("title")
            .is_none()
    );
    // Well-formed names the schema does not know are ignored.
    let r = s
        .get(&format!("/Users/{id}?attributes=userName,nope,department"))
        .expect(200);
    assert_eq!(r.json["userName"], "alice");
}
