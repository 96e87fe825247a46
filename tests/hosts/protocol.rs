//! The SCIM protocol (RFC 7644): discovery, CRUD of users and groups,
//! conflicts, unknown ids and the error shape.

use serde_json::{Value, json};

use crate::support::{
    ENTERPRISE, GROUP_SCHEMA, Host, USER_SCHEMA, id_of, member_ids, resources, str_of, unique,
};

const SPC: &str = "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig";

/// `/ServiceProviderConfig`, `/Schemas` and `/ResourceTypes` describe what
/// the engine does, without authentication problems or host-specific gaps.
pub fn discovery(h: &Host) {
    let r = h.get("/ServiceProviderConfig").expect(200);
    assert!(
        r.header("content-type")
            .unwrap_or("")
            .starts_with("application/scim+json"),
        "{:?}",
        r.headers
    );
    let spc = &r.json;
    assert_eq!(spc["schemas"], json!([SPC]), "{spc}");
    for feature in ["patch", "filter", "etag", "bulk", "sort"] {
        assert_eq!(spc[feature]["supported"], true, "{feature}: {spc}");
    }
    assert!(
        spc["filter"]["maxResults"].as_u64().is_some_and(|n| n > 0),
        "{spc}"
    );
    // What the host tells the engine about the request: its base URL (from
    // the Host header) and its body limit.
    assert_eq!(
        spc["meta"]["location"],
        format!("{}/ServiceProviderConfig", h.base),
        "{spc}"
    );
    assert!(
        spc["bulk"]["maxPayloadSize"]
            .as_u64()
            .is_some_and(|n| n > 0),
        "{spc}"
    );
    assert!(
        spc["authenticationSchemes"]
            .as_array()
            .is_some_and(|a| !a.is_empty()),
        "{spc}"
    );

    let r = h.get("/Schemas").expect(200);
    let schemas = resources(&r);
    let ids: Vec<String> = schemas.iter().map(|s| str_of(s, "id")).collect();
    for want in [USER_SCHEMA, GROUP_SCHEMA, ENTERPRISE] {
        assert!(ids.iter().any(|i| i == want), "{want} not in {ids:?}");
    }
    assert_eq!(r.json["totalResults"], ids.len(), "{}", r.text);
    let user = h.get(&format!("/Schemas/{USER_SCHEMA}")).expect(200).json;
    let user_name = user["attributes"]
        .as_array()
        .and_then(|a| a.iter().find(|a| a["name"] == "userName"))
        .unwrap_or_else(|| panic!("no userName attribute: {user}"));
    assert_eq!(user_name["uniqueness"], "server", "{user_name}");
    assert_eq!(user_name["required"], true, "{user_name}");
    h.get("/Schemas/urn:example:no-such-schema")
        .expect_error(404, None);

    let r = h.get("/ResourceTypes").expect(200);
    let types = resources(&r);
    let find = |name: &str| -> Value {
        types
            .iter()
            .find(|t| t["name"] == name)
            .unwrap_or_else(|| panic!("no {name} resource type: {}", r.text))
            .clone()
    };
    let users = find("User");
    assert_eq!(users["endpoint"], "/Users", "{users}");
    assert_eq!(users["schema"], USER_SCHEMA, "{users}");
    assert_eq!(
        users["schemaExtensions"][0]["schema"], ENTERPRISE,
        "{users}"
    );
    let groups = find("Group");
    assert_eq!(groups["endpoint"], "/Groups", "{groups}");
    assert_eq!(groups["schema"], GROUP_SCHEMA, "{groups}");
    let one = h.get("/ResourceTypes/User").expect(200).json;
    assert_eq!(one["endpoint"], "/Users", "{one}");
}

/// Create, read, replace, delete a user; what PUT leaves out is gone.
pub fn users_crud(h: &Host) {
    let name = unique("crud.user");
    let r = h
        .post(
            "/Users",
            &json!({
                "schemas": [USER_SCHEMA, ENTERPRISE],
                "userName": name,
                "externalId": format!("ext-{name}"),
                "displayName": "Barbara Jensen",
                "nickName": "Babs",
                "title": "Tour Guide",
                "name": {"givenName": "Barbara", "familyName": "Jensen"},
                "emails": [{"value": format!("{name}@example.com"), "type": "work", "primary": true}],
                "active": true,
                ENTERPRISE: {"department": "Tours"},
            }),
        )
        .expect(201);
    let id = id_of(&r);
    let created = r.json.clone();
    assert_eq!(created["userName"], name.as_str(), "{created}");
    assert_eq!(created["meta"]["resourceType"], "User", "{created}");
    let location = str_of(&created["meta"], "location");
    assert_eq!(location, format!("{}/Users/{id}", h.base));
    assert_eq!(
        r.header("location"),
        Some(location.as_str()),
        "{:?}",
        r.headers
    );
    assert!(created["meta"]["created"].is_string(), "{created}");
    assert!(created.get("password").is_none(), "{created}");

    let got = h.get(&format!("/Users/{id}")).expect(200).json;
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["externalId"], format!("ext-{name}"));
    assert_eq!(got["nickName"], "Babs");
    assert_eq!(got["name"]["givenName"], "Barbara");
    assert_eq!(got[ENTERPRISE]["department"], "Tours");
    assert_eq!(got["active"], true);

    // PUT replaces every client attribute: nickName and the extension go.
    let r = h
        .put(
            &format!("/Users/{id}"),
            &json!({
                "schemas": [USER_SCHEMA],
                "userName": name,
                "externalId": format!("ext-{name}"),
                "displayName": "Barbara J.",
                "title": "Lead Guide",
                "active": true,
            }),
        )
        .expect(200);
    assert_eq!(r.json["id"], id.as_str());
    let got = h.get(&format!("/Users/{id}")).expect(200).json;
    assert_eq!(got["displayName"], "Barbara J.", "{got}");
    assert_eq!(got["title"], "Lead Guide", "{got}");
    assert!(got.get("nickName").is_none(), "{got}");
    assert!(got.get(ENTERPRISE).is_none(), "{got}");
    assert_eq!(got["meta"]["created"], created["meta"]["created"], "{got}");

    h.delete(&format!("/Users/{id}")).expect(204);
    h.get(&format!("/Users/{id}")).expect_error(404, None);
    h.delete(&format!("/Users/{id}")).expect_error(404, None);
    let (names, total) = h.user_names(&format!("userName eq \"{name}\""));
    assert_eq!((names.len(), total), (0, 0));
}

