//! Properties of PATCH through the engine over the in-memory store: adding
//! members and removing them again restores the group, and a request whose
//! last operation fails changes nothing at all.

use proptest::prelude::*;
use serde_json::{Value, json};

use super::PATCH_OP;
use crate::schema::{GROUP_TYPE, USER_TYPE};
use crate::store::Store;
use crate::strategies::{config, users};
use crate::testkit::{Fixture, request};

fn patch(ops: Value) -> Option<Value> {
    Some(json!({"schemas": [PATCH_OP], "Operations": ops}))
}

/// A resource as served, without `meta` (its version and time move).
fn served(fx: &mut Fixture, path: &str) -> Value {
    let mut r = fx.ok("GET", path, None);
    r.as_object_mut().unwrap().remove("meta");
    r
}

/// Everything a request could change: every stored document and membership,
/// and the LMS's learners.
fn snapshot(fx: &mut Fixture) -> String {
    use crate::store::{Page, Selection};
    let mut out = String::new();
    for kind in [USER_TYPE.name, GROUP_TYPE.name] {
        let docs = fx
            .store
            .scan(kind, &Selection::All, Page::after(None, u32::MAX))
            .unwrap();
        for d in docs {
            out.push_str(&format!("{kind} {} v{} {}\n", d.id, d.version, d.body));
            if kind == GROUP_TYPE.name {
                for m in fx.store.members_all(kind, &d.id).unwrap() {
                    out.push_str(&format!("  member {} {}\n", m.id, m.kind));
                }
            }
        }
    }
    out.push_str(&format!("{:?}", fx.lms.learners));
    out
}

/// How a client says "remove these members".
#[derive(Debug, Clone, Copy)]
enum Removal {
    /// Entra: `remove` on `members` with a value list, one operation.
    ValueList,
    /// Okta: one `remove` per member with a `members[value eq …]` path.
    Filters,
    /// One request per member.
    OneRequestEach,
}

/// A user operation that succeeds on any user.
fn valid_user_op() -> impl Strategy<Value = Value> {
    let word = "[A-Za-z][a-z ]{0,8}";
    prop_oneof![
        word.prop_map(|t| json!({"op": "replace", "path": "title", "value": t})),
        word.prop_map(|t| json!({"op": "Replace", "value": {"displayName": t}})),
        word.prop_map(|t| json!({"op": "add", "path": "nickName", "value": t})),
        any::<bool>().prop_map(|a| json!({"op": "replace", "path": "active", "value": a})),
        "[a-z]{1,6}".prop_map(|l| json!({"op": "add", "path": "emails",
            "value": [{"value": format!("{l}@example.com"), "type": "other"}]})),
        word.prop_map(|n| json!({"op": "replace", "path": "name.givenName", "value": n})),
        word.prop_map(|d| json!({"op": "replace",
            "path": "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
            "value": d})),
        Just(json!({"op": "remove", "path": "title"})),
        Just(json!({"op": "remove", "path": "emails[type eq \"work\"]"})),
    ]
}

