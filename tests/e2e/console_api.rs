//! The admin console's server side: its page and assets with their security
//! headers, sign-in that exchanges the admin token for a session cookie,
//! CSRF and Origin checks on the cookie's writes, sessions that end (sign
//! out, expiry, a rotated admin token), one tenant's session never seeing
//! another's data, and the admin API the console reads (overview, sync-log
//! filters and CSV, learner search, policy, token rotation).

use serde_json::{Value, json};

use crate::support::{LmsServer, Resp, into_resp};

/// A browser's view of the server: no bearer token, only what it sends.
struct Browser<'a> {
    s: &'a LmsServer,
    client: reqwest::blocking::Client,
    /// The `scim_admin` cookie's value, once signed in.
    cookie: Option<String>,
    csrf: Option<String>,
}

impl<'a> Browser<'a> {
    fn new(s: &'a LmsServer) -> Self {
        Browser {
            s,
            client: reqwest::blocking::Client::new(),
            cookie: None,
            csrf: None,
        }
    }

    /// A request with the session cookie (when signed in) and `headers`.
    fn send(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = self
            .client
            .request(method.parse().expect("method"), self.s.admin_url(path));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", format!("scim_admin={c}"));
        }
        if let Some(b) = body {
            req = req
                .header("content-type", "application/json")
                .body(b.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        into_resp(req.send().expect("request"))
    }

    fn get(&self, path: &str) -> Resp {
        self.send("GET", path, None, &[])
    }

    /// A write as the console sends it: with the session's CSRF token.
    fn write(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        let csrf = self.csrf.clone().expect("signed in");
        self.send(method, path, body, &[("x-csrf-token", &csrf)])
    }

    /// Signs in with `token`; keeps the cookie and CSRF token on success.
    fn sign_in(&mut self, token: &str) -> Resp {
        let r = self.send(
            "POST",
            "/admin/v1/session",
            Some(&json!({"token": token})),
            &[],
        );
        if r.status == 201 {
            let set = r.header("set-cookie").expect("a cookie").to_string();
            let value = set
                .strip_prefix("scim_admin=")
                .and_then(|v| v.split(';').next())
                .expect("the scim_admin cookie");
            self.cookie = Some(value.to_string());
            self.csrf = r.json["csrf"].as_str().map(str::to_string);
        }
        r
    }
}

/// Asserts an admin API refusal: this status and a detail for people.
#[track_caller]
fn refused(r: Resp, status: u16) -> Resp {
    let r = r.expect(status);
    assert_eq!(r.json["status"], status, "{}", r.text);
    assert!(
        r.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
        "{}",
        r.text
    );
    r
}

fn roles(s: &LmsServer) -> Vec<String> {
    let c = s.admin_get("/admin/v1/catalogue").expect(200);
    c.json["roles"]
        .as_array()
        .unwrap_or_else(|| panic!("no roles: {}", c.text))
        .iter()
        .map(|r| {
            r.as_str()
                .map_or_else(|| r["name"].to_string(), str::to_string)
        })
        .collect()
}

#[test]
fn sign_in_exchanges_the_admin_token_for_a_strict_http_only_cookie() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    refused(b.sign_in("adm_wrong"), 401);
    refused(b.sign_in(&s.token), 401); // the SCIM token opens nothing here
    refused(
        b.send("POST", "/admin/v1/session", Some(&json!({})), &[]),
        400,
    );
    refused(b.get("/admin/v1/session"), 401);
    refused(b.get("/admin/v1/catalogue"), 401);

    let r = b.sign_in(&s.admin_token).expect(201);
    let cookie = r.header("set-cookie").unwrap();
    let value = b.cookie.clone().unwrap();
    assert_eq!(value.len(), 64, "{cookie}");
    assert!(value.chars().all(|c| c.is_ascii_hexdigit()), "{cookie}");
    for attribute in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/admin",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    assert_eq!(r.json["tenant"], "default", "{}", r.text);
    let csrf = r.json["csrf"].as_str().unwrap();
    assert_eq!(csrf.len(), 64);
    assert_ne!(csrf, value);
    let expires = r.json["expires"].as_str().unwrap();
    assert!(
        time::OffsetDateTime::parse(expires, &time::format_description::well_known::Rfc3339)
            .is_ok(),
        "{expires}"
    );
    // Only the cookie's hash is stored.
    assert_eq!(s.query_i64("SELECT count(*) FROM admin_sessions"), 1);

