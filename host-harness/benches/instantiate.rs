//! What one request costs in the sandbox.
//!
//! - `instantiate+error`: a fresh instance from the pooling allocator and one
//!   tiny export call (the floor every request pays);
//! - `wasm GET /Users/{id}`: a full read through the component against
//!   SQLite, in a fresh instance and in a warm one (kept from the previous
//!   request, as `scim-host` does for a tenant's requests);
//! - `native GET /Users/{id}`: the same request handled by the engine core
//!   compiled natively, against its in-memory store;
//! - `native-vs-wasm`: a read, a filter, a page and a PATCH, each natively
//!   and in a warm instance on SQLite, with 1,000 users on both sides.
//!
//! Run: `cargo bench -p scim-host --bench instantiate`

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use scim_host::bindings::lms::scim::types::{HttpRequest, RequestContext};
use scim_host::db;
use scim_host::imports::SqlStore;
use scim_host::runtime::{Limits, RequestState, Runtime};

fn context() -> RequestContext {
    RequestContext {
        tenant: "bench".into(),
        base_url: "http://localhost/scim/v2".into(),
        request_id: "bench".into(),
        subject: None,
        max_payload_bytes: 1 << 20,
        signing_key: vec![7; 32],
    }
}

fn request(method: &str, path: &str, body: &str) -> HttpRequest {
    HttpRequest {
        method: method.into(),
        path: path.into(),
        query: String::new(),
        headers: vec![("content-type".into(), "application/scim+json".into())],
        body: body.as_bytes().to_vec(),
        context: context(),
    }
}

fn bench(c: &mut Criterion) {
    let limits = Limits {
        timeout: Duration::from_secs(10),
        memory_bytes: 256 << 20,
        instances: 8,
        warm: 0,
    };
    let runtime = Runtime::new(scim_host::ENGINE_WASM, limits.clone(), None).expect("runtime");
    let warm = Runtime::new(
        scim_host::ENGINE_WASM,
        Limits {
            warm: 1,
            ..limits.clone()
        },
        None,
    )
    .expect("runtime");
    let dir = tempfile::tempdir().unwrap();
    let pool = db::open_file(&dir.path().join("bench.db"), 2, db::Checkpoints::InCommit).unwrap();
    db::set_tenant_token(&pool.get().unwrap(), "bench", db::TokenKind::Scim, "t").unwrap();
    let tenant = db::authenticate(&pool.get().unwrap(), db::TokenKind::Scim, "t")
        .unwrap()
        .unwrap()
        .id;

    let run_in = |runtime: &Runtime, req: &HttpRequest| {
        let (resp, _) = runtime.handle(SqlStore::new(pool.get().unwrap(), tenant), req);
        resp.expect("engine call")
    };
    let run = |req: &HttpRequest| run_in(&runtime, req);
    let created = run(&request(
        "POST",
        "/Users",
        r#"{"userName":"bench","emails":[{"value":"b@example.com","type":"work"}]}"#,
    ));
    let id = serde_json::from_slice::<serde_json::Value>(&created.body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let get = request("GET", &format!("/Users/{id}"), "");

    let mut g = c.benchmark_group("per-request");
    g.bench_function("instantiate+error", |b| {
        b.iter(|| {
            let state = RequestState::new(SqlStore::detached(), &limits);
            let (r, _) = runtime.error_response(state, &context(), 401, "x");
            r.unwrap()
        })
    });
    g.bench_function("wasm GET /Users/{id}", |b| b.iter(|| run(&get)));
    g.bench_function("wasm GET /Users/{id}, warm instance", |b| {
        b.iter(|| run_in(&warm, &get))
    });

    let mut mem = scim_engine::memstore::MemStore::new();
    let mut lms = scim_engine::provision::memlms::MemLms::new();
    let native = |method: &str, path: &str, query: &str, body: &str| scim_engine::Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        body: body.as_bytes().to_vec(),
        context: scim_engine::Context {
            base_url: "http://localhost/scim/v2".into(),
            ..Default::default()
        },
        ..Default::default()
    };
    let created = scim_engine::handle(
        &native(
            "POST",
            "/Users",
            "",
            r#"{"userName":"bench","emails":[{"value":"b@example.com","type":"work"}]}"#,
        ),
        &mut mem,
        &mut lms,
    );
    let nid = created.body_json()["id"].as_str().unwrap().to_string();
    let nget = native("GET", &format!("/Users/{nid}"), "", "");
    g.bench_function("native GET /Users/{id}", |b| {
        b.iter(|| scim_engine::handle(&nget, &mut mem, &mut lms))
    });
    g.finish();

    // The same inputs through the engine compiled natively (in-memory
    // store and LMS) and inside wasmtime (a warm instance on SQLite, as
    // `scim-host` serves them): the ratio is the cost of the sandbox, its
    // boundary and the durable store together.
    for i in 1..1000 {
        let body = serde_json::json!({"userName": format!("bench{i:04}"), "title": "Engineer"})
            .to_string();
        run(&request("POST", "/Users", &body));
        scim_engine::handle(&native("POST", "/Users", "", &body), &mut mem, &mut lms);
    }
    let patch = r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:PatchOp"],"Operations":[{"op":"replace","path":"title","value":"Manager"}]}"#;
    let cases = [
        ("GET /Users/{id}", "GET", "/Users/{id}".to_string(), "", ""),
        (
            "GET /Users?filter=userName eq (1,000 users)",
            "GET",
            "/Users".to_string(),
            "filter=userName%20eq%20%22bench0500%22",
            "",
        ),
        (
            "GET /Users?count=50 (1,000 users)",
            "GET",
            "/Users".to_string(),
            "count=50",
            "",
        ),
        (
            "PATCH /Users/{id} replace title",
            "PATCH",
            "/Users/{id}".to_string(),
            "",
            patch,
        ),
    ];
    let mut g = c.benchmark_group("native-vs-wasm");
    for (name, method, path, query, body) in cases {
        let mut wreq = request(method, &path.replace("{id}", &id), body);
        wreq.query = query.into();
        let nreq = native(method, &path.replace("{id}", &nid), query, body);
        g.bench_function(format!("wasm {name}"), |b| b.iter(|| run_in(&warm, &wreq)));
        g.bench_function(format!("native {name}"), |b| {
            b.iter(|| scim_engine::handle(&nreq, &mut mem, &mut lms))
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
