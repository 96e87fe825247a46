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