    let again = b.get("/admin/v1/session").expect(200);
    assert_eq!(again.json, r.json);
    b.get("/admin/v1/catalogue").expect(200);
    b.get("/admin/v1/sync").expect(200);
    b.get("/admin/v1/events").expect(200);

    // A cookie that names no session opens nothing.
    let mut forged = Browser::new(&s);
    forged.cookie = Some("ab".repeat(32));
    refused(forged.get("/admin/v1/catalogue"), 401);
    refused(forged.get("/admin/v1/session"), 401);
}

#[test]
fn the_cookies_writes_need_the_csrf_token_and_the_servers_own_origin() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin_token).expect(201);
    let before = roles(&s);
    let add = |name: &str| json!({"name": name});

    let r = refused(
        b.send(
            "POST",
            "/admin/v1/catalogue/roles",
            Some(&add("no-csrf")),
            &[],
        ),
        403,
    );
    assert!(
        r.json["detail"].as_str().unwrap().contains("X-CSRF-Token"),
        "{}",
        r.text
    );
    refused(
        b.send(
            "POST",
            "/admin/v1/catalogue/roles",
            Some(&add("wrong-csrf")),
            &[("x-csrf-token", &"0".repeat(64))],
        ),
        403,
    );
    let csrf = b.csrf.clone().unwrap();
    // A forged cross-site POST: right cookie (a browser sends it), even a
    // guessed token, but another site's Origin.
    refused(
        b.send(
            "POST",
            "/admin/v1/catalogue/roles",
            Some(&add("cross-site")),
            &[("x-csrf-token", &csrf), ("origin", "https://evil.example")],
        ),
        403,
    );
    refused(
        b.send(
            "DELETE",
            "/admin/v1/session",
            None,
            &[("x-csrf-token", &csrf), ("origin", "null")],
        ),
        403,
    );
    // A cross-site sign-in (login CSRF) is refused too.
    refused(
        b.send(
            "POST",
            "/admin/v1/session",
            Some(&json!({"token": s.admin_token})),
            &[("origin", "https://evil.example")],
        ),
        403,
    );
    assert_eq!(roles(&s), before, "refused writes changed nothing");
    refused(b.send("DELETE", "/admin/v1/session", None, &[]), 403);
    b.get("/admin/v1/session").expect(200);

    b.write("POST", "/admin/v1/catalogue/roles", Some(&add("with-csrf")))
        .expect(201);
    let origin = s.origin();
    b.send(
        "POST",
        "/admin/v1/catalogue/roles",
        Some(&add("same-origin")),
        &[("x-csrf-token", &csrf), ("origin", &origin)],
    )
    .expect(201);
    // Bearer requests (the CLI, scripts) need neither.
    s.admin("POST", "/admin/v1/catalogue/roles", Some(&add("bearer")))
        .expect(201);
    let now = roles(&s);
    for r in ["with-csrf", "same-origin", "bearer"] {
        assert!(now.contains(&r.to_string()), "{r} in {now:?}");
    }
    for r in ["no-csrf", "wrong-csrf", "cross-site"] {
        assert!(!now.contains(&r.to_string()), "{r} in {now:?}");
    }
}

