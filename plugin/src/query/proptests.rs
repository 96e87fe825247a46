//! Property: whatever the plan (index, intersection, body pre-filter or
//! scan), a search answers what a full scan of the stored users evaluated
//! with the filter answers: the same total, the same page.

use proptest::prelude::*;
use serde_json::{Value, json};

use crate::filter::parse;
use crate::schema::USER_TYPE;
use crate::store::{Page, Selection, Store};
use crate::strategies::{config, user_filter, users};
use crate::testkit::Fixture;

/// The ids of every stored user matching `filter`, in creation order.
fn full_scan(fx: &mut Fixture, filter: &str) -> Vec<String> {
    let f = parse(&USER_TYPE, filter).unwrap();
    fx.store
        .scan(USER_TYPE.name, &Selection::All, Page::after(None, u32::MAX))
        .unwrap()
        .into_iter()
        .filter(|d| f.matches(&serde_json::from_str::<Value>(&d.body).unwrap()))
        .map(|d| d.id)
        .collect()
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn a_planned_search_pages_and_counts_as_a_full_scan(
        users in users(0, 16),
        filter in user_filter(),
        start in 1usize..8,
        count in 0usize..6,
    ) {
        let mut fx = Fixture::new();
        for u in &users {
            fx.ok("POST", "/Users", Some(u.clone()));
        }
        let want = full_scan(&mut fx, &filter);
        let body = json!({
            "schemas": [crate::query::SEARCH_REQUEST],
            "filter": filter, "startIndex": start, "count": count, "attributes": ["id"],
        });
        let list = fx.ok("POST", "/Users/.search", Some(body));
        let got: Vec<String> = list["Resources"]
            .as_array()
            .map(|rs| rs.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        let page: Vec<String> = want.iter().skip(start - 1).take(count).cloned().collect();
        prop_assert_eq!(list["totalResults"].as_u64(), Some(want.len() as u64), "{}", filter);
        prop_assert_eq!(got, page, "{}", filter);
    }
}
