//! Query execution against the in-memory store: paging by index and cursor,
//! sorting, projection, /.search and relation filters.

use serde_json::{Value, json};

use crate::testkit::{Fixture, names, request};

fn enc(s: &str) -> String {
    s.replace(' ', "%20").replace('"', "%22")
}

#[test]
fn sort_by_is_typed_case_aware_and_puts_missing_last() {
    let mut f = Fixture::new();
    f.user("bob", json!({"title": "b"}));
    f.user("Alice", json!({"title": "B"}));
    f.user("carol", json!({}));
    f.user("dave", json!({"title": "a"}));
    assert_eq!(
        f.names("/Users?sortBy=userName"),
        ["Alice", "bob", "carol", "dave"]
    );
    assert_eq!(
        f.names("/Users?sortBy=userName&sortOrder=descending"),
        ["dave", "carol", "bob", "Alice"]
    );
    // Ties keep creation order; missing values last in both orders.
    assert_eq!(
        f.names("/Users?sortBy=title"),
        ["dave", "bob", "Alice", "carol"]
    );
    assert_eq!(
        f.names("/Users?sortBy=title&sortOrder=descending"),
        ["bob", "Alice", "dave", "carol"]
    );
    assert_eq!(
        f.names("/Users?sortBy=title&sortOrder=descending&count=2"),
        ["bob", "Alice"]
    );
    assert_eq!(
        f.names("/Users?sortBy=userName&startIndex=3&count=1"),
        ["carol"]
    );
    let (status, body) = f.call("GET", "/Users?sortBy=nope", None);
    assert_eq!(
        (status, body["scimType"].as_str()),
        (400, Some("invalidValue"))
    );
}

