//! Property: `not (F)` selects exactly the users `F` does not, in the
//! evaluator and through the whole engine (plan, host selection, paging).

use proptest::prelude::*;
use serde_json::{Value, json};

use super::parse;
use crate::schema::USER_TYPE;
use crate::strategies::{config, user_filter, users};
use crate::testkit::Fixture;

/// The ids and total of a search.
fn search(f: &mut Fixture, filter: &str) -> (Vec<String>, u64) {
    let body = json!({
        "schemas": [crate::query::SEARCH_REQUEST],
        "filter": filter, "count": 1000, "attributes": ["id"],
    });
    let list = f.ok("POST", "/Users/.search", Some(body));
    let ids = list["Resources"]
        .as_array()
        .map(|rs| {
            rs.iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect()
        })
        .unwrap_or_default();
    (ids, list["totalResults"].as_u64().unwrap())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn not_selects_the_complement(users in users(0, 12), filter in user_filter()) {
        let f = parse(&USER_TYPE, &filter).unwrap();
        let not_f = parse(&USER_TYPE, &format!("not ({filter})")).unwrap();
        for u in &users {
            let mut u = u.clone();
            u["meta"] = json!({"created": "2024-05-01T00:00:00Z"});
            prop_assert_ne!(f.matches(&u), not_f.matches(&u), "{} on {}", filter, u);
        }
    }

    #[test]
    fn not_selects_the_complement_through_the_engine(
        users in users(0, 12),
        filter in user_filter(),
    ) {
        let mut fx = Fixture::new();
        let all: Vec<String> = users
            .iter()
            .map(|u| fx.ok("POST", "/Users", Some(u.clone()))["id"].as_str().unwrap().to_string())
            .collect();
        let (yes, yes_total) = search(&mut fx, &filter);
        let (no, no_total) = search(&mut fx, &format!("not ({filter})"));
        prop_assert_eq!(yes_total as usize, yes.len());
        prop_assert_eq!(no_total as usize, no.len());
        let mut both: Vec<String> = yes.iter().chain(&no).cloned().collect();
        both.sort();
        let mut all_sorted = all.clone();
        all_sorted.sort();
        prop_assert_eq!(both, all_sorted, "{}", filter);
    }
}

#[test]
fn the_strategies_make_filters_that_select_something_and_not_everything() {
    // A property over filters that always select nothing (or everything)
    // could not fail; check the vocabulary overlaps the users.
    use proptest::strategy::ValueTree;
    use proptest::test_runner::TestRunner;
    let mut runner = TestRunner::deterministic();
    let (mut some, mut not_all) = (0, 0);
    for _ in 0..200 {
        let users: Vec<Value> = users(10, 10).new_tree(&mut runner).unwrap().current();
        let text = user_filter().new_tree(&mut runner).unwrap().current();
        let f = parse(&USER_TYPE, &text).unwrap();
        let n = users.iter().filter(|u| f.matches(u)).count();
        some += usize::from(n > 0);
        not_all += usize::from(n < users.len());
    }
    assert!(some > 50 && not_all > 50, "{some} {not_all}");
}
