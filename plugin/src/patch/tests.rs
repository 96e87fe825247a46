//! PATCH rules and identity-provider dialects, each with the body the
//! provider actually sends.

use serde_json::{Value, json};

use crate::testkit::Fixture;

const ENT: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

fn patch_body(ops: Value) -> Value {
    json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": ops})
}

fn patch(f: &mut Fixture, path: &str, ops: Value) -> (u16, Value) {
    f.call("PATCH", path, Some(patch_body(ops)))
}

#[track_caller]
fn patch_ok(f: &mut Fixture, path: &str, ops: Value) -> Value {
    let (status, body) = patch(f, path, ops);
    assert!(status == 200 || status == 204, "{status} {body}");
    body
}

#[track_caller]
fn patch_err(f: &mut Fixture, path: &str, ops: Value, scim_type: &str) -> Value {
    let (status, body) = patch(f, path, ops);
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some(scim_type)),
        "{body}"
    );
    body
}

fn get(f: &mut Fixture, path: &str) -> Value {
    f.ok("GET", path, None)
}

fn new_user(f: &mut Fixture) -> (String, String) {
    let id = f.user(
        "patchee",
        json!({
            "name": {"givenName": "Pat", "familyName": "Chee"},
            "emails": [{"value": "pat@work.example", "type": "work", "primary": true}],
            "active": true
        }),
    );
    let path = format!("/Users/{id}");
    (id, path)
}

#[test]
fn add_replace_remove_with_and_without_path() {
    let mut f = Fixture::new();
    let (_, u) = new_user(&mut f);
    let body = patch_ok(
        &mut f,
        &u,
        json!([
            {"op": "add", "path": "nickName", "value": "Patty"},
            {"op": "replace", "path": "name.familyName", "value": "Cheese"},
            {"op": "add", "path": "emails", "value": [{"value": "pat@home.example", "type": "home"}]},
            {"op": "remove", "path": "name.givenName"},
        ]),
    );
    assert_eq!(body["nickName"], "Patty");
    assert_eq!(body["name"], json!({"familyName": "Cheese"}));
    assert_eq!(body["emails"].as_array().unwrap().len(), 2);
    assert_eq!(body["meta"]["version"], "W/\"2\"");

    // Path-less replace of a complex attribute updates the named
    // sub-attributes and keeps the others; a multi-valued one is replaced.
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "replace", "value": {
            "name": {"givenName": "P"},
            "emails": [{"value": "only@work.example", "type": "work"}]
        }}]),
    );
    assert_eq!(
        body["name"],
        json!({"familyName": "Cheese", "givenName": "P"})
    );
    assert_eq!(
        body["emails"],
        json!([{"value": "only@work.example", "type": "work"}])
    );

    // Add to a multi-valued attribute merges without duplicates.
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "add", "path": "emails", "value": [{"value": "ONLY@work.example", "type": "work"}]}]),
    );
    assert_eq!(body["emails"].as_array().unwrap().len(), 1);

    // Remove a whole attribute; removing what isn't there is fine.
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "remove", "path": "nickName"}, {"op": "remove", "path": "title"}]),
    );
    assert!(body.get("nickName").is_none());
}

#[test]
fn primary_true_demotes_the_others() {
    let mut f = Fixture::new();
    let (_, u) = new_user(&mut f);
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "add", "path": "emails", "value": [{"value": "new@x.example", "type": "home", "primary": true}]}]),
    );
    let emails = body["emails"].as_array().unwrap();
    assert_eq!(emails[0]["primary"], false);
    assert_eq!(emails[1]["primary"], true);
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "emails[type eq \"work\"].primary", "value": true}]),
    );
    let primaries: Vec<_> = body["emails"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["primary"].clone())
        .collect();
    assert_eq!(primaries, [json!(true), json!(false)]);
}

#[test]
fn errors_name_the_problem_and_change_nothing() {
    let mut f = Fixture::new();
    let (_, u) = new_user(&mut f);
    let before = get(&mut f, &u);
    patch_err(&mut f, &u, json!([{"op": "remove"}]), "noTarget");
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "id", "value": "x"}]),
        "mutability",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "meta.created", "value": "2020-01-01T00:00:00Z"}]),
        "mutability",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "add", "path": "groups", "value": [{"value": "g"}]}]),
        "mutability",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "nope", "value": 1}]),
        "invalidPath",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "emails[type eq \"work\"", "value": "x"}]),
        "invalidPath",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "active", "value": "maybe"}]),
        "invalidValue",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "emails[value co \"zzz\"]", "value": {"value": "y"}}]),
        "noTarget",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "remove", "path": "userName"}]),
        "invalidValue",
    );
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "value": {"id": "someone-else"}}]),
        "mutability",
    );
    // Atomic: the first operation would succeed, the second fails.
    patch_err(
        &mut f,
        &u,
        json!([{"op": "replace", "path": "displayName", "value": "changed"}, {"op": "replace", "path": "nope", "value": 1}]),
        "invalidPath",
    );
    let (status, body) = f.call("PATCH", &u, Some(json!({"Operations": []})));
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidSyntax"))
    );
    let (status, body) = f.call(
        "PATCH",
        &u,
        Some(json!({"Operations": [{"op": "move", "path": "x"}]})),
    );
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidSyntax"))
    );
    assert_eq!(get(&mut f, &u), before);
}

