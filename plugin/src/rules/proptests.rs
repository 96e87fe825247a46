//! Property tests: whatever an admin uploads, reading it never panics (a
//! panic would trap the engine), and whatever a user looks like, mapping
//! agrees with explain.

use proptest::prelude::*;
use serde_json::json;

use crate::mapper::{Facts, GroupFact, Mapper};

/// A document using every construct, to mutate.
const BASE: &str = r#"version = 1
groups_as_teams = true
default_role = "learner"

[[rule]]
name = "a"
priority = 3
when.any = [{ group = "Sales" }, { attribute = "title", glob = "*man?ger*" }]
grant = { role = "lead", teams = ["T {department}"], learning_paths = ["P"] }

[[rule]]
name = "b"
when.all = [
  { attribute = "country", in = ["DE", "AT"] },
  { not = { attribute = "userType", equals_ignore_case = "contractor" } },
  { attribute = "department", regex = "(?i)eng.*|r&d" },
  { attribute = "email_domain", equals = "acme.example" },
  { attribute = "costCenter", present = true },
]
grant.learning_paths = ["{{Q}} {groups}"]
"#;

fn mutate(base: &str, edits: &[(usize, u8, char)]) -> String {
    let mut chars: Vec<char> = base.chars().collect();
    for &(at, kind, c) in edits {
        let at = at % (chars.len() + 1);
        match kind % 3 {
            0 => chars.insert(at, c),
            1 if at < chars.len() => {
                chars.remove(at);
            }
            _ if at < chars.len() => chars[at] = c,
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn token() -> impl Strategy<Value = char> {
    prop_oneof![
        Just('{'),
        Just('}'),
        Just('['),
        Just(']'),
        Just('"'),
        Just('='),
        Just(','),
        Just('\n'),
        Just('*'),
        Just('('),
        Just(')'),
        Just('\\'),
        Just('é'),
        Just('a'),
    ]
}

fn value() -> impl Strategy<Value = serde_json::Value> {
    prop_oneof![
        "[a-zA-Z &*@.]{0,12}".prop_map(serde_json::Value::String),
        any::<bool>().prop_map(serde_json::Value::Bool),
        any::<i32>().prop_map(|n| json!(n)),
        Just(serde_json::Value::Null),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn mutated_documents_never_panic(edits in prop::collection::vec((any::<usize>(), any::<u8>(), token()), 1..8)) {
        let text = mutate(BASE, &edits);
        let _ = super::parse(&text);
        let _ = super::parse_installed(&text);
        let _ = crate::check_mapping(&text, None);
    }

    #[test]
    fn mapping_agrees_with_explain_for_any_user(
        title in value(), dept in value(), country in value(), user_type in value(),
        email in "[a-z]{0,5}@?[a-zA-Z.]{0,12}", active in any::<bool>(),
        groups in prop::collection::vec(("[a-zA-Z ]{0,8}", any::<bool>()), 0..4),
    ) {
        let rules = super::parse(BASE).unwrap();
        let user = json!({
            "title": title, "userType": user_type,
            "emails": [{"value": email}],
            "addresses": [{"country": country}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {"department": dept},
        });
        let groups: Vec<GroupFact> = groups
            .into_iter()
            .enumerate()
            .map(|(i, (name, named))| GroupFact {
                id: format!("g{i}"),
                display_name: named.then_some(name),
                external_id: None,
            })
            .collect();
        let facts = Facts { id: "u", active, resource: &user, groups: &groups };
        let desired = rules.desired(&facts).unwrap();
        prop_assert_eq!(&desired, &rules.explain(&facts).unwrap().grants);
        // One mapped role at most; none for inactive users.
        let roles = desired.iter().filter(|g| g.kind == crate::mapper::GrantKind::Role).count();
        prop_assert!(roles <= 1);
        prop_assert!(active || desired.is_empty());
        // No blank names.
        prop_assert!(desired.iter().all(|g| !g.name.trim().is_empty()));
    }
}