#[test]
fn sessions_end_at_sign_out_expiry_and_admin_token_rotation() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin_token).expect(201);
    let r = b.write("DELETE", "/admin/v1/session", None).expect(204);
    let cleared = r.header("set-cookie").unwrap();
    assert!(cleared.starts_with("scim_admin=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    refused(b.get("/admin/v1/session"), 401);
    refused(b.get("/admin/v1/catalogue"), 401);
    assert_eq!(s.query_i64("SELECT count(*) FROM admin_sessions"), 0);

    // Expired: refused, and purged at the next sign-in.
    b.sign_in(&s.admin_token).expect(201);
    s.query_i64(
        "UPDATE admin_sessions SET expires = '2000-01-01T00:00:00.000Z' RETURNING CAST(1 AS BIGINT)",
    );
    let r = refused(b.get("/admin/v1/catalogue"), 401);
    assert!(
        r.json["detail"].as_str().unwrap().contains("sign in again"),
        "{}",
        r.text
    );
    refused(b.get("/admin/v1/session"), 401);
    b.sign_in(&s.admin_token).expect(201);
    assert_eq!(s.query_i64("SELECT count(*) FROM admin_sessions"), 1);

    // A rotated admin token (the CLI's) ends every session of the tenant.
    let mut second = Browser::new(&s);
    second.sign_in(&s.admin_token).expect(201);
    let out = s.cli(&["tenant", "rotate-token", "default", "--admin"]);
    assert!(out.status.success(), "{out:?}");
    let fresh = String::from_utf8(out.stdout).unwrap().trim().to_string();
    refused(b.get("/admin/v1/session"), 401);
    refused(second.get("/admin/v1/catalogue"), 401);
    b.sign_in(&fresh).expect(201);
    b.get("/admin/v1/catalogue").expect(200);
}

#[test]
fn sign_in_is_throttled_per_address_after_ten_failures() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    for _ in 0..10 {
        refused(b.sign_in("adm_guess"), 401);
    }
    let r = refused(b.sign_in(&s.admin_token), 429);
    let secs: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&secs), "{secs}");
    // Bearer requests are not sign-ins.
    s.admin_get("/admin/v1/sync").expect(200);
}

#[test]
fn the_console_is_served_with_a_strict_content_security_policy() {
    let s = LmsServer::start();
    let b = Browser::new(&s);
    for path in [
        "/admin",
        "/admin/",
        "/admin/assets/index.html",
        "/admin/assets/nothing.js",
    ] {
        let r = b.get(path);
        let csp = r.header("content-security-policy").unwrap_or_default();
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
            "base-uri 'none'",
        ] {
            assert!(
                csp.contains(directive),
                "{path}: {directive} missing from {csp:?}"
            );
        }
        assert!(!csp.contains("unsafe-inline"), "{path}: {csp}");
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(r.header("referrer-policy"), Some("no-referrer"), "{path}");
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{path}");
        if path.ends_with("nothing.js") {
            assert_eq!(r.status, 404, "{path}");
        } else {
            assert_eq!(r.status, 200, "{path}: {}", r.text);
        }
    }
    let page = b.get("/admin").expect(200);
    assert!(
        page.header("content-type")
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(page.header("cache-control"), Some("no-store"));
    assert!(page.text.contains("<title>"), "{}", page.text);
    assert!(!page.text.contains(&s.admin_token));
    b.get("/admin/assets/../Cargo.toml").expect(404);
    b.get("/admin/assets/").expect(404);
}

/// A user with a display name and an email.
fn person(s: &LmsServer, user_name: &str, display: &str, email: &str) -> String {
    let r = s
        .post(
            "/Users",
            &json!({
                "schemas": [crate::support::USER_SCHEMA],
                "userName": user_name,
                "displayName": display,
                "emails": [{"value": email, "type": "work", "primary": true}],
                "active": true,
            }),
        )
        .expect(201);
    r.json["id"].as_str().expect("id").to_string()
}

/// A second tenant's admin token, with one user of its own.
fn second_tenant(s: &LmsServer) -> (String, String) {
    let t = s.cli_json(&["tenant", "add", "second", "--json"]);
    let scim = t["scimToken"].as_str().unwrap().to_string();
    let admin = t["adminToken"].as_str().unwrap().to_string();
    let r = s.send_as(
        Some(&scim),
        "POST",
        &s.url("/Users"),
        Some(&json!({"schemas": [crate::support::USER_SCHEMA], "userName": "second.only"})),
    );
    assert_eq!(r.status, 201, "{}", r.text);
    (admin, r.json["id"].as_str().unwrap().to_string())
}

fn ids(events: &Value) -> Vec<i64> {
    events
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {events}"))
        .iter()
        .map(|e| e["id"].as_i64().expect("an id"))
        .collect()
}