#[test]
fn entra_user_updates() {
    let mut f = Fixture::new();
    let (_, u) = new_user(&mut f);
    // Multi-valued property by value filter, and a single-valued one.
    let body = patch_ok(
        &mut f,
        &u,
        json!([
            {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
            {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
        ]),
    );
    assert_eq!(body["emails"][0]["value"], "updatedEmail@microsoft.com");
    assert_eq!(body["emails"][0]["primary"], true);
    assert_eq!(body["name"]["familyName"], "updatedFamilyName");
    // Disable with a string boolean, in any case.
    for v in [json!("False"), json!("True"), json!("false"), json!(false)] {
        let body = patch_ok(
            &mut f,
            &u,
            json!([{"op": "Replace", "path": "active", "value": v}]),
        );
        assert_eq!(
            body["active"],
            json!(
                v.as_bool()
                    .unwrap_or_else(|| v.as_str().unwrap().eq_ignore_ascii_case("true"))
            )
        );
    }
    // A filtered path that matches nothing creates the element; several
    // operations on the same type build one element.
    let body = patch_ok(
        &mut f,
        &u,
        json!([
            {"op": "Add", "path": "phoneNumbers[type eq \"mobile\"].value", "value": "+1 555 0100"},
            {"op": "Add", "path": "addresses[type eq \"work\"].streetAddress", "value": "1 Main St"},
            {"op": "Add", "path": "addresses[type eq \"work\"].locality", "value": "Springfield"},
            {"op": "Replace", "path": "addresses[type eq \"work\"].postalCode", "value": "12345"}
        ]),
    );
    assert_eq!(
        body["phoneNumbers"],
        json!([{"type": "mobile", "value": "+1 555 0100"}])
    );
    assert_eq!(
        body["addresses"],
        json!([{"type": "work", "streetAddress": "1 Main St", "locality": "Springfield", "postalCode": "12345"}])
    );
    // Path-less add whose keys are attribute paths, with unknown keys in the
    // operation and the message.
    let body = f.ok(
        "PATCH",
        &u,
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"],
            "id": "ignored",
            "Operations": [{
                "op": "Add",
                "name": "addMember",
                "value": {
                    "name.givenName": "Jane",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber": "1234",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department": "R&D",
                    "active": false
                }
            }]
        })),
    );
    assert_eq!(body["name"]["givenName"], "Jane");
    assert_eq!(
        body[ENT],
        json!({"employeeNumber": "1234", "department": "R&D"})
    );
    assert_eq!(body["active"], false);
}

#[test]
fn entra_and_okta_manager_forms() {
    let mut f = Fixture::new();
    let boss = f.user("boss", json!({}));
    let other = f.user("other-boss", json!({}));
    let (_, u) = new_user(&mut f);
    let manager = format!("{ENT}:manager");
    for value in [
        json!(boss),
        json!({"value": boss}),
        json!([{"value": boss}]),
    ] {
        let body = patch_ok(
            &mut f,
            &u,
            json!([{"op": "Add", "path": manager, "value": value}]),
        );
        assert_eq!(body[ENT]["manager"], json!({"value": boss}), "{value}");
    }
    // Removing a different manager leaves this one; removing it by filter
    // or by value list clears it.
    patch_ok(
        &mut f,
        &u,
        json!([{"op": "Remove", "path": format!("{manager}[value eq \"{other}\"]")}]),
    );
    assert_eq!(get(&mut f, &u)[ENT]["manager"]["value"], boss);
    patch_ok(
        &mut f,
        &u,
        json!([{"op": "Remove", "path": format!("{manager}[value eq \"{boss}\"]")}]),
    );
    assert!(get(&mut f, &u).get(ENT).is_none());
    patch_ok(
        &mut f,
        &u,
        json!([{"op": "Replace", "path": manager, "value": {"value": other}}]),
    );
    patch_ok(
        &mut f,
        &u,
        json!([{"op": "Remove", "path": manager, "value": [{"value": other}]}]),
    );
    assert!(get(&mut f, &u).get(ENT).is_none());
}

