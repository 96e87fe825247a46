//! Discovery endpoints, and that what they advertise is what validation does.

use serde_json::{Value, json};

use crate::support::{ENTERPRISE, GROUP_SCHEMA, Server, USER_SCHEMA};

fn schema(s: &Server, id: &str) -> Value {
    s.get(&format!("/Schemas/{id}")).expect(200).json
}

fn attrs<'a>(schema: &'a Value, pred: impl Fn(&Value) -> bool + 'a) -> Vec<String> {
    schema["attributes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| pred(a))
        .map(|a| a["name"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn discovery_endpoints_answer_and_refuse_writes() {
    let s = Server::start();
    let spc = s.get("/ServiceProviderConfig").expect(200).json;
    assert_eq!(spc["filter"]["supported"], true);
    assert_eq!(spc["etag"]["supported"], true);
    assert_eq!(spc["bulk"]["maxPayloadSize"], 1024 * 1024);
    assert_eq!(spc["authenticationSchemes"][0]["type"], "oauthbearertoken");

    let rts = s.get("/ResourceTypes").expect(200).json;
    assert_eq!(rts["totalResults"], 2);
    let user = s.get("/ResourceTypes/User").expect(200).json;
    assert_eq!(user["endpoint"], "/Users");
    assert_eq!(user["schemaExtensions"][0]["schema"], ENTERPRISE);

    let schemas = s.get("/Schemas").expect(200).json;
    let ids: Vec<_> = schemas["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].clone())
        .collect();
    assert!(
        ids.contains(&json!(USER_SCHEMA))
            && ids.contains(&json!(GROUP_SCHEMA))
            && ids.contains(&json!(ENTERPRISE))
    );
    s.get("/Schemas/urn:nope").expect_error(404, None);

    for path in ["/ServiceProviderConfig", "/ResourceTypes", "/Schemas"] {
        s.post(path, &json!({})).expect_error(405, None);
        s.send("DELETE", path, None, &[]).expect_error(405, None);
    }
}

#[test]
fn advertised_characteristics_are_enforced() {
    let s = Server::start();
    let user = schema(&s, USER_SCHEMA);

    // Every required attribute is enforced.
    let required = attrs(&user, |a| a["required"] == true);
    assert_eq!(required, vec!["userName"]);
    s.post("/Users", &json!({"displayName": "no user name"}))
        .expect_error(400, Some("invalidValue"));

    // uniqueness: server attributes conflict.
    for name in attrs(&user, |a| a["uniqueness"] == "server") {
        assert_eq!(name, "userName");
        s.create_user("dup");
        s.post("/Users", &json!({name: "DUP"}))
            .expect_error(409, Some("uniqueness"));
    }

    // returned: never attributes never come back.
    let never = attrs(&user, |a| a["returned"] == "never");
    assert_eq!(never, vec!["password"]);
    let r = s
        .post("/Users", &json!({"userName": "n", "password": "pw-123456"}))
        .expect(201);
    assert!(r.json.get("password").is_none());

    // readOnly attributes sent by a client are ignored.
    let read_only = attrs(&user, |a| a["mutability"] == "readOnly");
    assert_eq!(read_only, vec!["groups"]);
    let r = s
        .post(
            "/Users",
            &json!({"userName": "ro", "groups": [{"value": "g-1", "display": "fake"}]}),
        )
        .expect(201);
    assert!(r.json.get("groups").is_none());

    // Every attribute carries the characteristics RFC 7643 §7 requires.
    for s_id in [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE] {
        let sc = schema(&s, s_id);
        for a in sc["attributes"].as_array().unwrap() {
            for key in [
                "name",
                "type",
                "multiValued",
                "required",
                "mutability",
                "returned",
                "uniqueness",
            ] {
                assert!(a.get(key).is_some(), "{s_id} {} lacks {key}", a["name"]);
            }
            if a["type"] == "string" {
                assert!(a["caseExact"].is_boolean(), "{}", a["name"]);
            }
        }
    }

    // The caseExact flags drive filtering.
    let group = schema(&s, GROUP_SCHEMA);
    assert_eq!(
        attrs(&group, |a| a["required"] == true),
        vec!["displayName"]
    );
    let user_name = &user["attributes"].as_array().unwrap()[0];
    assert_eq!(user_name["caseExact"], false);
    assert_eq!(s.count("/Users", r#"userName eq "DUP""#), 1);
}