#[test]
fn the_overview_counts_requests_and_failures_per_hour_and_shows_the_mapper() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin_token).expect(201);
    let empty = b.get("/admin/v1/overview").expect(200);
    assert_eq!(empty.json["tenant"], "default");
    assert_eq!(empty.json["hours"].as_array().unwrap().len(), 24);
    assert_eq!(empty.json["outbox"], json!({"backlog": 0, "oldest": null}));
    assert_eq!(
        empty.json["mapper"],
        json!({"kind": "default", "version": null, "disabled": false,
            "disabledReason": null, "failures": 0})
    );
    assert_eq!(empty.json["latestFailures"], json!([]));

    s.create_user("ann");
    s.create_user("bob");
    s.post(
        "/Users",
        &json!({"schemas": [crate::support::USER_SCHEMA], "userName": "ann"}),
    )
    .expect(409);
    let o = b.get("/admin/v1/overview").expect(200).json;
    let hours = o["hours"].as_array().unwrap();
    assert_eq!(hours.len(), 24);
    let stamps: Vec<&str> = hours.iter().map(|h| h["hour"].as_str().unwrap()).collect();
    let mut sorted = stamps.clone();
    sorted.sort();
    assert_eq!(stamps, sorted, "oldest first");
    assert!(stamps.iter().all(|h| h.ends_with(":00:00Z")), "{stamps:?}");
    let now = &hours[23];
    assert_eq!(now["requests"], 3, "{o}");
    assert_eq!(now["failures"], 1, "{o}");
    let earlier: i64 = hours[..23]
        .iter()
        .map(|h| h["requests"].as_i64().unwrap())
        .sum();
    assert_eq!(earlier, 0);
    let latest = o["latestFailures"].as_array().unwrap();
    assert_eq!(latest.len(), 1, "{o}");
    assert_eq!(latest[0]["status"], "failure");
    assert_eq!(latest[0]["reason"], "uniqueness");

    let rules = "version = 1\ngroups_as_teams = true\n\n[[rule]]\nname = \"everyone\"\ngrant = { role = \"learner\" }\n";
    let r = reqwest::blocking::Client::new()
        .put(s.admin_url("/admin/v1/mapping?confirm=true"))
        .bearer_auth(&s.admin_token)
        .body(rules)
        .send()
        .expect("install rules");
    assert!(r.status().is_success(), "{:?}", r.text());
    let mapper = &b.get("/admin/v1/overview").expect(200).json["mapper"];
    assert_eq!(mapper["kind"], "rules", "{mapper}");
    assert!(mapper["version"].as_i64().is_some(), "{mapper}");

    // Another tenant's overview shows none of this.
    let (other, _) = second_tenant(&s);
    let mut o2 = Browser::new(&s);
    o2.sign_in(&other).expect(201);
    let theirs = o2.get("/admin/v1/overview").expect(200).json;
    assert_eq!(theirs["tenant"], "second");
    assert_eq!(theirs["hours"][23]["failures"], 0, "{theirs}");
    assert_eq!(theirs["latestFailures"], json!([]));
    assert_eq!(theirs["mapper"]["kind"], "default");
}

