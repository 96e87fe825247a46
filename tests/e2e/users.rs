//! Users: create, read, replace, delete, uniqueness, listing and filtering.

use serde_json::json;

use crate::support::{ENTERPRISE, Server, USER_SCHEMA, encode};

#[test]
fn create_get_replace_delete_user() {
    let s = Server::start();
    let created = s
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": "bjensen",
                "externalId": "ext-1",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}],
                "password": "t1meMa$heen",
                ENTERPRISE: {"department": "Tour Operations", "manager": {"value": "m-1"}},
            }),
        )
        .expect(201);
    let id = created.json["id"].as_str().unwrap().to_string();
    let location = created.header("location").unwrap().to_string();
    assert_eq!(location, s.url(&format!("/Users/{id}")));
    assert_eq!(created.json["meta"]["location"], location);
    assert_eq!(created.json["meta"]["resourceType"], "User");
    assert_eq!(created.header("etag"), Some("W/\"1\""));
    assert_eq!(created.json["meta"]["version"], "W/\"1\"");
    assert_eq!(created.json[ENTERPRISE]["department"], "Tour Operations");
    assert!(created.json.get("password").is_none(), "{}", created.text);

    let got = s.get(&format!("/Users/{id}")).expect(200);
    assert_eq!(got.json["userName"], "bjensen");
    assert_eq!(got.json["externalId"], "ext-1");
    assert!(!got.text.contains("t1meMa$heen"));

    // PUT replaces: attributes left out are gone, id/meta from the client are
    // ignored, the id in the URL wins.
    let put = s
        .put(
            &format!("/Users/{id}"),
            &json!({
                "schemas": [USER_SCHEMA],
                "id": "something-else",
                "meta": {"created": "1999-01-01T00:00:00Z"},
                "userName": "bjensen",
                "displayName": "Babs",
            }),
        )
        .expect(200);
    assert_eq!(put.json["id"], id);
    assert_eq!(put.json["displayName"], "Babs");
    assert!(put.json.get("name").is_none());
    assert!(put.json.get(ENTERPRISE).is_none());
    assert_eq!(put.json["meta"]["created"], created.json["meta"]["created"]);
    assert_eq!(put.header("etag"), Some("W/\"2\""));

    // PUT without a required attribute is rejected and changes nothing.
    s.put(
        &format!("/Users/{id}"),
        &json!({"displayName": "No userName"}),
    )
    .expect_error(400, Some("invalidValue"));
    assert_eq!(s.get(&format!("/Users/{id}")).json["displayName"], "Babs");

    s.delete(&format!("/Users/{id}")).expect(204);
    s.get(&format!("/Users/{id}")).expect_error(404, None);
    s.delete(&format!("/Users/{id}")).expect_error(404, None);
    s.put(&format!("/Users/{id}"), &json!({"userName": "x"}))
        .expect_error(404, None);
}

#[test]
fn user_name_is_unique_case_insensitively() {
    let s = Server::start();
    s.create_user("bjensen");
    s.post("/Users", &json!({"userName": "BJensen"}))
        .expect_error(409, Some("uniqueness"));
    assert_eq!(s.count("/Users", "userName pr"), 1);
    // Renaming another user onto a taken name is a conflict too.
    let other = s.create_user("other");
    s.put(&format!("/Users/{other}"), &json!({"userName": "BJENSEN"}))
        .expect_error(409, Some("uniqueness"));
    assert_eq!(s.get(&format!("/Users/{other}")).json["userName"], "other");
}

