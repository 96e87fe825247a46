//! Hostile requests, one table: each row is sent as raw bytes over its own
//! connection (so paths, methods and bodies reach the server exactly as
//! written) and must be answered with a clear refusal — the row's status, a
//! SCIM Error (or the admin API's error) with a detail a person can act on
//! — within [`ANSWER`]. After every row tenant B, on the same server, is
//! still served; at the end nothing of any row was written.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{GROUP_SCHEMA, LmsServer, USER_SCHEMA};

/// How long a row may take to be answered: a hang guard, far above what
/// any refusal costs.
const ANSWER: Duration = Duration::from_secs(10);
const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
const BULK_REQUEST: &str = "urn:ietf:params:scim:api:messages:2.0:BulkRequest";
const SEARCH: &str = "urn:ietf:params:scim:api:messages:2.0:SearchRequest";
/// How deep the hostile filters nest.
const DEEP: usize = 100_000;

/// Whose credentials a row carries.
#[derive(Clone)]
enum Who {
    /// Tenant A's token for the API the row targets (SCIM or admin).
    A,
    /// Tenant B's token for that API.
    B,
    /// Tenant A's token for the other API (its admin token on SCIM, its
    /// SCIM token on the admin API).
    OtherApi,
    /// No `Authorization` header.
    Nobody,
    /// This `Authorization` header, as is.
    Header(String),
}

/// What a row must be answered with.
#[derive(Clone, Copy)]
enum Expect {
    /// This status, an error body and, on SCIM paths, this scimType.
    Error(u16, Option<&'static str>),
    /// This status from the HTTP layer, before any handler: the request
    /// line or headers are past its limits, and the answer has no body.
    Http(u16),
    /// A `200` ListResponse of this many resources (none when paging past
    /// the end).
    Page(usize),
    /// A `200` BulkResponse in which every operation failed with this
    /// status (references that cannot be resolved fail per operation).
    EveryOperation(u16),
}

struct Row {
    name: String,
    method: &'static str,
    /// The request target as sent, e.g. `/scim/v2/Users?count=-1`.
    target: String,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
    who: Who,
    expect: Expect,
}

impl Row {
    fn new(name: impl Into<String>, method: &'static str, target: impl Into<String>) -> Self {
        Row {
            name: name.into(),
            method,
            target: target.into(),
            headers: Vec::new(),
            body: Vec::new(),
            who: Who::A,
            expect: Expect::Error(400, None),
        }
    }

    /// A SCIM request under `/scim/v2`.
    fn scim(name: impl Into<String>, method: &'static str, path: impl AsRef<str>) -> Self {
        Self::new(name, method, format!("/scim/v2{}", path.as_ref()))
    }

    /// An admin API request under `/admin/v1`.
    fn admin(name: impl Into<String>, method: &'static str, path: impl AsRef<str>) -> Self {
        Self::new(name, method, format!("/admin/v1{}", path.as_ref()))
    }

    fn json(self, body: &Value) -> Self {
        self.bytes("application/scim+json", body.to_string().into_bytes())
    }

    fn bytes(mut self, content_type: &str, body: Vec<u8>) -> Self {
        self.headers
            .push(("content-type", content_type.to_string()));
        self.body = body;
        self
    }

    fn who(mut self, who: Who) -> Self {
        self.who = who;
        self
    }

    fn expect(mut self, status: u16, scim_type: Option<&'static str>) -> Self {
        self.expect = Expect::Error(status, scim_type);
        self
    }

    fn http(mut self, status: u16) -> Self {
        self.expect = Expect::Http(status);
        self
    }

    fn page(mut self, resources: usize) -> Self {
        self.expect = Expect::Page(resources);
        self
    }

    fn every_operation(mut self, status: u16) -> Self {
        self.expect = Expect::EveryOperation(status);
        self
    }

    fn is_admin(&self) -> bool {
        self.target.starts_with("/admin/")
    }
}

/// An answer read off the wire.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or(Value::Null)
    }

    fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body);
        text.chars().take(600).collect()
    }
}

