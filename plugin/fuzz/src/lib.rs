//! Fuzz targets for the engine, one plain function per target.
//!
//! Each function takes the fuzzer's bytes, drives one part of the engine with
//! them and asserts what must hold for any input: no panic, and answers that
//! keep the engine's contracts (a known status, a SCIM body, checked plugin
//! output). The logic lives here, as ordinary Rust, so that `cargo test`
//! replays the seed corpora and the regressions through it
//! (`tests/corpus.rs`); `fuzz_targets/` only hands libFuzzer's input over.

mod fixture;

use scim_engine::filter::{self, Filter};
use scim_engine::mapper::plugin::{
    Assigned, MAX_GRANTS, MAX_TEXT, PluginInfo, PluginMapper, PluginRunner, UserFacts,
};
use scim_engine::mapper::{Facts, Grant, GrantKind, GroupFact, MapError, Mapper};
use scim_engine::patch::Target;
use scim_engine::path::{Path, is_attr_name};
use scim_engine::query::cursor::{self, Direction, Position};
use scim_engine::resource::normalize::normalize_resource;
use scim_engine::resource::terms;
use scim_engine::schema::{GROUP_TYPE, ResourceType, USER_TYPE};
use scim_engine::{Response, rules};
use serde_json::{Value, json};

pub use fixture::Fixture;

const TYPES: [&ResourceType; 2] = [&USER_TYPE, &GROUP_TYPE];

/// The statuses the engine answers with. 401 is the host's (it
/// authenticates before the engine runs); 500 and 503
/// are left out because over the in-memory store nothing is unavailable and
/// nothing stored is unreadable, so either would be a bug.
pub const KNOWN_STATUSES: &[u16] = &[200, 201, 204, 304, 400, 404, 405, 409, 412, 413, 501];

const ERROR_URN: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

/// Resources filters and paths are evaluated against: a full Entra-style
/// user, a sparse one, and a group.
fn resources() -> [Value; 3] {
    [
        json!({
            "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "id": "2819c223-7f76-453a-919d-413861904646",
            "externalId": "e-ada",
            "userName": "ada@example.com",
            "name": {"givenName": "Ada", "familyName": "Lovelace", "formatted": "Ada Lovelace"},
            "displayName": "Ada Lovelace",
            "title": "Engineer",
            "active": true,
            "emails": [
                {"value": "ada@example.com", "type": "work", "primary": true},
                {"value": "ada@home.example", "type": "home"}
            ],
            "phoneNumbers": [{"value": "+1 555 0100", "type": "mobile"}],
            "addresses": [{"type": "work", "country": "GB", "locality": "London"}],
            "groups": [{"value": "g1", "display": "Sales"}],
            "meta": {"resourceType": "User", "created": "2024-01-02T03:04:05.000Z",
                     "lastModified": "2024-06-07T08:09:10.123Z", "version": "W/\"3\""},
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
                "employeeNumber": "701984", "department": "R&D", "costCenter": "4130",
                "manager": {"value": "m1", "displayName": "Grace"}
            }
        }),
        json!({"id": "u2", "userName": "bob", "active": false, "emails": [], "name": {}}),
        json!({
            "id": "g1", "displayName": "Sales", "externalId": "x-1",
            "members": [{"value": "2819c223-7f76-453a-919d-413861904646", "type": "User", "display": "Ada"}],
            "meta": {"resourceType": "Group", "created": "2024-01-02T03:04:05Z"}
        }),
    ]
}

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

/// Parses a filter for each resource type; a filter that parses is
/// evaluated, and `not (F)` must select exactly what `F` does not.
pub fn filter(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let resources = resources();
    for rt in TYPES {
        let Ok(f) = filter::parse(rt, s) else {
            continue;
        };
        let negated = filter::parse(rt, &format!("not ({s})")).ok();
        for r in &resources {
            let yes = f.matches(r);
            assert_ne!(yes, Filter::Not(Box::new(f.clone())).matches(r), "{s}");
            if let Some(n) = &negated {
                assert_ne!(yes, n.matches(r), "not ({s}) against {r}");
            }
        }
        let _ = f.conjuncts();
    }
}

/// Resolves an attribute path for each resource type (and as a PATCH
/// target); a path that resolves is read from the resources and resolves
/// again, to the same attribute, from the way it displays.
pub fn path(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = is_attr_name(s);
    let resources = resources();
    for rt in TYPES {
        let _ = Target::parse(rt, s).map(|t| (t.leaf(), t.attr()));
        let Ok(p) = Path::resolve(rt, s) else {
            continue;
        };
        for r in &resources {
            let _ = p.values(r);
            let _ = p.attr_value(r);
        }
        let _ = p.comparable();
        let shown = p.display();
        let again = Path::resolve(rt, &shown)
            .unwrap_or_else(|e| panic!("'{s}' displays as '{shown}', which fails: {e}"));
        assert!(std::ptr::eq(again.leaf(), p.leaf()), "{s} -> {shown}");
        if p.sub.is_none() && p.attr.is_complex() {
            for sub in p.attr.sub_attributes {
                let _ = Path::resolve_within(&p, sub.name);
            }
        }
    }
}

