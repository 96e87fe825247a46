//! Queries over HTTP: the filter language, index and cursor paging,
//! sorting, projection and /.search against the SQLite host.

use serde_json::{Value, json};

use crate::support::{ENTERPRISE, Server, encode};

fn user_names(v: &Value) -> Vec<String> {
    v["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["userName"].as_str().unwrap_or("?").to_string())
        .collect()
}

/// A small directory with the shapes identity providers filter on.
fn directory(s: &Server) {
    for (i, (name, dept)) in [
        ("bjensen", "Tours"),
        ("jsmith", "Sales"),
        ("adoe", "Tours"),
        ("mlee", "R&D"),
    ]
    .iter()
    .enumerate()
    {
        s.post(
            "/Users",
            &json!({
                "userName": name,
                "externalId": format!("EXT-{i}"),
                "title": format!("100% {name}_title"),
                "active": i != 1,
                "emails": [
                    {"value": format!("{name}@work.example.com"), "type": "work", "primary": true},
                    {"value": format!("{name}@home.example.org"), "type": "home"}
                ],
                ENTERPRISE: {"department": dept, "employeeNumber": format!("{}", 100 + i)},
                // U+212A KELVIN SIGN lower-cases to an ASCII 'k'.
                "nickName": (*name == "mlee").then_some("Degrees in \u{212A}elvin"),
            }),
        )
        .expect(201);
    }
}

#[test]
fn filters_identity_providers_send() {
    let s = Server::start();
    directory(&s);
    let cases: &[(&str, &[&str])] = &[
        (r#"userName eq "BJENSEN""#, &["bjensen"]),
        (r#"externalId eq "EXT-2""#, &["adoe"]),
        (r#"externalId eq "ext-2""#, &[]),
        (
            r#"emails[type eq "work"].value eq "jsmith@work.example.com""#,
            &["jsmith"],
        ),
        (
            r#"emails[type eq "home"].value eq "jsmith@work.example.com""#,
            &[],
        ),
        (
            r#"emails[type eq "work" and value co "@WORK"]"#,
            &["bjensen", "jsmith", "adoe", "mlee"],
        ),
        (
            r#"userName sw "j" or userName eq "mlee" and active eq false"#,
            &["jsmith"],
        ),
        (
            r#"not (userName sw "b" or userName sw "j")"#,
            &["adoe", "mlee"],
        ),
        (
            r#"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department eq "Tours""#,
            &["bjensen", "adoe"],
        ),
        (
            r#"title co "100%" and title co "_title""#,
            &["bjensen", "jsmith", "adoe", "mlee"],
        ),
        (r#"title co "%_""#, &[]),
        (
            r#"meta.lastModified gt "2011-05-13T04:42:34Z""#,
            &["bjensen", "jsmith", "adoe", "mlee"],
        ),
        (r#"meta.created lt "2011-05-13T04:42:34Z""#, &[]),
        (r#"nickName pr"#, &["mlee"]),
        // Unindexed substring filters use the host's body pre-filter; a
        // value whose lower case differs outside ASCII is still found.
        (r#"nickName co "in k""#, &["mlee"]),
        (r#"nickName ew "KELVIN""#, &["mlee"]),
    ];
    for (filter, want) in cases {
        let r = s
            .get(&format!("/Users?filter={}", encode(filter)))
            .expect(200);
        assert_eq!(&user_names(&r.json), want, "{filter}");
        assert_eq!(r.json["totalResults"], want.len(), "{filter}");
    }
    for bad in [
        "userName eq",
        "nope eq \"x\"",
        "active gt true",
        "((userName pr)",
    ] {
        let r = s
            .get(&format!("/Users?filter={}", encode(bad)))
            .expect_error(400, Some("invalidFilter"));
        assert!(
            r.json["detail"].as_str().unwrap().contains("position"),
            "{}",
            r.text
        );
    }
}

#[test]
fn index_and_cursor_paging_agree() {
    let s = Server::start();
    let ids: Vec<String> = (0..25)
        .map(|i| s.create_user(&format!("page{i:02}")))
        .collect();
    let mut by_index = Vec::new();
    for start in (1..=25).step_by(10) {
        let r = s
            .get(&format!("/Users?startIndex={start}&count=10"))
            .expect(200);
        assert_eq!(r.json["totalResults"], 25);
        by_index.extend(
            r.json["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_string()),
        );
    }
    assert_eq!(by_index, ids);

    let mut by_cursor = Vec::new();
    let mut url = "/Users?cursor&count=10".to_string();
    let mut pages = 0;
    loop {
        let r = s.get(&url).expect(200);
        pages += 1;
        assert_eq!(r.json["totalResults"], 25);
        by_cursor.extend(
            r.json["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|u| u["id"].as_str().unwrap().to_string()),
        );
        match r.json["nextCursor"].as_str() {
            Some(c) => url = format!("/Users?cursor={c}&count=10"),
            None => break,
        }
    }
    assert_eq!((pages, by_cursor), (3, ids));

    let spc = s.get("/ServiceProviderConfig").json;
    assert_eq!(spc["pagination"]["cursor"], true);
    assert_eq!(spc["pagination"]["index"], true);
    assert_eq!(spc["sort"]["supported"], true);
    s.get("/Users?cursor=forged")
        .expect_error(400, Some("invalidCursor"));
}

#[test]
fn cursors_are_scoped_to_the_tenant() {
    let s = Server::start();
    for i in 0..3 {
        s.create_user(&format!("t{i}"));
    }
    let c = s.get("/Users?cursor&count=1").json["nextCursor"]
        .as_str()
        .unwrap()
        .to_string();
    // A second tenant on the same server cannot use the first one's cursor.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(["tenant", "add", "second", "--json", "--db"])
        .arg(s.db_arg())
        .output()
        .unwrap();
    let created: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let token = created["scimToken"].as_str().unwrap().to_string();
    let auth = format!("Bearer {token}");
    let r = s.raw(
        "GET",
        &format!("/Users?cursor={c}"),
        Vec::new(),
        &[("authorization", &auth)],
    );
    r.expect_error(400, Some("invalidCursor"));
    // And sees none of the first tenant's users.
    let r = s
        .raw("GET", "/Users", Vec::new(), &[("authorization", &auth)])
        .expect(200);
    assert_eq!(r.json["totalResults"], 0);
}

#[test]
fn sorting_and_projection() {
    let s = Server::start();
    directory(&s);
    let r = s
        .get("/Users?sortBy=userName&sortOrder=descending&attributes=userName")
        .expect(200);
    assert_eq!(user_names(&r.json), ["mlee", "jsmith", "bjensen", "adoe"]);
    for u in r.json["Resources"].as_array().unwrap() {
        let keys: Vec<_> = u.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["schemas", "id", "userName"]);
    }
    let r = s
        .get(&format!(
            "/Users?sortBy={}&attributes={}",
            encode("urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:employeeNumber"),
            encode(
                "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department,emails.value"
            )
        ))
        .expect(200);
    let first = &r.json["Resources"][0];
    assert_eq!(first[ENTERPRISE], json!({"department": "Tours"}));
    assert_eq!(
        first["emails"][0],
        json!({"value": "bjensen@work.example.com"})
    );
    let r = s.get("/Users?excludedAttributes=emails,meta,urn:ietf:params:scim:schemas:extension:enterprise:2.0:User").expect(200);
    let first = r.json["Resources"][0].as_object().unwrap().clone();
    assert!(
        !first.contains_key("emails")
            && !first.contains_key("meta")
            && !first.contains_key(ENTERPRISE)
    );
}

#[test]
fn search_with_post() {
    let s = Server::start();
    directory(&s);
    s.create_group("Tour guides", &[]);
    let r = s
        .post(
            "/Users/.search",
            &json!({
                "schemas": ["urn:ietf:params:scim:api:messages:2.0:SearchRequest"],
                "filter": "emails.value ew \"example.org\" and active eq true",
                "sortBy": "userName",
                "attributes": ["userName"],
                "startIndex": 2,
                "count": 1,
            }),
        )
        .expect(200);
    assert_eq!(r.json["totalResults"], 3);
    assert_eq!(user_names(&r.json), ["bjensen"]);
    let r = s
        .post(
            "/.search",
            &json!({"filter": "meta.resourceType pr", "count": 10}),
        )
        .expect(200);
    assert_eq!(r.json["totalResults"], 5);
    let r = s
        .post("/.search", &json!({"filter": "displayName sw \"tour\""}))
        .expect(200);
    assert_eq!(r.json["Resources"][0]["displayName"], "Tour guides");
    s.post("/Users/.search", &json!({"filter": 7}))
        .expect_error(400, Some("invalidSyntax"));
    s.raw(
        "POST",
        "/Users/.search",
        b"{".to_vec(),
        &[("authorization", &format!("Bearer {}", s.token))],
    )
    .expect_error(400, Some("invalidSyntax"));
}