#[test]
fn filter_user_name_ignores_case_and_inactive_users_are_listed() {
    let s = Server::start();
    let id = s.create_user("bjensen");
    s.post("/Users", &json!({"userName": "gone", "active": false}))
        .expect(201);
    let r = s
        .get(&format!(
            "/Users?filter={}",
            encode(r#"userName eq "BJENSEN""#)
        ))
        .expect(200);
    assert_eq!(r.json["totalResults"], 1);
    assert_eq!(r.json["Resources"][0]["id"], id);
    let r = s
        .get(&format!(
            "/Users?filter={}",
            encode(r#"userName eq "gone""#)
        ))
        .expect(200);
    assert_eq!(r.json["Resources"][0]["active"], false);
    let r = s
        .get(&format!(
            "/Users?filter={}",
            encode(r#"userName eq "nobody""#)
        ))
        .expect(200);
    assert_eq!(r.json["totalResults"], 0);
    assert_eq!(r.json["Resources"], json!([]));
    // `+` in a query string is a space.
    let r = s.get("/Users?filter=userName+eq+%22bjensen%22").expect(200);
    assert_eq!(r.json["totalResults"], 1);
    // And-joined equality filters.
    let f = r#"userName eq "bjensen" and emails.value eq "bjensen@example.com""#;
    assert_eq!(s.count("/Users", f), 1);
    let f = r#"userName eq "bjensen" and active eq false"#;
    assert_eq!(s.count("/Users", f), 0);
    // Entra's unquoted value means the same; a missing one is an error.
    assert_eq!(s.count("/Users", "userName eq BJensen"), 1);
    s.get(&format!("/Users?filter={}", encode("userName eq")))
        .expect_error(400, Some("invalidFilter"));
}

#[test]
fn list_pages_are_stable_and_past_the_end_is_empty() {
    let s = Server::start();
    let ids: Vec<String> = (0..7).map(|i| s.create_user(&format!("user{i}"))).collect();
    let mut seen = Vec::new();
    for start in [1, 4, 7] {
        let r = s
            .get(&format!("/Users?startIndex={start}&count=3"))
            .expect(200);
        assert_eq!(r.json["totalResults"], 7);
        assert_eq!(r.json["startIndex"], start);
        assert!(r.json["itemsPerPage"].is_number());
        for u in r.json["Resources"].as_array().unwrap() {
            seen.push(u["id"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(seen, ids, "pages in creation order, no repeats or gaps");
    let r = s.get("/Users?startIndex=50&count=10").expect(200);
    assert_eq!(r.json["totalResults"], 7);
    assert_eq!(r.json["itemsPerPage"], 0);
    assert_eq!(r.json["Resources"], json!([]));
    let r = s.get("/Users?count=0").expect(200);
    assert_eq!(r.json["totalResults"], 7);
    assert_eq!(r.json["Resources"], json!([]));
    let r = s.get("/Users?startIndex=0&count=2").expect(200);
    assert_eq!(r.json["startIndex"], 1);
    assert_eq!(r.json["Resources"][0]["id"], ids[0]);
    s.get("/Users?count=abc")
        .expect_error(400, Some("invalidValue"));
}

#[test]
fn password_is_never_returned() {
    let s = Server::start();
    let r = s
        .post("/Users", &json!({"userName": "p", "password": "S3cret!pw"}))
        .expect(201);
    let id = r.json["id"].as_str().unwrap().to_string();
    for text in [
        r.text,
        s.get(&format!("/Users/{id}")).text,
        s.get("/Users").text,
        s.get(&format!("/Users/{id}?attributes=password")).text,
        s.put(
            &format!("/Users/{id}"),
            &json!({"userName": "p", "password": "N3w!pw"}),
        )
        .text,
    ] {
        assert!(!text.contains("password"), "{text}");
        assert!(!text.contains("S3cret") && !text.contains("N3w!"), "{text}");
    }
}

#[test]
fn identity_provider_dialects_are_accepted() {
    let s = Server::start();
    // Mixed-case attribute names, "True" strings, nulls and an unknown schema
    // extension as Entra sends them; application/json as content type.
    let body = json!({
        "schemas": [USER_SCHEMA, ENTERPRISE, "urn:example:unknown:1.0"],
        "UserName": "entra@example.com",
        "Active": "True",
        "emails": [{"Primary": "true", "Type": "work", "Value": "entra@example.com"}],
        "name": {"GivenName": "E", "familyName": null},
        "nickName": null,
        "unknownButNull": null,
        ENTERPRISE: {"Department": "R&D"},
        "urn:example:unknown:1.0": {"anything": 1},
    });
    let r = s.raw(
        "POST",
        "/Users?aadOptscim062020",
        body.to_string().into_bytes(),
        &[
            ("authorization", &format!("Bearer {}", s.token)),
            ("content-type", "application/json"),
        ],
    );
    let r = r.expect(201);
    assert_eq!(r.json["userName"], "entra@example.com");
    assert_eq!(r.json["active"], true);
    assert_eq!(r.json["emails"][0]["primary"], true);
    assert_eq!(r.json["emails"][0]["type"], "work");
    assert_eq!(r.json["name"], json!({"givenName": "E"}));
    assert_eq!(r.json[ENTERPRISE]["department"], "R&D");
    assert!(r.json.get("urn:example:unknown:1.0").is_none());

    // An unknown attribute with a value is refused, naming it.
    let r = s
        .post(
            "/Users",
            &json!({"userName": "x", "favouriteColour": "blue"}),
        )
        .expect_error(400, Some("invalidSyntax"));
    assert!(
        r.json["detail"]
            .as_str()
            .unwrap()
            .contains("favouriteColour")
    );
}

#[test]
fn attributes_and_excluded_attributes_project_responses() {
    let s = Server::start();
    let id = s.create_user("proj");
    let r = s
        .get(&format!("/Users/{id}?attributes=userName,name.givenName"))
        .expect(200);
    assert_eq!(
        r.json.as_object().unwrap().keys().collect::<Vec<_>>(),
        vec!["schemas", "id", "userName", "name"]
    );
    assert_eq!(r.json["name"], json!({"givenName": "Given"}));
    let r = s
        .get(&format!("/Users/{id}?excludedAttributes=emails,meta"))
        .expect(200);
    assert!(r.json.get("emails").is_none() && r.json.get("meta").is_none());
    assert_eq!(r.json["userName"], "proj");
}