/// Sends one request as raw bytes and reads the answer, or says why there
/// was none within [`ANSWER`]. The body is written from a thread of its
/// own while the answer is read, so a server that refuses a large body
/// early is heard before it closes the connection.
fn exchange(
    addr: &str,
    method: &str,
    target: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Result<Answer, String> {
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(ANSWER)).expect("read timeout");
    stream
        .set_write_timeout(Some(ANSWER))
        .expect("write timeout");
    let mut head = format!("{method} {target} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (n, v) in headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let mut writer = stream.try_clone().map_err(|e| format!("clone: {e}"))?;
    let sending = std::thread::spawn(move || {
        let _ = writer.write_all(&request);
    });
    let answer = read_answer(&mut stream, started);
    let _ = stream.shutdown(std::net::Shutdown::Both);
    let _ = sending.join();
    answer
}

fn read_answer(stream: &mut TcpStream, started: Instant) -> Result<Answer, String> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let complete = |buf: &[u8]| -> Option<Answer> {
        let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = String::from_utf8_lossy(&buf[..end]).to_string();
        let mut lines = head.split("\r\n");
        let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let rest = &buf[end + 4..];
        let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        let body = if let Some(len) = find("content-length") {
            let len: usize = len.parse().ok()?;
            (rest.len() >= len).then(|| rest[..len].to_vec())?
        } else if find("transfer-encoding").is_some_and(|t| t.contains("chunked")) {
            dechunk(rest)?
        } else {
            return None;
        };
        Some(Answer {
            status,
            headers,
            body,
        })
    };
    loop {
        if let Some(a) = complete(&buf) {
            return Ok(a);
        }
        if started.elapsed() > ANSWER {
            return Err(format!("no answer within {ANSWER:?}"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => {
                // Closed: an answer without a length ends here.
                let end = buf.windows(4).position(|w| w == b"\r\n\r\n");
                let Some(end) = end else {
                    return Err(format!(
                        "the connection closed without an answer ({} bytes: {:?})",
                        buf.len(),
                        String::from_utf8_lossy(&buf)
                    ));
                };
                let mut with_length = buf[..end].to_vec();
                with_length.extend_from_slice(
                    format!("\r\ncontent-length: {}\r\n\r\n", buf.len() - end - 4).as_bytes(),
                );
                with_length.extend_from_slice(&buf[end + 4..]);
                return complete(&with_length).ok_or_else(|| "an unreadable answer".to_string());
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("read after {:?}: {e}", started.elapsed())),
        }
    }
}

/// A whole chunked body, or `None` while it is incomplete.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line = rest.windows(2).position(|w| w == b"\r\n")?;
        let size =
            usize::from_str_radix(std::str::from_utf8(&rest[..line]).ok()?.trim(), 16).ok()?;
        rest = &rest[line + 2..];
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// The server and both tenants' credentials.
struct Tenants {
    s: LmsServer,
    addr: String,
    b_scim: String,
    b_admin: String,
}

impl Tenants {
    fn authorization(&self, row: &Row) -> Option<String> {
        let token = match (&row.who, row.is_admin()) {
            (Who::A, false) => self.s.token.clone(),
            (Who::A, true) => self.s.admin_token.clone(),
            (Who::B, false) => self.b_scim.clone(),
            (Who::B, true) => self.b_admin.clone(),
            (Who::Nobody, _) => return None,
            (Who::OtherApi, false) => self.s.admin_token.clone(),
            (Who::OtherApi, true) => self.s.token.clone(),
            (Who::Header(h), _) => return Some(h.clone()),
        };
        Some(format!("Bearer {token}"))
    }

    fn send(&self, row: &Row) -> Result<Answer, String> {
        let mut headers = row.headers.clone();
        if let Some(a) = self.authorization(row) {
            headers.push(("authorization", a));
        }
        exchange(&self.addr, row.method, &row.target, &headers, &row.body)
    }

    /// A plain request with tenant `who`'s SCIM token, which must succeed.
    fn scim_ok(&self, who: Who, method: &'static str, path: &str, body: Option<&Value>) -> Value {
        let mut row = Row::scim("setup", method, path).who(who);
        if let Some(b) = body {
            row = row.json(b);
        }
        let a = self
            .send(&row)
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"));
        assert!(a.status < 300, "{method} {path}: {} {}", a.status, a.text());
        a.json()
    }

    /// What must not change: each tenant's users and groups, and A's rules
    /// and plugin.
    fn state(&self) -> Vec<Value> {
        let mut out = Vec::new();
        for who in [Who::A, Who::B] {
            for endpoint in ["/Users", "/Groups"] {
                let page =
                    self.scim_ok(who.clone(), "GET", &format!("{endpoint}?count=1000"), None);
                out.push(json!([page["totalResults"], page["Resources"]]));
            }
        }
        for path in ["/mapping", "/mapper"] {
            let a = self
                .send(&Row::admin("state", "GET", path))
                .unwrap_or_else(|e| panic!("GET {path}: {e}"));
            out.push(json!([a.status, a.json()]));
        }
        out
    }
}

fn user(name: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "userName": name})
}

