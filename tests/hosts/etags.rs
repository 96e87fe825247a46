//! Versions: `ETag` on reads and writes, `If-None-Match` answered with 304,
//! a stale `If-Match` refused with 412 and nothing changed.

use serde_json::json;

use crate::support::{Host, USER_SCHEMA, patch_ops, unique};

pub fn etags_and_preconditions(h: &Host) {
    let name = unique("etag.user");
    let id = h.create_user(&name);
    let path = format!("/Users/{id}");
    let r = h.get(&path).expect(200);
    let v1 = r
        .header("etag")
        .unwrap_or_else(|| panic!("no ETag on GET: {:?}", r.headers))
        .to_string();
    assert!(v1.starts_with("W/\""), "a weak ETag: {v1}");
    assert_eq!(r.json["meta"]["version"], v1.as_str(), "{}", r.text);

    // Unchanged: 304 without a body.
    let r = h.send("GET", &path, None, &[("if-none-match", &v1)]);
    assert_eq!(r.status, 304, "{}", r.text);
    assert!(r.text.is_empty(), "{}", r.text);
    // Another version: the resource.
    h.send("GET", &path, None, &[("if-none-match", "W/\"stale\"")])
        .expect(200);

    // A write with the current version succeeds and changes it.
    let patch = patch_ops(json!([{"op": "replace", "path": "title", "value": "First"}]));
    let r = h
        .send("PATCH", &path, Some(&patch), &[("if-match", &v1)])
        .expect(200);
    let v2 = r.header("etag").expect("ETag on PATCH").to_string();
    assert_ne!(v1, v2);
    assert_eq!(r.json["meta"]["version"], v2.as_str(), "{}", r.text);
    let r = h.get(&path).expect(200);
    assert_eq!(r.header("etag"), Some(v2.as_str()));
    // The old version no longer matches.
    h.send("GET", &path, None, &[("if-none-match", &v1)])
        .expect(200);

    // Stale If-Match: 412 on PATCH, PUT and DELETE, and nothing changes.
    let patch = patch_ops(json!([{"op": "replace", "path": "title", "value": "Second"}]));
    h.send("PATCH", &path, Some(&patch), &[("if-match", &v1)])
        .expect_error(412, None);
    let put = json!({"schemas": [USER_SCHEMA], "userName": name, "title": "Third"});
    h.send("PUT", &path, Some(&put), &[("if-match", &v1)])
        .expect_error(412, None);
    h.send("DELETE", &path, None, &[("if-match", &v1)])
        .expect_error(412, None);
    let r = h.get(&path).expect(200);
    assert_eq!(r.json["title"], "First", "{}", r.text);
    assert_eq!(r.header("etag"), Some(v2.as_str()));

    // `*` matches any version.
    h.send("PUT", &path, Some(&put), &[("if-match", "*")])
        .expect(200);
    let r = h.get(&path).expect(200);
    assert_eq!(r.json["title"], "Third", "{}", r.text);
    let v3 = r.header("etag").expect("ETag").to_string();
    h.send("DELETE", &path, None, &[("if-match", &v3)])
        .expect(204);
    h.get(&path).expect_error(404, None);
}