/// Applies a PatchOp body to the fixture's user and group through the
/// PATCH endpoint. A patch that succeeds leaves a resource that reads back,
/// and that a PUT of what was read accepts.
pub fn patch(data: &[u8]) {
    let mut fx = Fixture::new();
    for path in [fx.user_path(), fx.group_path()] {
        let resp = fx.call("PATCH", &path, "", &[], data);
        check_response("PATCH", &resp);
        if resp.status >= 300 {
            continue;
        }
        let got = fx.call("GET", &path, "", &[], b"");
        assert_eq!(got.status, 200, "{}", String::from_utf8_lossy(&got.body));
        let put = fx.call("PUT", &path, "", &[], &got.body);
        assert_eq!(
            put.status,
            200,
            "a patched resource that PUT refuses: {} -> {}",
            String::from_utf8_lossy(&got.body),
            String::from_utf8_lossy(&put.body)
        );
    }
}

/// Validates and normalises a body as a User and as a Group; what comes out
/// derives its index terms.
pub fn normalize(data: &[u8]) {
    let Ok(Value::Object(body)) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    for rt in TYPES {
        if let Ok(input) = normalize_resource(rt, body.clone()) {
            let _ = terms::derive(rt, &Value::Object(input.attrs));
        }
    }
}

/// Parses a rules document; one that parses maps the fixed users, with and
/// without explain, and its normalised form parses the same way again.
pub fn rules(data: &[u8]) {
    let Some(s) = text(data) else { return };
    let _ = scim_engine::check_mapping(s, None);
    let Ok(parsed) = rules::parse(s) else { return };
    let normal = rules::normalized(s).expect("a document that parses normalises");
    let installed = rules::parse_installed(&normal)
        .unwrap_or_else(|e| panic!("normalised document fails: {e:?}\n{normal}"));
    assert_eq!(parsed.len(), installed.len());
    let groups = [
        GroupFact {
            id: "g1".into(),
            display_name: Some("Sales".into()),
            external_id: Some("x-1".into()),
        },
        GroupFact {
            id: "g2".into(),
            display_name: None,
            external_id: None,
        },
    ];
    for (i, r) in resources().iter().enumerate() {
        let facts = Facts {
            id: r["id"].as_str().unwrap_or("u"),
            active: i == 0,
            resource: r,
            groups: &groups[..i.min(2)],
        };
        let plain = parsed.evaluate(&facts, false);
        let explained = parsed.evaluate(&facts, true);
        assert_eq!(plain.grants, explained.grants, "explain changes the grants");
        assert_eq!(
            plain.grants,
            installed.evaluate(&facts, false).grants,
            "the installed form maps differently"
        );
        let _ = serde_json::to_string(&explained);
    }
}

/// Decodes a cursor, and round-trips a position the input describes.
pub fn cursor(data: &[u8]) {
    const KEY: &[u8] = b"tenant key";
    let now = 1_700_000_000;
    if let Some(s) = text(data) {
        let _ = cursor::decode(KEY, "/Users?filter", s, now);
    }
    if data.len() >= 9 {
        let pos = Position {
            direction: if data[0] & 1 == 0 {
                Direction::Forward
            } else {
                Direction::Backward
            },
            seq: u64::from_le_bytes(data[1..9].try_into().unwrap_or_default()),
        };
        let scope = String::from_utf8_lossy(&data[9..]);
        let c = cursor::encode(KEY, &scope, pos, now);
        assert_eq!(cursor::decode(KEY, &scope, &c, now + 10), Ok(pos));
        assert!(cursor::decode(KEY, &format!("{scope}x"), &c, now).is_err());
    }
}

/// A plugin that answers what the input says: one item a line,
/// `<r|t|l><name>\t<reason>`.
struct Scripted(Vec<Assigned>);

impl PluginRunner for Scripted {
    fn assign(&self, _: &UserFacts) -> Result<Vec<Assigned>, MapError> {
        Ok(self.0.clone())
    }
}