/// A JSON object body padded with spaces to exactly `size` bytes.
fn padded(body: &Value, size: usize) -> Vec<u8> {
    let mut b = body.to_string().into_bytes();
    assert!(b.len() <= size);
    b.resize(size, b' ');
    b
}

fn patch(ops: Value) -> Value {
    json!({"schemas": [PATCH_OP], "Operations": ops})
}

fn bulk(ops: Value) -> Value {
    json!({"schemas": [BULK_REQUEST], "Operations": ops})
}

/// The rows. `a_user`/`a_group` are A's, `b_user` is B's; `limit` is the
/// body limit and `max_ops` Bulk's `maxOperations`; `b_cursor` is a cursor
/// B was given and `a_cursor` one A was given.
struct Fixture {
    a_user: String,
    a_group: String,
    b_user: String,
    limit: usize,
    max_ops: usize,
    a_cursor: String,
    b_cursor: String,
}

fn rows(f: &Fixture) -> Vec<Row> {
    let a_user = &f.a_user;
    let a_group = &f.a_group;
    let long_name = "a".repeat(100 * 1024);
    let deep_parens = nested(DEEP);
    let deep_not = format!(
        "{}userName eq \"x\"{}",
        "not(".repeat(DEEP),
        ")".repeat(DEEP)
    );
    let mut rows = vec![
        // Filters nested 100,000 deep.
        Row::scim(
            "filter: 100,000 nested parentheses (GET, past the URL limit)",
            "GET",
            format!("/Users?filter={}", crate::support::encode(&deep_parens)),
        )
        .http(431),
        Row::scim(
            "filter: 10,000 nested parentheses (GET)",
            "GET",
            format!("/Users?filter={}", crate::support::encode(&nested(10_000))),
        )
        .expect(400, Some("invalidFilter")),
        Row::scim("filter: 100,000 nested parentheses (POST .search)", "POST", "/Groups/.search")
            .json(&json!({"schemas": [SEARCH], "filter": deep_parens}))
            .expect(400, Some("invalidFilter")),
        Row::scim("filter: 100,000 nested not() (POST .search)", "POST", "/Users/.search")
            .json(&json!({"schemas": [SEARCH], "filter": deep_not}))
            .expect(400, Some("invalidFilter")),
        Row::scim("filter: 100,000 nested parentheses in a PATCH path", "PATCH", format!("/Groups/{a_group}"))
            .json(&patch(json!([{"op": "remove", "path": format!("members[{deep_parens}]")}])))
            .expect(400, Some("invalidPath")),
        // Bodies at and past the limit.
        Row::scim("body: 10 MB", "POST", "/Users")
            .bytes("application/scim+json", padded(&user("ten-mb"), 10 * 1024 * 1024))
            .expect(413, None),
        Row::scim("body: one byte past the limit", "POST", "/Users")
            .bytes("application/scim+json", padded(&user("past-limit"), f.limit + 1))
            .expect(413, None),
        Row::scim("body: exactly the limit, a duplicate userName", "POST", "/Users")
            .bytes("application/scim+json", padded(&user("a-existing"), f.limit))
            .expect(409, Some("uniqueness")),
        Row::scim("body: exactly the limit, not JSON at its end", "POST", "/Users")
            .bytes("application/scim+json", {
                let mut b = padded(&user("unterminated"), f.limit - 1);
                b.push(b'{');
                b
            })
            .expect(400, Some("invalidSyntax")),
        // Bytes that are not what JSON or a URL may carry.
        Row::scim("JSON: invalid UTF-8 in a string", "POST", "/Users")
            .bytes("application/scim+json", b"{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"bad\xff\xfe\"}".to_vec())
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: NUL in a string", "POST", "/Users")
            .json(&user("nul\u{0}name"))
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: NUL in a member name", "POST", "/Users")
            .json(&json!({"schemas": [USER_SCHEMA], "userName": "nul-key", "title\u{0}": "x"}))
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: raw NUL byte in a string", "POST", "/Users")
            .bytes("application/scim+json", b"{\"schemas\":[\"urn:ietf:params:scim:schemas:core:2.0:User\"],\"userName\":\"raw\x00nul\"}".to_vec())
            .expect(400, Some("invalidSyntax")),
        Row::scim("URL: %00 in an id", "GET", "/Users/abc%00def").expect(404, None),
        Row::scim("URL: %00 in a filter", "GET", "/Users?filter=userName%20eq%20%22a%00b%22")
            .expect(400, Some("invalidFilter")),
        Row::scim("URL: invalid UTF-8 in a filter", "GET", "/Users?filter=userName%20eq%20%22%FF%FE%22")
            .expect(400, Some("invalidValue")),
        Row::scim("JSON: duplicate keys", "POST", "/Users")
            .bytes("application/scim+json", format!("{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"dup-one\",\"userName\":\"dup-two\"}}").into_bytes())
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: duplicate keys differing in case", "POST", "/Users")
            .bytes("application/scim+json", format!("{{\"schemas\":[\"{USER_SCHEMA}\"],\"userName\":\"dup-one\",\"USERNAME\":\"dup-two\"}}").into_bytes())
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: a number beyond f64 (1e400)", "POST", "/Users/.search")
            .bytes("application/scim+json", format!("{{\"schemas\":[\"{SEARCH}\"],\"count\":1e400}}").into_bytes())
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: a number beyond i64", "POST", "/Users/.search")
            .bytes("application/scim+json", format!("{{\"schemas\":[\"{SEARCH}\"],\"startIndex\":99999999999999999999}}").into_bytes())
            .expect(400, Some("invalidSyntax")),
        Row::scim("JSON: a number beyond i64 as an attribute value", "PATCH", format!("/Users/{a_user}"))
            .json(&patch(json!([{"op": "replace", "path": "active", "value": 1e300}])))
            .expect(400, Some("invalidValue")),
        // Huge member lists.
        Row::scim("members: a million in a POST /Groups", "POST", "/Groups")
            .bytes("application/scim+json", million_members_group())
            .expect(413, None),
        Row::scim("members: a million in a PATCH", "PATCH", format!("/Groups/{a_group}"))
            .bytes("application/scim+json", million_members_patch())
            .expect(413, None),
        Row::scim("members: as many unknown ids as fit the limit, in a PATCH", "PATCH", format!("/Groups/{a_group}"))
            .json(&patch(json!([{"op": "add", "path": "members", "value": members_within(f.limit)}])))
            .expect(400, Some("invalidValue")),
        // 100 KB attribute names.
        Row::scim("name: 100 KB attribute in a body", "POST", "/Users")
            .json(&json!({"schemas": [USER_SCHEMA], "userName": "long-attr", long_name.clone(): "v"}))
            .expect(400, Some("invalidSyntax")),
        Row::scim("name: 100 KB attribute in a filter (GET, past the URL limit)", "GET", format!("/Users?filter={long_name}%20pr"))
            .http(414),
        Row::scim("name: 100 KB attribute in a filter", "POST", "/Users/.search")
            .json(&json!({"schemas": [SEARCH], "filter": format!("{long_name} pr")}))
            .expect(400, Some("invalidFilter")),
        // Unknown names in `attributes` are ignored (RFC 7644 §3.4.2.5):
        // the page answers with `id` alone.
        Row::scim("name: 100 KB attribute in attributes", "POST", "/Users/.search")
            .json(&json!({"schemas": [SEARCH], "attributes": [long_name]}))
            .page(2),
        Row::scim("name: 50 KB attribute in attributes=", "GET", format!("/Users?attributes={}", &long_name[..50 * 1024]))
            .page(2),
        Row::scim("name: 100 KB attribute as a PATCH path", "PATCH", format!("/Users/{a_user}"))
            .json(&patch(json!([{"op": "replace", "path": long_name, "value": "v"}])))
            .expect(400, Some("invalidPath")),
        // Paging out of range, and cursors.
        Row::scim("paging: startIndex=i64::MAX", "GET", "/Users?startIndex=9223372036854775807")
            .page(0),
        Row::scim("paging: startIndex=i64::MAX with count=i64::MAX", "GET", "/Users?startIndex=9223372036854775807&count=9223372036854775807")
            .page(0),
        Row::scim("paging: count=-1", "GET", "/Users?count=-1").page(0),
        Row::scim("paging: count=99999999999999999999", "GET", "/Users?count=99999999999999999999")
            .expect(400, Some("invalidValue")),
        Row::scim("paging: startIndex=-99999999999999999999", "GET", "/Users?startIndex=-99999999999999999999")
            .expect(400, Some("invalidValue")),
        Row::scim("cursor: random base64", "GET", "/Users?cursor=QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo0MjQyNDI&count=1")
            .expect(400, Some("invalidCursor")),
        Row::scim("cursor: not base64", "GET", "/Users?cursor=%25%25%25!!&count=1")
            .expect(400, Some("invalidCursor")),
        Row::scim("cursor: tenant B's, on tenant A", "GET", format!("/Users?cursor={}&count=1", f.b_cursor))
            .expect(400, Some("invalidCursor")),
        Row::scim("cursor: A's own, on /Groups", "GET", format!("/Groups?cursor={}&count=1", f.a_cursor))
            .expect(400, Some("invalidCursor")),
        Row::scim("cursor: A's own, truncated", "GET", format!("/Users?cursor={}&count=1", &f.a_cursor[..f.a_cursor.len() - 3]))
            .expect(400, Some("invalidCursor")),
        Row::scim("cursor: 50 KB", "GET", format!("/Users?cursor={}&count=1", "A".repeat(50 * 1024)))
            .expect(400, Some("invalidCursor")),
        // Bulk.
        Row::scim("bulk: a bulkId cycle", "POST", "/Bulk")
            .json(&bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "a",
                 "data": {"schemas": [GROUP_SCHEMA], "displayName": "cycle-a", "members": [{"value": "bulkId:b"}]}},
                {"method": "POST", "path": "/Groups", "bulkId": "b",
                 "data": {"schemas": [GROUP_SCHEMA], "displayName": "cycle-b", "members": [{"value": "bulkId:a"}]}},
            ])))
            .every_operation(409),
        Row::scim("bulk: a self reference", "POST", "/Bulk")
            .json(&bulk(json!([
                {"method": "POST", "path": "/Groups", "bulkId": "me",
                 "data": {"schemas": [GROUP_SCHEMA], "displayName": "self", "members": [{"value": "bulkId:me"}]}},
            ])))
            .every_operation(409),
        Row::scim("bulk: a reference to no operation", "POST", "/Bulk")
            .json(&bulk(json!([
                {"method": "PATCH", "path": "/Users/bulkId:nobody",
                 "data": patch(json!([{"op": "replace", "path": "active", "value": false}]))},
            ])))
            .every_operation(409),
        Row::scim(format!("bulk: maxOperations + 1 ({})", f.max_ops + 1), "POST", "/Bulk")
            .json(&bulk(Value::Array(
                (0..=f.max_ops)
                    .map(|i| json!({"method": "POST", "path": "/Users", "bulkId": format!("u{i}"), "data": user(&format!("bulk-{i}"))}))
                    .collect(),
            )))
            .expect(413, None),
    ];
    for odd in [
        json!(0),
        json!(-1),
        json!("1"),
        json!(1.5),
        json!(1e300),
        json!(true),
    ] {
        rows.push(
            Row::scim(format!("bulk: failOnErrors = {odd}"), "POST", "/Bulk")
                .json(&json!({"schemas": [BULK_REQUEST], "failOnErrors": odd,
                              "Operations": [{"method": "POST", "path": "/Users", "bulkId": "x", "data": user("bulk-odd")}]}))
                .expect(400, Some("invalidSyntax")),
        );
    }
    rows.extend([
        // Methods and paths.
        Row::scim("method: PROPFIND", "PROPFIND", "/Users").expect(405, None),
        Row::scim("method: TRACE", "TRACE", "/Users").expect(405, None),
        Row::scim("method: DELETE on the collection", "DELETE", "/Users").expect(405, None),
        Row::scim("path: unknown endpoint", "GET", "/Nothing").expect(404, None),
        Row::scim(
            "path: below an id",
            "GET",
            format!("/Users/{a_user}/deeper"),
        )
        .expect(404, None),
        Row::new("path: outside the SCIM base", "GET", "/scim/v3/Users").expect(404, None),
        Row::admin("admin: unknown endpoint", "GET", "/nothing").expect(404, None),
        Row::admin("admin: TRACE", "TRACE", "/mapping").expect(405, None),
        // Path traversal and encoded slashes in ids.
        Row::scim("id: ..%2F..%2Fadmin", "GET", "/Users/..%2F..%2Fadmin").expect(404, None),
        Row::scim("id: %2e%2e", "GET", "/Users/%2e%2e").expect(404, None),
        Row::scim("id: a%2Fb", "GET", "/Users/a%2Fb").expect(404, None),
        Row::scim("id: ../ in the path", "DELETE", "/Users/../Groups").expect(404, None),
        Row::scim("id: %2e%2e in a DELETE", "DELETE", "/Users/%2e%2e").expect(404, None),
        Row::admin(
            "admin: learner ..%2F..",
            "GET",
            "/learners/..%2F..%2Fmapping",
        )
        .expect(404, None),
        // Credentials, on SCIM and on the admin API.
        Row::scim("auth: none", "GET", "/Users")
            .who(Who::Nobody)
            .expect(401, None),
        Row::scim("auth: 'Bearer'", "GET", "/Users")
            .who(Who::Header("Bearer".into()))
            .expect(401, None),
        Row::scim("auth: 'Basic x'", "GET", "/Users")
            .who(Who::Header("Basic x".into()))
            .expect(401, None),
        Row::scim("auth: a 10 KB token", "GET", "/Users")
            .who(Who::Header(format!("Bearer {}", "t".repeat(10 * 1024))))
            .expect(401, None),
        Row::scim("auth: the admin token on SCIM", "GET", "/Users")
            .who(Who::OtherApi)
            .expect(401, None),
        Row::scim(
            "auth: B's token on A's user",
            "GET",
            format!("/Users/{a_user}"),
        )
        .who(Who::B)
        .expect(404, None),
        Row::scim(
            "auth: B's token deleting A's user",
            "DELETE",
            format!("/Users/{a_user}"),
        )
        .who(Who::B)
        .expect(404, None),
        Row::scim(
            "auth: B's token patching A's group",
            "PATCH",
            format!("/Groups/{a_group}"),
        )
        .who(Who::B)
        .json(&patch(
            json!([{"op": "replace", "path": "displayName", "value": "taken"}]),
        ))
        .expect(404, None),
        Row::admin("admin auth: none", "GET", "/mapping")
            .who(Who::Nobody)
            .expect(401, None),
        Row::admin("admin auth: 'Bearer'", "GET", "/mapping")
            .who(Who::Header("Bearer".into()))
            .expect(401, None),
        Row::admin("admin auth: 'Basic x'", "GET", "/mapping")
            .who(Who::Header("Basic x".into()))
            .expect(401, None),
        Row::admin("admin auth: a 10 KB token", "GET", "/mapping")
            .who(Who::Header(format!("Bearer {}", "t".repeat(10 * 1024))))
            .expect(401, None),
        Row::admin("admin auth: the SCIM token", "GET", "/mapping")
            .who(Who::OtherApi)
            .expect(401, None),
        Row::admin(
            "admin auth: B's token on A's learner",
            "GET",
            format!("/learners/{a_user}"),
        )
        .who(Who::B)
        .expect(404, None),
        // Rules documents, plugins and their settings.
        Row::admin("rules: 10 MB", "PUT", "/mapping")
            .bytes("application/toml", vec![b'#'; 10 * 1024 * 1024])
            .expect(413, None),
        Row::admin("rules: invalid UTF-8", "PUT", "/mapping")
            .bytes(
                "application/toml",
                b"[[rule]]\nname = \"\xff\xfe\"\n".to_vec(),
            )
            .expect(400, None),
        Row::admin("rules: not TOML", "PUT", "/mapping")
            .bytes("application/toml", b"[[[ this is not toml".to_vec())
            .expect(400, None),
        Row::admin("rules: deeply nested JSON", "PUT", "/mapping")
            .bytes(
                "application/json",
                format!("{}{}", "[".repeat(DEEP), "]".repeat(DEEP)).into_bytes(),
            )
            .expect(400, None),
        Row::admin("rules: 10 MB to check", "POST", "/mapping/check")
            .bytes("application/toml", vec![b'#'; 10 * 1024 * 1024])
            .expect(413, None),
        Row::admin(
            "rules: invalid UTF-8 to preview",
            "POST",
            "/mapping/preview",
        )
        .bytes("application/toml", b"\xff".to_vec())
        .expect(400, None),
        Row::admin("plugin: not wasm", "PUT", "/mapper")
            .bytes(
                "application/wasm",
                b"#!/bin/sh\necho this is not wasm\n".to_vec(),
            )
            .expect(422, None),
        Row::admin("plugin: a truncated component", "PUT", "/mapper")
            .bytes("application/wasm", {
                let c =
                    wat::parse_str("(component (core module (func (export \"f\"))))").expect("wat");
                c[..c.len() - 5].to_vec()
            })
            .expect(422, None),
        Row::admin("plugin: a component that is no mapper", "PUT", "/mapper")
            .bytes(
                "application/wasm",
                wat::parse_str("(component)").expect("wat"),
            )
            .expect(422, None),
        Row::admin("plugin: 10 MB preview of zeros", "POST", "/mapper/preview")
            .bytes("application/wasm", vec![0; 10 * 1024 * 1024])
            .expect(422, None),
        Row::admin(
            "plugin: settings not JSON",
            "PUT",
            "/mapper?settings=%7Bnot%20json",
        )
        .bytes(
            "application/wasm",
            wat::parse_str("(component)").expect("wat"),
        )
        .expect(400, None),
        Row::admin(
            "plugin: 100 KB of settings (past the URL limit)",
            "PUT",
            format!(
                "/mapper?settings=%7B%22{}%22%3A1%7D",
                "k".repeat(100 * 1024)
            ),
        )
        .bytes(
            "application/wasm",
            wat::parse_str("(component)").expect("wat"),
        )
        .http(414),
        Row::admin(
            "plugin: 50 KB of settings",
            "PUT",
            format!("/mapper?settings=%7B%22{}%22%3A1%7D", "k".repeat(50 * 1024)),
        )
        .bytes(
            "application/wasm",
            wat::parse_str("(component)").expect("wat"),
        )
        .expect(422, None),
        Row::admin(
            "catalogue: a body that is not JSON",
            "POST",
            "/catalogue/teams",
        )
        .bytes("application/json", b"{not json".to_vec())
        .expect(400, None),
        Row::admin("catalogue: 100 KB name", "POST", "/catalogue/teams")
            .bytes(
                "application/json",
                json!({"name": long_name}).to_string().into_bytes(),
            )
            .expect(400, None),
        Row::admin(
            "plugin: fuel beyond u64",
            "PUT",
            "/mapper?fuel=99999999999999999999999",
        )
        .bytes(
            "application/wasm",
            wat::parse_str("(component)").expect("wat"),
        )
        .expect(400, None),
    ]);
    rows
}