#[test]
fn the_sync_log_filters_pages_and_exports_csv() {
    let s = LmsServer::start();
    let b = {
        let mut b = Browser::new(&s);
        b.sign_in(&s.admin_token).expect(201);
        b
    };
    for n in ["u1", "u2", "u3"] {
        s.create_user(n);
    }
    s.post(
        "/Users",
        &json!({"schemas": [crate::support::USER_SCHEMA], "userName": "u1"}),
    )
    .expect(409);
    let all = b.get("/admin/v1/events?limit=1000").expect(200).json;
    assert_eq!(all["next"], Value::Null, "{all}");
    let all_ids = ids(&all["events"]);
    assert!(all_ids.len() >= 7, "{all}");
    assert!(all_ids.windows(2).all(|w| w[0] > w[1]), "newest first");

    // Pages: `next` is the `before` of the following page, to the end.
    let mut paged = Vec::new();
    let mut before: Option<String> = None;
    loop {
        let q = match &before {
            Some(id) => format!("/admin/v1/events?limit=2&before={id}"),
            None => "/admin/v1/events?limit=2".to_string(),
        };
        let page = b.get(&q).expect(200).json;
        let page_ids = ids(&page["events"]);
        assert!(page_ids.len() <= 2);
        paged.extend(page_ids);
        match page["next"].as_str() {
            Some(n) => before = Some(n.to_string()),
            None => break,
        }
    }
    assert_eq!(paged, all_ids);

    let failed = &b.get("/admin/v1/events?failed=true").expect(200).json["events"];
    assert_eq!(failed.as_array().unwrap().len(), 1, "{failed}");
    let request = failed[0]["requestId"].as_str().unwrap();
    let change = failed[0]["changeId"].as_str().unwrap();
    let same = &b
        .get(&format!("/admin/v1/events?request={request}"))
        .expect(200)
        .json["events"];
    assert_eq!(ids(same), vec![failed[0]["id"].as_i64().unwrap()]);
    let same = &b
        .get(&format!("/admin/v1/events?change={change}"))
        .expect(200)
        .json["events"];
    assert!(
        same.as_array()
            .unwrap()
            .iter()
            .all(|e| e["changeId"] == change),
        "{same}"
    );

    let creates = &b
        .get("/admin/v1/events?action=create&limit=1000")
        .expect(200)
        .json["events"];
    let creates = creates.as_array().unwrap();
    assert!(!creates.is_empty());
    assert!(
        creates.iter().all(|e| e["action"] == "create"),
        "{creates:?}"
    );
    let none = &b.get("/admin/v1/events?until=2000-01-01").expect(200).json["events"];
    assert_eq!(none, &json!([]));
    let none = &b
        .get("/admin/v1/events?since=2999-01-01T00:00:00Z")
        .expect(200)
        .json["events"];
    assert_eq!(none, &json!([]));
    let now = &b
        .get("/admin/v1/events?until=2999-01-01&limit=1000")
        .expect(200)
        .json["events"];
    assert_eq!(ids(now), all_ids);

    let csv = b.get("/admin/v1/events?format=csv&limit=1000").expect(200);
    assert!(
        csv.header("content-type").unwrap().starts_with("text/csv"),
        "{:?}",
        csv.headers
    );
    assert_eq!(
        csv.header("content-disposition"),
        Some("attachment; filename=\"sync-log.csv\"")
    );
    let mut lines = csv.text.lines();
    assert_eq!(
        lines.next(),
        Some(
            "id,time,action,resourceType,resourceId,resourceName,status,reason,detail,requestId,changeId"
        )
    );
    assert_eq!(lines.count(), all_ids.len(), "{}", csv.text);
    assert!(csv.text.contains(",failure,uniqueness,"), "{}", csv.text);

    for bad in [
        "before=abc",
        "before=-3",
        "until=yesterday",
        "since=soon",
        "format=xml",
        "action=",
        "request=",
        "limit=0",
        "failed=maybe",
    ] {
        refused(b.get(&format!("/admin/v1/events?{bad}")), 400);
    }

    // Another tenant's session finds none of it, by user, request or id.
    let (other, _) = second_tenant(&s);
    let mut o = Browser::new(&s);
    o.sign_in(&other).expect(201);
    for q in [
        "user=u1".to_string(),
        format!("request={request}"),
        format!("change={change}"),
        "failed=true".to_string(),
    ] {
        let r = o.get(&format!("/admin/v1/events?{q}")).expect(200);
        assert_eq!(r.json["events"], json!([]), "{q}: {}", r.text);
    }
    let csv = o.get("/admin/v1/events?format=csv&user=u1").expect(200);
    assert_eq!(csv.text.lines().count(), 1, "{}", csv.text);
}