/// An operation that fails on any user, with the scimType it fails with.
fn invalid_user_op() -> impl Strategy<Value = (Value, &'static str)> {
    prop::sample::select(vec![
        (json!({"op": "remove"}), "noTarget"),
        (
            json!({"op": "replace", "path": "id", "value": "x"}),
            "mutability",
        ),
        (
            json!({"op": "replace", "path": "nope", "value": 1}),
            "invalidPath",
        ),
        (
            json!({"op": "replace", "path": "active", "value": "maybe"}),
            "invalidValue",
        ),
        (json!({"op": "remove", "path": "userName"}), "invalidValue"),
        (
            json!({"op": "add", "path": "groups", "value": [{"value": "g"}]}),
            "mutability",
        ),
        (
            json!({"op": "replace", "path": "emails[value co \"zzz\"]", "value": {"value": "y"}}),
            "noTarget",
        ),
        (
            json!({"op": "frobnicate", "path": "title", "value": "x"}),
            "invalidSyntax",
        ),
    ])
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn adding_members_then_removing_them_restores_the_group(
        users in users(2, 10),
        initial in prop::collection::vec(any::<bool>(), 10),
        added in prop::collection::vec(any::<bool>(), 10),
        one_add_op in any::<bool>(),
        removal in prop::sample::select(vec![Removal::ValueList, Removal::Filters, Removal::OneRequestEach]),
    ) {
        let mut fx = Fixture::new();
        let ids: Vec<String> = users
            .iter()
            .map(|u| fx.ok("POST", "/Users", Some(u.clone()))["id"].as_str().unwrap().to_string())
            .collect();
        let members: Vec<&str> = ids.iter().zip(&initial).filter(|(_, m)| **m).map(|(id, _)| id.as_str()).collect();
        let fresh: Vec<&String> = ids.iter().zip(initial.iter().zip(&added))
            .filter(|(_, (was, add))| !**was && **add)
            .map(|(id, _)| id)
            .collect();
        let g = fx.group("Sales", &members);
        let path = format!("/Groups/{g}");
        let before = served(&mut fx, &path);
        let lms_before = fx.lms.learners.clone();

        let values: Vec<Value> = fresh.iter().map(|id| json!({"value": id})).collect();
        let adds = if one_add_op {
            json!([{"op": "add", "path": "members", "value": values}])
        } else {
            Value::Array(values.iter().map(|v| json!({"op": "Add", "path": "members", "value": [v]})).collect())
        };
        if !fresh.is_empty() {
            fx.ok("PATCH", &path, patch(adds));
            prop_assert_eq!(fx.member_ids(&g).len(), members.len() + fresh.len());
            match removal {
                Removal::ValueList => {
                    fx.ok("PATCH", &path, patch(json!([{"op": "Remove", "path": "members", "value": values}])));
                }
                Removal::Filters => {
                    let ops: Vec<Value> = fresh.iter()
                        .map(|id| json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")}))
                        .collect();
                    fx.ok("PATCH", &path, patch(Value::Array(ops)));
                }
                Removal::OneRequestEach => for id in &fresh {
                    fx.ok("PATCH", &path, patch(json!([{"op": "remove", "path": format!("members[value eq \"{id}\"]")}])));
                },
            }
        }
        prop_assert_eq!(served(&mut fx, &path), before);
        prop_assert_eq!(&fx.lms.learners, &lms_before);
    }

    #[test]
    fn a_patch_whose_last_operation_fails_changes_nothing(
        users in users(1, 4),
        valid in prop::collection::vec(valid_user_op(), 0..5),
        (invalid, scim_type) in invalid_user_op(),
        in_group in any::<bool>(),
    ) {
        let mut fx = Fixture::new();
        let ids: Vec<String> = users
            .iter()
            .map(|u| fx.ok("POST", "/Users", Some(u.clone()))["id"].as_str().unwrap().to_string())
            .collect();
        if in_group {
            fx.group("Sales", &[&ids[0]]);
        }
        let before = snapshot(&mut fx);
        let events = fx.lms.events.len();
        let mut ops = valid;
        ops.push(invalid);
        // Straight to the engine, with no savepoint around it: the engine
        // itself must leave the store as it was.
        let req = request("PATCH", &format!("/Users/{}", ids[0]), patch(Value::Array(ops)));
        let resp = crate::handle(&req, &mut fx.store, &mut fx.lms);
        let body = resp.body_json();
        prop_assert!(resp.status >= 400, "{} {}", resp.status, body);
        prop_assert_eq!(body["schemas"][0].as_str(), Some("urn:ietf:params:scim:api:messages:2.0:Error"));
        prop_assert_eq!(body["scimType"].as_str(), Some(scim_type), "{}", body);
        prop_assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
        prop_assert_eq!(snapshot(&mut fx), before);
        prop_assert_eq!(fx.lms.events.len(), events);
    }

    #[test]
    fn a_group_patch_whose_last_operation_fails_changes_nothing(
        users in users(2, 6),
        initial in prop::collection::vec(any::<bool>(), 6),
        rename in prop::option::of("[A-Z][a-z]{1,8}"),
        bad in prop::sample::select(vec![
            (json!({"op": "add", "path": "members", "value": [{"value": "ghost"}]}), "invalidValue"),
            (json!({"op": "replace", "path": "displayName", "value": 7}), "invalidValue"),
            (json!({"op": "remove", "path": "members[value eq"}), "invalidPath"),
            (json!({"op": "replace", "path": "id", "value": "x"}), "mutability"),
        ]),
    ) {
        let mut fx = Fixture::new();
        let ids: Vec<String> = users
            .iter()
            .map(|u| fx.ok("POST", "/Users", Some(u.clone()))["id"].as_str().unwrap().to_string())
            .collect();
        let members: Vec<&str> = ids.iter().zip(&initial).filter(|(_, m)| **m).map(|(id, _)| id.as_str()).collect();
        let g = fx.group("Sales", &members);
        let before = snapshot(&mut fx);
        // Valid operations first: members in and out, perhaps a rename.
        let mut ops: Vec<Value> = ids.iter().zip(&initial).map(|(id, m)| if *m {
            json!({"op": "remove", "path": format!("members[value eq \"{id}\"]")})
        } else {
            json!({"op": "add", "path": "members", "value": [{"value": id}]})
        }).collect();
        if let Some(name) = rename {
            ops.push(json!({"op": "replace", "path": "displayName", "value": name}));
        }
        ops.push(bad.0);
        // Membership is written operation by operation, so, as the WIT
        // contract says, the host's rollback makes a failed request leave
        // nothing (the fixture rolls back as the host does); inside Bulk,
        // the engine's own savepoint does.
        let path = format!("/Groups/{g}");
        let (status, body) = fx.call("PATCH", &path, patch(Value::Array(ops.clone())));
        prop_assert!(status >= 400, "{} {}", status, body);
        prop_assert_eq!(body["scimType"].as_str(), Some(bad.1), "{}", body);
        prop_assert_eq!(snapshot(&mut fx), before.clone());
        let bulk = json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:BulkRequest"],
            "Operations": [{"method": "PATCH", "path": path, "data": {"schemas": [PATCH_OP], "Operations": ops}}],
        });
        let req = request("POST", "/Bulk", Some(bulk));
        let resp = crate::handle(&req, &mut fx.store, &mut fx.lms);
        let body = resp.body_json();
        prop_assert_eq!(resp.status, 200, "{}", body);
        let status = body["Operations"][0]["status"].as_str().unwrap_or_default().to_string();
        prop_assert!(status.starts_with('4'), "{}", body);
        prop_assert_eq!(snapshot(&mut fx), before);
    }
}