/// A filter nested `depth` parentheses deep.
fn nested(depth: usize) -> String {
    format!(
        "{}userName eq \"x\"{}",
        "(".repeat(depth),
        ")".repeat(depth)
    )
}

/// `{"value":"…"}` a million times: ~30 MB, far past any body limit.
fn million_members() -> String {
    let mut s = String::with_capacity(32 * 1_000_000);
    for i in 0..1_000_000 {
        if i > 0 {
            s.push(',');
        }
        s.push_str(&format!("{{\"value\":\"m{i:07}\"}}"));
    }
    s
}

fn million_members_group() -> Vec<u8> {
    format!(
        "{{\"schemas\":[\"{GROUP_SCHEMA}\"],\"displayName\":\"million\",\"members\":[{}]}}",
        million_members()
    )
    .into_bytes()
}

fn million_members_patch() -> Vec<u8> {
    format!(
        "{{\"schemas\":[\"{PATCH_OP}\"],\"Operations\":[{{\"op\":\"add\",\"path\":\"members\",\"value\":[{}]}}]}}",
        million_members()
    )
    .into_bytes()
}

/// Member references to ids that do not exist, as many as fit in a body of
/// `limit` bytes.
fn members_within(limit: usize) -> Value {
    let one = json!({"value": "00000000-0000-0000-0000-000000000000"})
        .to_string()
        .len()
        + 1;
    let n = (limit - 200) / one;
    Value::Array(
        (0..n)
            .map(|i| json!({"value": format!("00000000-0000-0000-0000-{i:012}")}))
            .collect(),
    )
}