#[test]
fn learners_are_found_by_id_name_or_email_within_the_tenant_only() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin_token).expect(201);
    let alice = person(&s, "alice.smith", "Alice Smith", "Alice@Example.com");
    let bob = person(&s, "bob.jones", "Bob Jones", "bob@example.com");
    person(&s, "carol_x", "Carol", "carol@other.org");
    let search = |q: &str| -> Vec<String> {
        let r = b
            .get(&format!(
                "/admin/v1/learners?q={}",
                crate::support::encode(q)
            ))
            .expect(200);
        r.json["learners"]
            .as_array()
            .unwrap_or_else(|| panic!("{}", r.text))
            .iter()
            .map(|l| l["userName"].as_str().unwrap().to_string())
            .collect()
    };
    assert_eq!(search("ALICE"), ["alice.smith"]);
    assert_eq!(search("smith"), ["alice.smith"], "a substring");
    assert_eq!(search("example.com"), ["alice.smith", "bob.jones"]);
    assert_eq!(search("bob jones"), ["bob.jones"], "by display name");
    assert_eq!(search(&alice), ["alice.smith"], "by id");
    assert_eq!(search("%"), Vec::<String>::new(), "wildcards are literal");
    assert_eq!(search("_"), ["carol_x"]);
    // Prefix matches come first.
    assert_eq!(search("c"), ["carol_x", "alice.smith", "bob.jones"]);
    let r = b.get(&format!("/admin/v1/learners?q={bob}")).expect(200);
    assert_eq!(
        r.json["learners"][0],
        json!({"id": bob, "userName": "bob.jones", "displayName": "Bob Jones",
            "email": "bob@example.com", "status": "active"})
    );
    let r = b.get("/admin/v1/learners?q=example&limit=1").expect(200);
    assert_eq!(r.json["learners"].as_array().unwrap().len(), 1);
    for bad in [
        "",
        "?q=",
        "?q=%20%20",
        "?q=a&limit=0",
        "?q=a&limit=101",
        "?q=a&limit=x",
    ] {
        refused(b.get(&format!("/admin/v1/learners{bad}")), 400);
    }

    // Tenant isolation: the second tenant's session sees its own learner only.
    let (other, theirs) = second_tenant(&s);
    let mut o = Browser::new(&s);
    o.sign_in(&other).expect(201);
    let r = o.get("/admin/v1/learners?q=example.com").expect(200);
    assert_eq!(r.json["learners"], json!([]), "{}", r.text);
    let r = o.get(&format!("/admin/v1/learners?q={alice}")).expect(200);
    assert_eq!(r.json["learners"], json!([]), "{}", r.text);
    refused(o.get(&format!("/admin/v1/learners/{alice}")), 404);
    refused(o.get(&format!("/admin/v1/learners/{alice}/explain")), 404);
    let r = o.get("/admin/v1/learners?q=second").expect(200);
    assert_eq!(r.json["learners"][0]["id"], theirs.as_str());
    // ... and the first tenant's session cannot write to it either.
    refused(
        b.write(
            "POST",
            &format!("/admin/v1/learners/{theirs}/roles"),
            Some(&json!({"name": "learner"})),
        ),
        404,
    );
    b.get(&format!("/admin/v1/learners/{alice}")).expect(200);
}

#[test]
fn the_policy_is_read_and_changed_in_part_and_nonsense_is_refused() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin_token).expect(201);
    let initial = json!({"onDelete": "suspend", "drift": "restore", "confirmThreshold": 5.0,
        "pluginDeniedRoles": []});
    assert_eq!(b.get("/admin/v1/policy").expect(200).json, initial);

    let r = b
        .write("PUT", "/admin/v1/policy", Some(&json!({"drift": "report"})))
        .expect(200);
    assert_eq!(r.json["drift"], "report");
    assert_eq!(r.json["onDelete"], "suspend", "untouched");
    let r = b
        .write(
            "PUT",
            "/admin/v1/policy",
            Some(&json!({"onDelete": "remove", "confirmThreshold": 12.5,
                "pluginDeniedRoles": ["admin", "admin", " owner "]})),
        )
        .expect(200);
    let changed = json!({"onDelete": "remove", "drift": "report", "confirmThreshold": 12.5,
        "pluginDeniedRoles": ["admin", "owner"]});
    assert_eq!(r.json, changed);
    assert_eq!(b.get("/admin/v1/policy").expect(200).json, changed);

    for bad in [
        json!({"onDelete": "explode"}),
        json!({"drift": 1}),
        json!({"confirmThreshold": 101}),
        json!({"confirmThreshold": -1}),
        json!({"confirmThreshold": "5"}),
        json!({"pluginDeniedRoles": "admin"}),
        json!({"pluginDeniedRoles": [1]}),
        json!({"ondelete": "remove"}),
        json!(["drift"]),
        json!({"drift": "report", "onDelete": "nope"}),
    ] {
        refused(b.write("PUT", "/admin/v1/policy", Some(&bad)), 400);
    }
    // Without the CSRF token, nothing changes either.
    refused(
        b.send(
            "PUT",
            "/admin/v1/policy",
            Some(&json!({"drift": "restore"})),
            &[],
        ),
        403,
    );
    assert_eq!(b.get("/admin/v1/policy").expect(200).json, changed);
    // The bearer sees the same.
    assert_eq!(s.admin_get("/admin/v1/policy").expect(200).json, changed);
}