/// Create, read, replace, delete a group; members are users of the tenant,
/// and a user lists its groups.
pub fn groups_crud(h: &Host) {
    let u1 = h.create_user(&unique("crud.member1"));
    let u2 = h.create_user(&unique("crud.member2"));
    let name = unique("Crud Group");
    let r = h
        .post(
            "/Groups",
            &json!({"schemas": [GROUP_SCHEMA], "displayName": name, "members": [{"value": u1}]}),
        )
        .expect(201);
    let gid = id_of(&r);
    assert_eq!(r.json["meta"]["resourceType"], "Group", "{}", r.text);
    assert_eq!(
        r.header("location"),
        Some(format!("{}/Groups/{gid}", h.base).as_str()),
        "{:?}",
        r.headers
    );

    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(g["displayName"], name.as_str());
    assert_eq!(member_ids(&g), std::slice::from_ref(&u1));
    let u = h.get(&format!("/Users/{u1}")).expect(200).json;
    let groups: Vec<String> = u["groups"]
        .as_array()
        .unwrap_or_else(|| panic!("no groups on a member: {u}"))
        .iter()
        .map(|g| str_of(g, "value"))
        .collect();
    assert_eq!(groups, std::slice::from_ref(&gid), "{u}");

    let renamed = unique("Crud Group Renamed");
    let r = h
        .put(
            &format!("/Groups/{gid}"),
            &json!({"schemas": [GROUP_SCHEMA], "displayName": renamed, "members": [{"value": u2}]}),
        )
        .expect(200);
    assert_eq!(r.json["displayName"], renamed.as_str(), "{}", r.text);
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(g["displayName"], renamed.as_str());
    assert_eq!(member_ids(&g), std::slice::from_ref(&u2));
    let u = h.get(&format!("/Users/{u1}")).expect(200).json;
    assert!(u["groups"].as_array().is_none_or(|g| g.is_empty()), "{u}");

    h.delete(&format!("/Groups/{gid}")).expect(204);
    h.get(&format!("/Groups/{gid}")).expect_error(404, None);
    // The members stay.
    h.get(&format!("/Users/{u2}")).expect(200);
}

/// A second user with the same userName, in any case, is a 409 with
/// scimType `uniqueness`; renaming onto a taken name too.
pub fn duplicate_user_name_is_a_conflict(h: &Host) {
    let name = unique("dup.user");
    let id = h.create_user(&name);
    for taken in [name.clone(), name.to_uppercase()] {
        h.post(
            "/Users",
            &json!({"schemas": [USER_SCHEMA], "userName": taken}),
        )
        .expect_error(409, Some("uniqueness"));
    }
    let other = h.create_user(&unique("dup.other"));
    h.put(
        &format!("/Users/{other}"),
        &json!({"schemas": [USER_SCHEMA], "userName": name}),
    )
    .expect_error(409, Some("uniqueness"));
    let (names, total) = h.user_names(&format!("userName eq \"{name}\""));
    assert_eq!(total, 1, "{names:?}");
    h.get(&format!("/Users/{id}")).expect(200);
}

/// Every method on an id that is not there: 404 in the SCIM error shape.
pub fn unknown_ids_are_not_found(h: &Host) {
    let user = json!({"schemas": [USER_SCHEMA], "userName": unique("ghost")});
    let group = json!({"schemas": [GROUP_SCHEMA], "displayName": unique("Ghosts")});
    let patch = json!([{"op": "replace", "path": "displayName", "value": "x"}]);
    for (endpoint, body) in [("/Users", &user), ("/Groups", &group)] {
        let path = format!("{endpoint}/6f1c2b8e-0000-4000-8000-000000000000");
        h.get(&path).expect_error(404, None);
        h.put(&path, body).expect_error(404, None);
        h.patch(&path, patch.clone()).expect_error(404, None);
        h.delete(&path).expect_error(404, None);
    }
    h.test_api("GET", "/learners/6f1c2b8e-0000-4000-8000-000000000000")
        .expect(404);
}

/// Malformed requests are 400s in the SCIM error shape, with the scimType
/// RFC 7644 §3.12 gives them.
pub fn bad_requests_are_scim_errors(h: &Host) {
    // Not JSON.
    h.raw("POST", "/Users", "{\"userName\": ")
        .expect_error(400, Some("invalidSyntax"));
    // No userName.
    h.post(
        "/Users",
        &json!({"schemas": [USER_SCHEMA], "displayName": "x"}),
    )
    .expect_error(400, Some("invalidValue"));
    // A filter that does not parse.
    h.get("/Users?filter=userName%20eq")
        .expect_error(400, Some("invalidFilter"));
    // A PATCH op that is not one.
    let id = h.create_user(&unique("bad.patch"));
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "frobnicate", "path": "title", "value": "x"}]),
    )
    .expect_error(400, Some("invalidSyntax"));
}
