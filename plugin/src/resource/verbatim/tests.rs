//! The copied default view must be byte for byte what the general path
//! writes, and must decline whenever the projection would change anything.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::default_view;
use crate::memstore::MemStore;
use crate::projection::Projection;
use crate::resource::render::render_value;
use crate::resource::{etag, location};
use crate::schema::{ENTERPRISE_USER_SCHEMA, GROUP_TYPE, ResourceType, USER_TYPE};
use crate::store::Document;

const BASE: &str = "https://lms.example/scim/v2";
const CUSTOM: &str = "urn:ietf:params:scim:schemas:extension:acme:2.0:User";

/// What `GET` wrote before the copy: parse, add the relation, project.
fn general(stored: &str, rt: &ResourceType, relation: &[Value]) -> String {
    let doc = Document {
        id: "u1".into(),
        seq: 1,
        version: 3,
        body: stored.into(),
    };
    let mut body: Value = serde_json::from_str(stored).unwrap();
    if let Value::Object(map) = &mut body {
        let name = rt.relation_attribute().name;
        if !map.contains_key(name) {
            map.insert(name.into(), Value::Array(relation.to_vec()));
        }
    }
    render_value(
        &mut MemStore::new(),
        BASE,
        rt,
        &doc,
        &mut body,
        &Projection::all(),
    )
    .unwrap();
    body.to_string()
}

fn copied(stored: &str, rt: &ResourceType, relation: &[Value]) -> Option<String> {
    default_view(stored, rt, relation, &location(BASE, rt, "u1"), &etag(3))
        .map(|b| String::from_utf8(b).unwrap())
}

fn assert_same(stored: &Value, rt: &ResourceType, relation: &[Value]) {
    let stored = stored.to_string();
    let copy = copied(&stored, rt, relation).unwrap_or_else(|| panic!("declined {stored}"));
    assert_eq!(copy, general(&stored, rt, relation));
}

fn assert_declines(stored: &str, rt: &ResourceType) {
    assert_eq!(copied(stored, rt, &[]), None, "{stored}");
}

fn meta() -> Value {
    json!({"resourceType": "User", "created": "2026-01-01T00:00:00.000Z",
           "lastModified": "2026-01-02T00:00:00.000Z"})
}

fn user() -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User", ENTERPRISE_USER_SCHEMA, CUSTOM],
        "id": "u1",
        "externalId": "e-1",
        "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "active": true,
        "emails": [{"value": "ada@example.com", "type": "work", "primary": true}],
        "title": "Analyst \"one\" \u{e9}\n",
        ENTERPRISE_USER_SCHEMA: {"department": "R&D", "manager": {"value": "m1"}},
        CUSTOM: {"anything": {"nested": [1, 2.5, null]}},
        "meta": meta(),
    })
}

fn group_entry(id: &str, kind: &str) -> Value {
    json!({"value": id, "$ref": format!("{BASE}/Groups/{id}"), "display": "Sales", "type": kind})
}

#[test]
fn a_stored_user_is_copied_as_the_general_path_writes_it() {
    assert_same(&user(), &USER_TYPE, &[]);
    let groups = [group_entry("g1", "direct"), group_entry("g2", "indirect")];
    assert_same(&user(), &USER_TYPE, &groups);
}

#[test]
fn a_group_with_members_and_bare_resources_are_copied() {
    let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"],
                       "id": "u1", "displayName": "Sales", "meta": meta()});
    let members = [json!({"value": "u9", "$ref": format!("{BASE}/Users/u9"), "type": "User"})];
    assert_same(&group, &GROUP_TYPE, &members);
    assert_same(&json!({"id": "u1", "meta": {}}), &USER_TYPE, &[]);
    assert_same(&json!({"id": "u1"}), &USER_TYPE, &[]);
    assert_same(&json!({}), &USER_TYPE, &[]);
}

#[test]
fn anything_the_projection_would_change_is_left_to_the_general_path() {
    let with = |key: &str, value: Value| {
        let mut u = user();
        u.as_object_mut().unwrap().shift_remove("meta");
        u[key] = value;
        u["meta"] = meta();
        u.to_string()
    };
    for stored in [
        with("name", json!({"givenName": "Ada", "nickname": "x"})),
        with("name", json!({})),
        with("emails", json!([])),
        with("emails", json!([{}])),
        with("password", json!("secret")),
        with("groups", json!([{"value": "g1"}])),
        with(ENTERPRISE_USER_SCHEMA, json!({})),
        with(ENTERPRISE_USER_SCHEMA, json!({"madeUp": 1})),
        with(ENTERPRISE_USER_SCHEMA, json!("not an object")),
        json!({"id": "u1", "meta": {"created": "x", "location": "elsewhere"}}).to_string(),
        json!({"id": "u1", "meta": {"created": "x", "madeUp": 1}}).to_string(),
        json!({"id": "u1", "meta": "text"}).to_string(),
        json!({"meta": {}, "id": "u1"}).to_string(),
        r#"{"id":"u1","user\u004eame":"ada","meta":{}}"#.to_string(),
        r#"{"id":"u1","id":"u2","meta":{}}"#.to_string(),
        "[1]".to_string(),
        "{".to_string(),
    ] {
        assert_declines(&stored, &USER_TYPE);
    }
    // A relation item the projection would trim.
    let odd = [json!({"value": "g1", "madeUp": 1})];
    assert_eq!(copied(&user().to_string(), &USER_TYPE, &odd), None);
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i32>().prop_map(Value::from),
        "[a-z\"\\\\é ]{0,6}".prop_map(Value::from),
    ]
}

fn object(keys: &'static [&'static str]) -> impl Strategy<Value = Value> {
    prop::collection::vec((prop::sample::select(keys), scalar()), 0..4)
        .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_string(), v)).collect()))
}

fn value() -> impl Strategy<Value = Value> {
    const SUBS: &[&str] = &[
        "givenName",
        "value",
        "type",
        "primary",
        "display",
        "department",
        "bogus",
    ];
    prop_oneof![
        scalar(),
        object(SUBS),
        prop::collection::vec(prop_oneof![object(SUBS), scalar()], 0..3).prop_map(Value::Array),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Whatever is stored, a copy is exactly what the general path writes.
    #[test]
    fn a_copy_is_always_what_the_general_path_writes(
        members in prop::collection::vec((prop::sample::select(&[
            "schemas", "id", "externalId", "userName", "name", "emails", "active", "title",
            "password", "groups", "madeUp", "meta", ENTERPRISE_USER_SCHEMA, CUSTOM,
        ][..]), value()), 0..8),
        relation in prop::collection::vec(object(&["value", "display", "type", "bogus"]), 0..3),
        meta_last in any::<bool>(),
    ) {
        let mut stored: serde_json::Map<String, Value> =
            members.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        if meta_last {
            stored.shift_remove("meta");
            stored.insert("meta".into(), meta());
        }
        let stored = Value::Object(stored).to_string();
        if let Some(copy) = copied(&stored, &USER_TYPE, &relation) {
            prop_assert_eq!(copy, general(&stored, &USER_TYPE, &relation));
        }
    }
}