/// Runs the engine's check of a mapping plugin's output on an output the
/// input describes; whatever it accepts is a set of well-formed grants.
pub fn plugin_output(data: &[u8]) {
    let s = String::from_utf8_lossy(data);
    let mut out = Vec::new();
    // A count prefix (`*N `) repeats the items, to reach the size limit.
    let (repeat, body) = match s.strip_prefix('*').and_then(|r| r.split_once(' ')) {
        Some((n, rest)) => (n.parse::<usize>().unwrap_or(1).min(2 * MAX_GRANTS), rest),
        None => (1, s.as_ref()),
    };
    for line in body.split('\n') {
        let mut chars = line.chars();
        let kind = match chars.next() {
            Some('r') => GrantKind::Role,
            Some('t') => GrantKind::Team,
            Some('l') => GrantKind::LearningPath,
            _ => continue,
        };
        let (name, reason) = chars
            .as_str()
            .split_once('\t')
            .unwrap_or((chars.as_str(), ""));
        out.push(Assigned {
            kind,
            name: name.to_string(),
            reason: reason.to_string(),
        });
    }
    let out: Vec<Assigned> = std::iter::repeat_n(out, repeat).flatten().collect();
    let denied = ["Admin".to_string()];
    let mapper = PluginMapper::new(
        PluginInfo {
            sha256: "ab".repeat(32),
            version: 1,
        },
        Box::new(Scripted(out.clone())),
        &denied,
    );
    let resource = json!({"userName": "ada"});
    let facts = Facts {
        id: "u1",
        active: true,
        resource: &resource,
        groups: &[],
    };
    match mapper.desired(&facts) {
        Ok(grants) => check_grants(&grants, &out),
        Err(e) => {
            assert!(e.reason.starts_with("plugin-"), "{e}");
            assert!(e.detail.contains("(plugin abababababab)"), "{e}");
        }
    }
}

fn check_grants(grants: &[Grant], out: &[Assigned]) {
    assert!(grants.len() <= MAX_GRANTS);
    assert!(grants.len() <= out.len());
    for (i, g) in grants.iter().enumerate() {
        assert_eq!(g.name.trim(), g.name);
        assert!(!g.name.is_empty() && g.name.chars().count() <= MAX_TEXT);
        assert!(!g.name.chars().any(char::is_control), "{:?}", g.name);
        assert!(!g.source.chars().any(char::is_control), "{:?}", g.source);
        assert!(g.source.starts_with("plugin:assign@"));
        assert!(g.kind != GrantKind::Role || !g.name.eq_ignore_ascii_case("admin"));
        assert!(!grants[..i].contains(g), "duplicate grant {g:?}");
    }
}

/// Runs up to eight requests against the in-memory engine holding a user
/// and a group. Each request is `METHOD path[?query]`, header lines, an
/// empty line and the body; requests are separated by a line `===`.
/// `{U}` and `{G}` in a path or body stand for the fixture's user and group
/// ids. Every answer has a known status and a SCIM body.
pub fn handler(data: &[u8]) {
    let mut fx = Fixture::new();
    for raw in split_requests(data).take(8) {
        let Some(req) = parse_request(raw, &fx) else {
            continue;
        };
        let headers: Vec<(&str, &str)> = req
            .headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect();
        let resp = fx.call(&req.method, &req.path, &req.query, &headers, &req.body);
        check_response(&req.method, &resp);
    }
}

fn split_requests(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = Some(data);
    std::iter::from_fn(move || {
        let d = rest?;
        match find(d, b"\n===\n") {
            Some(i) => {
                rest = Some(&d[i + 5..]);
                Some(&d[..i])
            }
            None => {
                rest = None;
                Some(d)
            }
        }
    })
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

struct RawRequest {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn parse_request(raw: &[u8], fx: &Fixture) -> Option<RawRequest> {
    let (head, body) = match find(raw, b"\n\n") {
        Some(i) => (&raw[..i], &raw[i + 2..]),
        None => (raw, &b""[..]),
    };
    let head = std::str::from_utf8(head).ok()?;
    let mut lines = head.lines();
    let (method, target) = lines.next()?.split_once(' ')?;
    let target = fx.substitute(target);
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    Some(RawRequest {
        method: method.to_string(),
        path: path.to_string(),
        query: query.to_string(),
        headers,
        body: fx.substitute_bytes(body),
    })
}

/// Asserts that a response has a known status and a SCIM body: an Error
/// with the Error URN and the status as a string, or a message with
/// `schemas`; 204 and 304 have no body.
pub fn check_response(method: &str, resp: &Response) {
    let body = String::from_utf8_lossy(&resp.body);
    assert!(
        KNOWN_STATUSES.contains(&resp.status),
        "{method}: status {}: {body}",
        resp.status
    );
    if matches!(resp.status, 204 | 304) {
        assert!(resp.body.is_empty(), "{method} {}: {body}", resp.status);
        return;
    }
    let json: Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|e| panic!("{method} {}: body is not JSON ({e}): {body}", resp.status));
    let schemas: Vec<&str> = json["schemas"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {}: no schemas: {body}", resp.status))
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert!(!schemas.is_empty(), "{method}: empty schemas: {body}");
    if resp.status >= 400 {
        assert_eq!(schemas, [ERROR_URN], "{body}");
        assert_eq!(
            json["status"].as_str(),
            Some(resp.status.to_string().as_str()),
            "{body}"
        );
        assert!(
            json["detail"].as_str().is_some_and(|d| !d.is_empty()),
            "an error without a detail: {body}"
        );
    } else {
        assert!(!schemas.contains(&ERROR_URN), "{body}");
    }
}
