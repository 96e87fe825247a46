//! Proptest strategies shared by the property tests: users, groups and
//! filters shaped like what identity providers send, drawn from small
//! vocabularies so that filters actually select some users and not others.

use proptest::prelude::*;
use serde_json::{Value, json};

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";

/// Cases per property: `default`, or `PROPTEST_CASES` when set (a longer
/// run), so the default test run stays quick.
pub fn config(default: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

const TITLES: &[&str] = &["Engineer", "Sales Manager", "engineer", "Tour Guide", ""];
const DEPARTMENTS: &[&str] = &["Sales", "R&D", "Ops", "sales"];
const DOMAINS: &[&str] = &["example.com", "acme.example", "Example.org"];
const FAMILY_NAMES: &[&str] = &["Jensen", "Smith", "jensen", "Ødegaard"];
const COUNTRIES: &[&str] = &["DE", "AT", "US"];

fn pick(list: &'static [&'static str]) -> impl Strategy<Value = &'static str> + Clone {
    prop::sample::select(list)
}

/// A user body without `userName` (see [`users`], which numbers them).
fn user_body() -> impl Strategy<Value = Value> {
    let email = (
        "[a-c]{1,3}",
        pick(DOMAINS),
        pick(&["work", "home"]),
        any::<bool>(),
    );
    (
        prop::option::of(pick(TITLES)),
        prop::option::of(any::<bool>()),
        prop::collection::vec(email, 0..3),
        prop::option::of(pick(FAMILY_NAMES)),
        prop::option::of(pick(DEPARTMENTS)),
        prop::option::of(pick(COUNTRIES)),
        prop::option::of(pick(&["Employee", "Contractor"])),
    )
        .prop_map(
            |(title, active, emails, family, dept, country, user_type)| {
                let mut u = serde_json::Map::new();
                if let Some(t) = title {
                    u.insert("title".into(), json!(t));
                }
                if let Some(a) = active {
                    u.insert("active".into(), json!(a));
                }
                if !emails.is_empty() {
                    let mut primary_taken = false;
                    let list: Vec<Value> = emails
                        .into_iter()
                        .map(|(local, domain, kind, primary)| {
                            let primary = primary && !std::mem::replace(&mut primary_taken, true);
                            let mut e = json!({"value": format!("{local}@{domain}"), "type": kind});
                            if primary {
                                e["primary"] = json!(true);
                            }
                            e
                        })
                        .collect();
                    u.insert("emails".into(), Value::Array(list));
                }
                if let Some(f) = family {
                    u.insert("name".into(), json!({"familyName": f}));
                }
                if let Some(d) = dept {
                    u.insert(ENTERPRISE.into(), json!({"department": d}));
                }
                if let Some(c) = country {
                    u.insert("addresses".into(), json!([{"country": c, "type": "work"}]));
                }
                if let Some(t) = user_type {
                    u.insert("userType".into(), json!(t));
                }
                Value::Object(u)
            },
        )
}

/// Between `min` and `max` users with distinct userNames (`a3`, `bc0`, ...:
/// a letter prefix from a small set, then the user's number).
pub fn users(min: usize, max: usize) -> impl Strategy<Value = Vec<Value>> {
    prop::collection::vec(("[a-c]{1,2}", user_body()), min..=max).prop_map(|list| {
        list.into_iter()
            .enumerate()
            .map(|(i, (prefix, mut body))| {
                body["userName"] = json!(format!("{prefix}{i}"));
                body
            })
            .collect()
    })
}

/// Group display names (distinct: a tenant's are unique).
pub const GROUP_NAMES: &[&str] = &["Sales", "Engineering", "All Staff", "Support"];

/// Up to `max` groups, distinct by name, as (display name, indexes of
/// member users below `users`).
pub fn groups(users: usize, max: usize) -> impl Strategy<Value = Vec<(String, Vec<usize>)>> {
    let members = prop::collection::btree_set(0..users.max(1), 0..=users);
    let names = prop::sample::subsequence(GROUP_NAMES, 0..=max.min(GROUP_NAMES.len()));
    (names, prop::collection::vec(members, GROUP_NAMES.len())).prop_map(move |(names, sets)| {
        names
            .into_iter()
            .zip(sets)
            .map(|(name, m)| {
                let m = if users == 0 {
                    Vec::new()
                } else {
                    m.into_iter().collect()
                };
                (name.to_string(), m)
            })
            .collect()
    })
}

/// One comparison on a user, as filter text.
fn user_comparison() -> impl Strategy<Value = String> {
    let string_op = pick(&["eq", "ne", "co", "sw", "ew", "gt", "ge", "lt", "le"]);
    let eq_ne = pick(&["eq", "ne"]);
    prop_oneof![
        (string_op.clone(), pick(&["a", "b", "ab", "c1", "A", "b10"]))
            .prop_map(|(op, v)| format!("userName {op} \"{v}\"")),
        (
            string_op.clone(),
            pick(&["Engineer", "eng", "Sales", "manager", ""])
        )
            .prop_map(|(op, v)| format!("title {op} \"{v}\"")),
        (eq_ne.clone(), any::<bool>()).prop_map(|(op, v)| format!("active {op} {v}")),
        (
            string_op.clone(),
            pick(&["a", "example", "@acme.example", "B"])
        )
            .prop_map(|(op, v)| format!("emails.value {op} \"{v}\"")),
        (pick(&["work", "home"]), pick(&["a", "b", "c"]))
            .prop_map(|(t, v)| format!("emails[type eq \"{t}\" and value sw \"{v}\"]")),
        pick(&["work", "home"]).prop_map(|t| format!("emails[type eq \"{t}\"]")),
        (eq_ne.clone(), pick(FAMILY_NAMES))
            .prop_map(|(op, v)| format!("name.familyName {op} \"{v}\"")),
        (string_op, pick(DEPARTMENTS))
            .prop_map(|(op, v)| format!("{ENTERPRISE}:department {op} \"{v}\"")),
        (eq_ne, pick(&["Employee", "Contractor"]))
            .prop_map(|(op, v)| format!("userType {op} \"{v}\"")),
        pick(&["DE", "US"]).prop_map(|c| format!("addresses[country eq \"{c}\"]")),
        pick(&[
            "title",
            "emails",
            "name.familyName",
            "active",
            "userType",
            "externalId"
        ])
        .prop_map(|a| format!("{a} pr")),
        pick(&["gt", "lt"]).prop_map(|op| format!("meta.created {op} \"2020-01-01T00:00:00Z\"")),
    ]
}

/// A user filter: comparisons combined with `and`, `or` and `not`, a few
/// levels deep.
pub fn user_filter() -> impl Strategy<Value = String> {
    user_comparison().prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("({a}) and ({b})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} or {b}")),
            inner.clone().prop_map(|a| format!("not ({a})")),
            // An `or` one of whose branches is another conjunct (implied).
            (inner.clone(), inner).prop_map(|(a, b)| format!("({a}) and (({b}) or ({a}))")),
        ]
    })
}