#[test]
fn index_paging_edges() {
    let mut f = Fixture::new();
    for i in 0..5 {
        f.user(
            &format!("u{i}"),
            json!({"title": if i % 2 == 0 { "even" } else { "odd" }}),
        );
    }
    let filtered = format!("/Users?filter={}", enc(r#"title eq "even""#));
    let body = f.ok("GET", &format!("{filtered}&startIndex=2&count=1"), None);
    assert_eq!(body["totalResults"], 3);
    assert_eq!(names(&body), ["u2"]);
    let body = f.ok("GET", &format!("{filtered}&count=0"), None);
    assert_eq!(
        (
            body["totalResults"].as_u64(),
            body["Resources"].as_array().unwrap().len()
        ),
        (Some(3), 0)
    );
    let body = f.ok("GET", &format!("{filtered}&startIndex=9"), None);
    assert_eq!(body["totalResults"], 3);
    assert_eq!(body["Resources"], json!([]));
    let body = f.ok("GET", "/Users?count=100000", None);
    assert_eq!(body["itemsPerPage"], 5);
}

#[test]
fn unfiltered_pages_from_either_end_are_the_same_windows() {
    let mut f = Fixture::new();
    let all: Vec<String> = (0..9).map(|i| format!("u{i}")).collect();
    for name in &all {
        f.user(name, json!({}));
    }
    // Every window, including the ones the host reads backwards from the end
    // and the ones that run past it.
    for start in 1..=10 {
        for count in 1..=4 {
            let want: Vec<&str> = all
                .iter()
                .skip(start - 1)
                .take(count)
                .map(String::as_str)
                .collect();
            let body = f.ok(
                "GET",
                &format!("/Users?startIndex={start}&count={count}"),
                None,
            );
            assert_eq!(names(&body), want, "startIndex={start} count={count}");
            assert_eq!(body["totalResults"], 9);
        }
    }
}

/// Follows nextCursor from the first page to the end.
fn walk_cursor(f: &mut Fixture, base: &str, count: u32) -> (Vec<String>, Vec<Value>) {
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    let mut url = format!("{base}cursor&count={count}");
    loop {
        let body = f.ok("GET", &url, None);
        seen.extend(names(&body));
        let next = body["nextCursor"].as_str().map(str::to_string);
        pages.push(body);
        match next {
            Some(c) => url = format!("{base}cursor={c}&count={count}"),
            None => return (seen, pages),
        }
    }
}

#[test]
fn cursor_paging_walks_forward_and_back() {
    let mut f = Fixture::new();
    for i in 0..7 {
        f.user(&format!("u{i}"), json!({}));
    }
    let (seen, pages) = walk_cursor(&mut f, "/Users?", 3);
    assert_eq!(seen, ["u0", "u1", "u2", "u3", "u4", "u5", "u6"]);
    assert_eq!(pages.len(), 3);
    assert!(pages[0].get("previousCursor").is_none());
    assert!(pages[0].get("startIndex").is_none());
    assert_eq!(pages[0]["totalResults"], 7);
    assert!(pages[2].get("nextCursor").is_none());
    // Back from the last page.
    let prev = pages[2]["previousCursor"].as_str().unwrap();
    let body = f.ok("GET", &format!("/Users?cursor={prev}&count=3"), None);
    assert_eq!(names(&body), ["u3", "u4", "u5"]);
    let prev = body["previousCursor"].as_str().unwrap();
    let body = f.ok("GET", &format!("/Users?cursor={prev}&count=3"), None);
    assert_eq!(names(&body), ["u0", "u1", "u2"]);
    assert!(body.get("previousCursor").is_none());
    assert!(body["nextCursor"].is_string());
}

#[test]
fn cursors_survive_inserts_and_deletes_between_pages() {
    let mut f = Fixture::new();
    let ids: Vec<String> = (0..6)
        .map(|i| f.user(&format!("u{i}"), json!({})))
        .collect();
    let first = f.ok("GET", "/Users?cursor&count=2", None);
    assert_eq!(names(&first), ["u0", "u1"]);
    // Delete one that was already seen and one that is ahead; add one.
    f.ok("DELETE", &format!("/Users/{}", ids[0]), None);
    f.ok("DELETE", &format!("/Users/{}", ids[3]), None);
    f.user("late", json!({}));
    let mut seen = names(&first);
    let mut next = first["nextCursor"].as_str().map(str::to_string);
    while let Some(c) = next {
        let body = f.ok("GET", &format!("/Users?cursor={c}&count=2"), None);
        seen.extend(names(&body));
        next = body["nextCursor"].as_str().map(str::to_string);
    }
    assert_eq!(seen, ["u0", "u1", "u2", "u4", "u5", "late"]);
}

#[test]
fn cursor_errors() {
    let mut f = Fixture::new();
    for i in 0..3 {
        f.user(&format!("u{i}"), json!({"title": "x"}));
    }
    let body = f.ok("GET", "/Users?cursor&count=1", None);
    let c = body["nextCursor"].as_str().unwrap().to_string();
    for url in [
        "/Users?cursor=not-a-cursor".to_string(),
        // Same cursor, another query.
        format!("/Users?cursor={c}&filter={}", enc(r#"title eq "x""#)),
        format!("/Groups?cursor={c}"),
    ] {
        let (status, err) = f.call("GET", &url, None);
        assert_eq!(
            (status, err["scimType"].as_str()),
            (400, Some("invalidCursor")),
            "{url}"
        );
    }
    // Another tenant's key rejects it too.
    let mut other = request("GET", &format!("/Users?cursor={c}"), None);
    other.context.tenant = "t2".into();
    other.context.signing_key = b"other".to_vec();
    let r = crate::handle(&other, &mut f.store, &mut f.lms);
    assert_eq!(r.body_json()["scimType"], "invalidCursor");
}

#[test]
fn filtered_cursor_paging() {
    let mut f = Fixture::new();
    for i in 0..9 {
        f.user(
            &format!("u{i}"),
            json!({"title": if i % 3 == 0 { "lead" } else { "member" }}),
        );
    }
    let base = format!("/Users?filter={}&", enc(r#"title eq "lead""#));
    let (seen, pages) = walk_cursor(&mut f, &base, 2);
    assert_eq!(seen, ["u0", "u3", "u6"]);
    assert_eq!(pages[0]["totalResults"], 3);
}

#[test]
fn search_endpoints() {
    let mut f = Fixture::new();
    let u = f.user("searcher", json!({"title": "Teacher"}));
    f.ok(
        "POST",
        "/Groups",
        Some(json!({"displayName": "Searchers", "members": [{"value": u}]})),
    );
    let body = f.ok(
        "POST",
        "/Users/.search",
        Some(json!({
            "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
            "filter": "title co \"teach\"",
            "attributes": ["userName"],
        })),
    );
    assert_eq!(body["totalResults"], 1);
    assert_eq!(
        body["Resources"][0]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["schemas", "id", "userName"]
    );
    // Root search: both types; a filter on a Group-only attribute still
    // works, and one on an attribute no type has is an error.
    let all = f.ok(
        "POST",
        "/.search",
        Some(json!({"filter": "meta.resourceType pr"})),
    );
    assert_eq!(all["totalResults"], 2);
    let groups = f.ok("POST", "/.search", Some(json!({"filter": "members pr"})));
    assert_eq!(names(&groups), ["Searchers"]);
    let (status, err) = f.call("POST", "/.search", Some(json!({"filter": "nope eq 1"})));
    assert_eq!(
        (status, err["scimType"].as_str()),
        (400, Some("invalidFilter"))
    );
    let (status, err) = f.call("POST", "/Users/.search", Some(json!({"count": "x"})));
    assert_eq!(
        (status, err["scimType"].as_str()),
        (400, Some("invalidSyntax"))
    );
    let (status, _) = f.call("GET", "/Users/.search", None);
    assert_eq!(status, 405);
}

#[test]
fn relation_filters() {
    let mut f = Fixture::new();
    let a = f.user("a", json!({}));
    let b = f.user("b", json!({}));
    let g1 = f.ok(
        "POST",
        "/Groups",
        Some(json!({"displayName": "G1", "members": [{"value": a}]})),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    f.ok(
        "POST",
        "/Groups",
        Some(json!({"displayName": "G2", "members": [{"value": a}, {"value": b}]})),
    );
    let q = |f: &mut Fixture, filter: &str| f.names(&format!("/Groups?filter={}", enc(filter)));
    assert_eq!(q(&mut f, &format!(r#"members[value eq "{b}"]"#)), ["G2"]);
    assert_eq!(
        q(&mut f, &format!(r#"members.value eq "{a}""#)),
        ["G1", "G2"]
    );
    assert_eq!(
        q(
            &mut f,
            &format!(r#"displayName eq "G2" and members eq "{a}""#)
        ),
        ["G2"]
    );
    assert_eq!(
        q(&mut f, &format!(r#"not (members.value eq "{b}")"#)),
        ["G1"]
    );
    let users = f.names(&format!(
        "/Users?filter={}",
        enc(&format!(r#"groups.value eq "{g1}""#))
    ));
    assert_eq!(users, ["a"]);
}

#[test]
fn excluded_members_are_never_read() {
    let mut f = Fixture::new();
    let u = f.user("m", json!({}));
    let g = f.ok(
        "POST",
        "/Groups",
        Some(json!({"displayName": "G", "members": [{"value": u}]})),
    )["id"]
        .as_str()
        .unwrap()
        .to_string();
    let reads_before = f.store.member_reads();
    f.ok(
        "GET",
        &format!("/Groups/{g}?excludedAttributes=members"),
        None,
    );
    f.ok("GET", "/Groups?excludedAttributes=members", None);
    f.ok("GET", "/Groups?attributes=displayName", None);
    assert_eq!(f.store.member_reads(), reads_before);
    f.ok("GET", &format!("/Groups/{g}"), None);
    assert!(f.store.member_reads() > reads_before);
}

#[test]
fn write_responses_honour_attributes() {
    let mut f = Fixture::new();
    let body = f.ok(
        "POST",
        "/Users?attributes=userName",
        Some(json!({"userName": "w", "title": "t"})),
    );
    assert!(body.get("title").is_none());
    assert_eq!(body["userName"], "w");
}