#[test]
fn hostile_requests_get_clear_refusals_and_change_nothing() {
    let s = LmsServer::start();
    let b = s.cli_json(&["tenant", "add", "b", "--json"]);
    let token = |k: &str| b[k].as_str().expect(k).to_string();
    let addr = s
        .origin()
        .strip_prefix("http://")
        .expect("http origin")
        .to_string();
    let t = Tenants {
        b_scim: token("scimToken"),
        b_admin: token("adminToken"),
        addr,
        s,
    };

    // Each tenant has users (two, so that a first page has a cursor) and A
    // a group.
    let a_user = t.scim_ok(Who::A, "POST", "/Users", Some(&user("a-existing")))["id"]
        .as_str()
        .expect("id")
        .to_string();
    t.scim_ok(Who::A, "POST", "/Users", Some(&user("a-second")));
    let a_group = t.scim_ok(
        Who::A,
        "POST",
        "/Groups",
        Some(&json!({"schemas": [GROUP_SCHEMA], "displayName": "a-group", "members": [{"value": a_user}]})),
    )["id"]
        .as_str()
        .expect("id")
        .to_string();
    let b_user = t.scim_ok(Who::B, "POST", "/Users", Some(&user("b-one")))["id"]
        .as_str()
        .expect("id")
        .to_string();
    t.scim_ok(Who::B, "POST", "/Users", Some(&user("b-two")));
    let spc = t.scim_ok(Who::A, "GET", "/ServiceProviderConfig", None);
    let limit = spc["bulk"]["maxPayloadSize"]
        .as_u64()
        .expect("maxPayloadSize") as usize;
    let max_ops = spc["bulk"]["maxOperations"]
        .as_u64()
        .expect("maxOperations") as usize;
    let next = |who: Who| {
        t.scim_ok(who, "GET", "/Users?cursor&count=1", None)["nextCursor"]
            .as_str()
            .expect("nextCursor")
            .to_string()
    };
    let f = Fixture {
        a_cursor: next(Who::A),
        b_cursor: next(Who::B),
        a_user,
        a_group,
        b_user,
        limit,
        max_ops,
    };
    let before = t.state();

    let mut failures = Vec::new();
    let mut table = Vec::new();
    for row in rows(&f) {
        let answer = t.send(&row);
        let verdict = match &answer {
            Ok(a) => check(&row, a).err(),
            Err(e) => Some(e.clone()),
        };
        let status = answer.as_ref().map_or(0, |a| a.status);
        table.push(format!("{status:>3} {}", row.name));
        if let Some(why) = verdict {
            failures.push(format!("{}: {why}", row.name));
        }
        // The neighbour is served after every row.
        let b_page = t.send(&Row::scim("neighbour", "GET", "/Users?count=1").who(Who::B));
        if !matches!(&b_page, Ok(a) if a.status == 200) {
            failures.push(format!(
                "{}: tenant B was not served after it: {b_page:?}",
                row.name
            ));
        }
    }
    eprintln!("hostile requests:\n{}", table.join("\n"));
    let after = t.state();
    assert!(
        failures.is_empty(),
        "{} rows failed:\n{}\nserver log:\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&t.s.log())
    );
    assert_eq!(before, after, "a hostile request changed something");
    t.scim_ok(Who::B, "GET", &format!("/Users/{}", f.b_user), None);
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Whether `a` is the answer `row` expects; otherwise what is wrong.
fn check(row: &Row, a: &Answer) -> Result<(), String> {
    let body = a.json();
    let shown = || format!("{} {}", a.status, a.text());
    match row.expect {
        Expect::Http(status) => {
            if a.status != status {
                return Err(format!("expected {status}, got {}", shown()));
            }
        }
        Expect::Page(n) => {
            let count = body["Resources"].as_array().map_or(0, Vec::len);
            if a.status != 200 || !body["totalResults"].is_u64() || count != n {
                return Err(format!("expected a 200 page of {n}, got {}", shown()));
            }
        }
        Expect::EveryOperation(status) => {
            if a.status != 200 {
                return Err(format!("expected a 200 BulkResponse, got {}", shown()));
            }
            let ops = body["Operations"].as_array().ok_or_else(shown)?;
            let all = !ops.is_empty()
                && ops.iter().all(|o| {
                    o["status"].as_str() == Some(status.to_string().as_str())
                        && o["response"]["detail"]
                            .as_str()
                            .is_some_and(|d| !d.is_empty())
                });
            if !all {
                return Err(format!(
                    "expected every operation to fail with {status}: {}",
                    shown()
                ));
            }
        }
        Expect::Error(status, scim_type) => {
            if a.status != status {
                return Err(format!("expected {status}, got {}", shown()));
            }
            if body["detail"].as_str().is_none_or(|d| d.trim().is_empty()) {
                return Err(format!("no detail: {}", shown()));
            }
            if row.is_admin() {
                if body["status"] != status {
                    return Err(format!("not the admin API's error: {}", shown()));
                }
            } else {
                let content_type = a.header("content-type").unwrap_or("");
                if body["schemas"][0] != ERROR_SCHEMA
                    || body["status"].as_str() != Some(status.to_string().as_str())
                    || !content_type.starts_with("application/scim+json")
                {
                    return Err(format!("not a SCIM Error ({content_type}): {}", shown()));
                }
                if body["scimType"].as_str() != scim_type {
                    return Err(format!("expected scimType {scim_type:?}: {}", shown()));
                }
            }
        }
    }
    Ok(())
}
