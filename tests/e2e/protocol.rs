//! Protocol-level behaviour: authentication, errors, limits, routing, and
//! that the server survives what it refuses.

use serde_json::json;

use crate::support::Server;

#[test]
fn requests_without_a_valid_token_get_401() {
    let s = Server::start();
    for headers in [
        vec![],
        vec![("authorization", "Bearer wrong-token")],
        vec![("authorization", "Basic dXNlcjpwYXNz")],
        vec![("authorization", "Bearer")],
    ] {
        let r = s
            .raw("GET", "/Users", Vec::new(), &headers)
            .expect_error(401, None);
        assert!(r.header("www-authenticate").is_some());
    }
    // A write with a bad token changes nothing.
    s.raw(
        "POST",
        "/Users",
        json!({"userName": "intruder"}).to_string().into_bytes(),
        &[
            ("authorization", "Bearer nope"),
            ("content-type", "application/scim+json"),
        ],
    )
    .expect_error(401, None);
    assert_eq!(s.count("/Users", "userName pr"), 0);
}

#[test]
fn every_response_is_scim_json() {
    let s = Server::start();
    for r in [
        s.get("/Users"),
        s.get("/Users/missing"),
        s.get("/NoSuchEndpoint"),
        s.post("/Users", &json!({"userName": "ct"})),
    ] {
        assert_eq!(
            r.header("content-type"),
            Some("application/scim+json"),
            "{}",
            r.text
        );
    }
    s.get("/NoSuchEndpoint").expect_error(404, None);
}

#[test]
fn bodies_over_the_limit_get_413_and_malformed_json_400() {
    let s = Server::start_with(&["--max-body-bytes", "2048"]);
    let big = json!({"userName": "big", "displayName": "x".repeat(4096)});
    s.post("/Users", &big).expect_error(413, None);
    // Also when the client streams without Content-Length.
    let auth = format!("Bearer {}", s.token);
    s.raw(
        "POST",
        "/Users",
        big.to_string().into_bytes(),
        &[("authorization", &auth), ("transfer-encoding", "chunked")],
    )
    .expect_error(413, None);
    assert_eq!(s.count("/Users", "userName pr"), 0);
    s.raw(
        "POST",
        "/Users",
        b"{not json".to_vec(),
        &[("authorization", &auth)],
    )
    .expect_error(400, Some("invalidSyntax"));
    s.raw(
        "POST",
        "/Users",
        b"[1,2]".to_vec(),
        &[("authorization", &auth)],
    )
    .expect_error(400, Some("invalidSyntax"));
    // The server keeps serving.
    s.create_user("small");
}

#[test]
fn an_engine_trap_is_a_500_and_the_server_keeps_serving() {
    // A memory cap small enough that a large request exhausts it: the
    // instance traps, the transaction rolls back, the next request works.
    let s = Server::start_with(&["--memory-mib", "4", "--max-body-bytes", "8000000"]);
    s.create_user("before");
    let emails: Vec<_> = (0..40_000)
        .map(|i| json!({"value": format!("address-number-{i}@example.com"), "type": "work"}))
        .collect();
    let r = s.post("/Users", &json!({"userName": "huge", "emails": emails}));
    r.expect_error(500, None);
    assert_eq!(s.count("/Users", r#"userName eq "huge""#), 0);
    s.create_user("after");
    assert_eq!(s.count("/Users", "userName pr"), 2);
}

#[test]
fn me_is_not_implemented_and_unknown_methods_get_405() {
    let s = Server::start();
    s.get("/Me").expect_error(501, None);
    s.send("PATCH", "/Users", Some(&json!({})), &[])
        .expect_error(405, None);
}
