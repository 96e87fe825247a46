//! What one request costs in the sandbox.
//!
//! - `instantiate+error`: a fresh instance from the pooling allocator and one
//!   tiny export call (the floor every request pays);
//! - `wasm GET /Users/{id}`: a full read through the component against
//!   SQLite, in a fresh instance and in a warm one (kept from the previous
//!   request, as `scim-host` does for a tenant's requests);
//! - `native GET /Users/{id}`: the same request handled by the engine core
//!   compiled natively, against its in-memory store.
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
    let native = |method: &str, path: &str, body: &str| scim_engine::Request {
        method: method.into(),
        path: path.into(),
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
            r#"{"userName":"bench","emails":[{"value":"b@example.com","type":"work"}]}"#,
        ),
        &mut mem,
        &mut lms,
    );
    let nid = created.body_json()["id"].as_str().unwrap().to_string();
    let nget = native("GET", &format!("/Users/{nid}"), "");
    g.bench_function("native GET /Users/{id}", |b| {
        b.iter(|| scim_engine::handle(&nget, &mut mem, &mut lms))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