#[test]
fn role_values_with_embedded_json_are_kept_verbatim() {
    let mut f = Fixture::new();
    let (_, u) = new_user(&mut f);
    let role = r#"{"id":"7a6b","displayName":"Course Author","origin":"Application"}"#;
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "Add", "path": "roles", "value": [{"primary": false, "type": "WindowsAzureActiveDirectoryRole", "display": "Course Author", "value": role}]}]),
    );
    assert_eq!(body["roles"][0]["value"], role);
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "Replace", "path": "roles", "value": role}]),
    );
    assert_eq!(body["roles"], json!([{"value": role}]));
}

#[test]
fn okta_user_and_group_operations() {
    let mut f = Fixture::new();
    let (_, u) = new_user(&mut f);
    let body = patch_ok(
        &mut f,
        &u,
        json!([{"op": "replace", "value": {"active": false}}]),
    );
    assert_eq!(body["active"], false);
    let g = f.group("Okta Group", &[]);
    let gpath = format!("/Groups/{g}");
    let (status, body) = patch(
        &mut f,
        &gpath,
        json!([{"op": "replace", "value": {"id": g, "displayName": "Test SCIMv2"}}]),
    );
    assert_eq!(status, 204, "{body}");
    assert_eq!(get(&mut f, &gpath)["displayName"], "Test SCIMv2");
}

#[test]
fn group_membership_dialects() {
    let mut f = Fixture::new();
    let a = f.user("a", json!({}));
    let b = f.user("b", json!({}));
    let c = f.user("c", json!({}));
    let g = f.group("G", &[]);
    let gp = format!("/Groups/{g}");
    // Entra add, with "$ref": null.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": a}, {"$ref": null, "value": b}]}]),
    );
    // Okta add, with display.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "add", "path": "members", "value": [{"value": c, "display": "c@okta.local"}]}]),
    );
    assert_eq!(f.member_ids(&g), [a.clone(), b.clone(), c.clone()]);
    // Entra remove: only the listed value goes.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": a}]}]),
    );
    assert_eq!(f.member_ids(&g), [b.clone(), c.clone()]);
    // Removing someone who isn't a member is not an error.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "Remove", "path": "members", "value": [{"value": a}]}]),
    );
    // Okta remove by filter.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "remove", "path": format!("members[value eq \"{b}\"]")}]),
    );
    assert_eq!(f.member_ids(&g), [c.as_str()]);
    // Replace with a full list (Okta "push now"), then with an empty one.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "replace", "path": "members", "value": [{"value": a}, {"value": b}]}]),
    );
    assert_eq!(f.member_ids(&g), [a.clone(), b.clone()]);
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "replace", "path": "members", "value": []}]),
    );
    assert!(f.member_ids(&g).is_empty());
    // Members must exist in the tenant; nothing changes when one doesn't.
    patch_err(
        &mut f,
        &gp,
        json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": "ghost"}]}]),
        "invalidValue",
    );
    assert!(f.member_ids(&g).is_empty());
    // Server fills display, type and $ref.
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "add", "path": "members", "value": [{"value": a, "display": "wrong"}]}]),
    );
    let m = &get(&mut f, &gp)["members"][0];
    assert_eq!(
        (m["display"].as_str(), m["type"].as_str()),
        (Some("a"), Some("User"))
    );
    assert!(
        m["$ref"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/Users/{a}"))
    );
    // Remove without a value list removes everyone (RFC 7644 §3.5.2.2).
    patch_ok(&mut f, &gp, json!([{"op": "remove", "path": "members"}]));
    assert!(f.member_ids(&g).is_empty());
    // A filter other than value eq is evaluated against the members.
    let sub = f.group("Sub", &[]);
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "add", "path": "members", "value": [{"value": a}, {"value": sub}]}]),
    );
    patch_ok(
        &mut f,
        &gp,
        json!([{"op": "remove", "path": "members[type eq \"Group\"]"}]),
    );
    assert_eq!(f.member_ids(&g), [a.as_str()]);
}

#[test]
fn group_patch_answers_204_unless_attributes_are_asked_for() {
    let mut f = Fixture::new();
    let a = f.user("a", json!({}));
    let g = f.group("G", &[]);
    let ops = json!([{"op": "add", "path": "members", "value": [{"value": a}]}]);
    let (status, body) = patch(&mut f, &format!("/Groups/{g}"), ops.clone());
    assert_eq!((status, body), (204, Value::Null));
    let (status, body) = patch(
        &mut f,
        &format!("/Groups/{g}?excludedAttributes=members"),
        json!([{"op": "replace", "path": "displayName", "value": "H"}]),
    );
    assert_eq!(status, 200);
    assert_eq!(body["displayName"], "H");
    assert!(body.get("members").is_none());
}

