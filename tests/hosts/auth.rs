//! Without the tenant's bearer token nothing is read or written, on SCIM
//! and on the test API alike.

use serde_json::json;

use crate::support::{Host, USER_SCHEMA, unique};

/// Without `--test-api` there is no test API, even for the right token;
/// SCIM is served as ever.
pub fn test_api_needs_its_flag(h: &Host) {
    let plain = Host::start(h.kind, false)
        .unwrap_or_else(|e| panic!("a second host without --test-api did not start: {e}"));
    let id = plain.create_user(&unique("plain.user"));
    for (method, path) in [
        ("GET", format!("/learners/{id}")),
        ("GET", "/events".to_string()),
        ("POST", "/drain".to_string()),
    ] {
        let r = plain.test_api(method, &path);
        assert_eq!(
            r.status, 404,
            "{method} /test/v1{path} without --test-api: {}",
            r.text
        );
    }
    plain.get(&format!("/Users/{id}")).expect(200);
    // The shared host has it.
    h.test_api("GET", "/events").expect(200);
}

pub fn unauthorized_requests_are_refused(h: &Host) {
    let id = h.create_user(&unique("auth.user"));
    let wrong = format!("{}x", h.token);
    let name = unique("auth.intruder");
    let body = json!({"schemas": [USER_SCHEMA], "userName": name});
    let scim = |path: &str| format!("{}{path}", h.base);
    let test = |path: &str| format!("{}/test/v1{path}", h.origin);
    let requests: Vec<(&str, String, Option<&serde_json::Value>)> = vec![
        ("GET", scim("/Users"), None),
        ("GET", scim(&format!("/Users/{id}")), None),
        ("POST", scim("/Users"), Some(&body)),
        ("DELETE", scim(&format!("/Users/{id}")), None),
        ("GET", test(&format!("/learners/{id}")), None),
        ("GET", test("/events"), None),
        ("POST", test("/drain"), None),
    ];
    for (method, url, body) in &requests {
        for token in [None, Some(wrong.as_str())] {
            let r = h.request(token, method, url, *body, &[]);
            assert_eq!(
                r.status, 401,
                "{method} {url} with token {token:?}: {}",
                r.text
            );
            if url.starts_with(&h.base) {
                // SCIM answers in the SCIM error shape.
                r.expect_error(401, None);
            }
        }
    }
    // Another scheme with the right token is no bearer token.
    let r = h.request(
        None,
        "GET",
        &scim("/Users"),
        None,
        &[("authorization", &format!("Basic {}", h.token))],
    );
    assert_eq!(r.status, 401, "{}", r.text);
    // Nothing was written or deleted.
    h.get(&format!("/Users/{id}")).expect(200);
    let (names, total) = h.user_names(&format!("userName eq \"{name}\""));
    assert_eq!((names.len(), total), (0, 0));
}