#[test]
fn tokens_are_rotated_once_shown_and_a_new_admin_token_ends_the_sessions() {
    let s = LmsServer::start();
    let mut b = Browser::new(&s);
    b.sign_in(&s.admin_token).expect(201);
    refused(b.send("POST", "/admin/v1/tokens/scim", None, &[]), 403);
    let r = b.write("POST", "/admin/v1/tokens/scim", None).expect(200);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let scim = r.json["token"].as_str().unwrap().to_string();
    assert!(scim.starts_with("scim_"), "{scim}");
    let users = s.url("/Users");
    s.send_as(Some(&s.token), "GET", &users, None).expect(401);
    s.send_as(Some(&scim), "GET", &users, None).expect(200);
    refused(b.write("POST", "/admin/v1/tokens/other", None), 404);
    b.get("/admin/v1/session").expect(200);

    let mut other_session = Browser::new(&s);
    other_session.sign_in(&s.admin_token).expect(201);
    let r = b.write("POST", "/admin/v1/tokens/admin", None).expect(200);
    let cleared = r.header("set-cookie").unwrap();
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
    let admin = r.json["token"].as_str().unwrap().to_string();
    assert!(admin.starts_with("adm_"), "{admin}");
    refused(b.get("/admin/v1/session"), 401);
    refused(other_session.get("/admin/v1/overview"), 401);
    s.admin_get("/admin/v1/sync").expect(401);
    let sync = s.admin_url("/admin/v1/sync");
    s.send_as(Some(&admin), "GET", &sync, None).expect(200);
    // The bearer rotates too (a script), and the SCIM token opens nothing.
    let r = s.send_as(
        Some(&admin),
        "POST",
        &s.admin_url("/admin/v1/tokens/admin"),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.text);
    s.send_as(
        Some(&scim),
        "POST",
        &s.admin_url("/admin/v1/tokens/admin"),
        None,
    )
    .expect(401);
}

#[test]
fn over_tls_the_session_cookie_is_secure() {
    let dir = tempfile::tempdir().expect("temp dir");
    let issued =
        rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let (cert, key) = (dir.path().join("c.crt"), dir.path().join("c.key"));
    std::fs::write(&cert, issued.cert.pem()).unwrap();
    std::fs::write(&key, issued.signing_key.serialize_pem()).unwrap();
    let s = LmsServer::start_with(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    assert!(s.admin_url("/admin").starts_with("https://"));
    let mut b = Browser::new(&s);
    b.client = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(issued.cert.pem().as_bytes()).unwrap())
        .build()
        .unwrap();
    let r = b.sign_in(&s.admin_token).expect(201);
    let cookie = r.header("set-cookie").unwrap();
    assert!(cookie.ends_with("; Secure"), "{cookie}");
    assert!(cookie.contains("HttpOnly; SameSite=Strict"), "{cookie}");
    b.get("/admin/v1/session").expect(200);
    let r = b.write("DELETE", "/admin/v1/session", None).expect(204);
    assert!(r.header("set-cookie").unwrap().ends_with("; Secure"));
    b.get("/admin").expect(200);
}