#[test]
fn users_cannot_patch_groups_and_members_must_not_be_self() {
    let mut f = Fixture::new();
    let g = f.group("G", &[]);
    patch_err(
        &mut f,
        &format!("/Groups/{g}"),
        json!([{"op": "add", "path": "members", "value": [{"value": g}]}]),
        "invalidValue",
    );
    let (status, _) = patch(
        &mut f,
        "/Groups/missing",
        json!([{"op": "add", "path": "displayName", "value": "x"}]),
    );
    assert_eq!(status, 404);
}

/// Identity-provider dialects on single-valued complex and extension
/// attributes, each with the body the provider sends: every case starts from
/// a user whose manager is "boss-id" and department "Old", and ends in the
/// enterprise extension shown, or in the error named.
#[test]
fn unqualified_names_and_single_valued_complex_table() {
    let ok = |ent: Value| Ok::<Value, &str>(ent);
    let cases: Vec<(&str, Value, Result<Value, &str>)> = vec![
        (
            "Entra: manager as a one-element array",
            json!([{"op": "Add", "path": "manager", "value": [{"$ref": "https://lms.example/scim/v2/Users/new-boss", "value": "new-boss"}]}]),
            ok(
                json!({"department": "Old", "manager": {"value": "new-boss", "$ref": "https://lms.example/scim/v2/Users/new-boss"}}),
            ),
        ),
        (
            "manager as a two-element array is not a guess",
            json!([{"op": "Add", "path": "manager", "value": [{"value": "a"}, {"value": "b"}]}]),
            Err("invalidValue"),
        ),
        (
            "remove manager by a matching value filter",
            json!([{"op": "remove", "path": "manager[value eq \"boss-id\"]"}]),
            ok(json!({"department": "Old"})),
        ),
        (
            "remove manager by a value filter that matches nothing",
            json!([{"op": "remove", "path": "manager[value eq \"someone-else\"]"}]),
            ok(json!({"department": "Old", "manager": {"value": "boss-id"}})),
        ),
        (
            "unqualified paths",
            json!([
                {"op": "replace", "path": "department", "value": "Sales"},
                {"op": "add", "path": "employeeNumber", "value": "42"},
                {"op": "add", "path": "costCenter", "value": "CC-7"},
                {"op": "add", "path": "organization", "value": "Org"},
                {"op": "add", "path": "division", "value": "Div"},
                {"op": "replace", "path": "manager.value", "value": "m2"}
            ]),
            ok(
                json!({"department": "Sales", "manager": {"value": "m2"}, "employeeNumber": "42",
                      "costCenter": "CC-7", "organization": "Org", "division": "Div"}),
            ),
        ),
        (
            "unqualified names in a path-less value",
            json!([{"op": "replace", "value": {"department": "HR", "manager": "m3", "title": "Lead"}}]),
            ok(json!({"department": "HR", "manager": {"value": "m3"}})),
        ),
        (
            "python-scim: schemas inside the extension value",
            json!([{"op": "add", "path": ENT, "value": {"schemas": [ENT], "department": "Ops"}}]),
            ok(json!({"department": "Ops", "manager": {"value": "boss-id"}})),
        ),
        (
            "schemas inside the extension value naming another schema",
            json!([{"op": "replace", "path": ENT, "value": {"schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"], "department": "Ops"}}]),
            Err("invalidValue"),
        ),
        (
            "an unknown bare name is still refused",
            json!([{"op": "add", "path": "departmnet", "value": "x"}]),
            Err("invalidPath"),
        ),
    ];
    for (what, ops, want) in cases {
        let mut f = Fixture::new();
        let (_, u) = new_user(&mut f);
        patch_ok(
            &mut f,
            &u,
            json!([{"op": "add", "path": ENT, "value": {"department": "Old", "manager": {"value": "boss-id"}}}]),
        );
        let (status, body) = patch(&mut f, &u, ops);
        match want {
            Ok(ent) => {
                assert_eq!(status, 200, "{what}: {body}");
                assert_eq!(body[ENT], ent, "{what}");
            }
            Err(scim_type) => {
                assert_eq!(
                    (status, body["scimType"].as_str()),
                    (400, Some(scim_type)),
                    "{what}: {body}"
                );
                assert!(!body["detail"].as_str().unwrap().is_empty());
                let after = get(&mut f, &u);
                assert_eq!(
                    after[ENT],
                    json!({"department": "Old", "manager": {"value": "boss-id"}}),
                    "{what}: changed nothing"
                );
            }
        }
    }
}
