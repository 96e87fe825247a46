//! End-to-end query latency over HTTP against `scim-host` (release build,
//! SQLite), at several directory sizes.
//!
//! Run: `cargo bench -p scim-host --bench query`
//! Sizes: `SCIM_BENCH_SIZES=10000,100000,1000000` (default `10000,100000`).
//!
//! Each directory is populated once through the real engine component (POST
//! /Users in large transactions) and kept under the target directory, then a
//! fresh `scim-host` serves it and a keep-alive client measures each query
//! sequentially. Reported: p50 / p95 / max in milliseconds.
//! Compound filters run at every size: those the index answers whole are
//! counted by the host, so they should not grow with the matches.

mod support;

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::{Loader, TOKEN, data_dir, enc, serve};
const BATCH: usize = 5000;

fn user(i: usize) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User",
                    "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
        "userName": format!("user{i}@example.com"),
        "externalId": format!("ext-{i}"),
        "name": {"givenName": format!("Given{i}"), "familyName": format!("Family{}", i % 5000)},
        "displayName": format!("Given{i} Family{}", i % 5000),
        "nickName": format!("nick-{i}"),
        "title": format!("Title {}", i % 100),
        "active": !i.is_multiple_of(10),
        "emails": [
            {"value": format!("user{i}@work.example.com"), "type": "work", "primary": true},
            {"value": format!("user{i}@home.example.org"), "type": "home"}
        ],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": format!("Dept {}", i % 40), "employeeNumber": format!("{i}")
        }
    })
}

/// Creates the directory through the component, unless it exists already.
fn populate(path: &Path, users: usize) {
    if path.exists() {
        return;
    }
    let started = Instant::now();
    let mut loader = Loader::new(path);
    for i in 0..users {
        loader.call("POST", "/Users", &user(i));
        if (i + 1) % BATCH == 0 {
            loader.commit();
        }
        if (i + 1) % 100_000 == 0 {
            eprintln!(
                "  populated {} users ({:.0}s)",
                i + 1,
                started.elapsed().as_secs_f64()
            );
        }
    }
    loader.finish();
    eprintln!(
        "populated {users} users in {:.1}s",
        started.elapsed().as_secs_f64()
    );
}

struct Stats {
    p50: f64,
    p95: f64,
    max: f64,
}

fn stats(mut ms: Vec<f64>) -> Stats {
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
    let at = |q: f64| ms[((ms.len() as f64 - 1.0) * q).round() as usize];
    Stats {
        p50: at(0.5),
        p95: at(0.95),
        max: *ms.last().unwrap(),
    }
}

/// Times `n` requests; `url(k)` gives the k-th path and `check` the body.
fn measure(
    client: &reqwest::blocking::Client,
    base: &str,
    n: usize,
    url: impl Fn(usize) -> String,
    check: impl Fn(&Value),
) -> Stats {
    let mut ms = Vec::with_capacity(n);
    for k in 0..n + 3 {
        let started = Instant::now();
        let r = client
            .get(format!("{base}{}", url(k)))
            .bearer_auth(TOKEN)
            .send()
            .unwrap();
        let status = r.status();
        let body: Value = r.json().unwrap();
        let elapsed = started.elapsed().as_secs_f64() * 1000.0;
        assert!(status.is_success(), "{status} {body}");
        check(&body);
        if k >= 3 {
            ms.push(elapsed); // the first requests warm caches
        }
    }
    stats(ms)
}

/// Builds the filter that finds user number `i`.
type FilterFor = fn(usize) -> String;

fn main() {
    let sizes: Vec<usize> = std::env::var("SCIM_BENCH_SIZES")
        .unwrap_or_else(|_| "10000,100000".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = data_dir();
    let client = reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(600))
        .build()
        .unwrap();
    println!("| users | query | p50 ms | p95 ms | max ms |");
    println!("|---:|---|---:|---:|---:|");
    for &n in &sizes {
        let db = dir.join(format!("users-{n}.db"));
        populate(&db, n);
        let server = serve(&db, &["--request-timeout-ms", "120000"]);
        let base = server.base.as_str();
        let pick = |k: usize| (k * 7919 + 13) % n;
        let one = |b: &Value| assert_eq!(b["totalResults"], 1, "{b}");
        let row = |name: &str, s: Stats| {
            println!(
                "| {n} | {name} | {:.2} | {:.2} | {:.2} |",
                s.p50, s.p95, s.max
            );
        };
        let lookups: [(&str, FilterFor); 3] = [
            ("userName eq", |i| {
                format!("userName eq \"USER{i}@example.com\"")
            }),
            ("externalId eq", |i| format!("externalId eq \"ext-{i}\"")),
            ("emails[type eq \"work\"].value eq", |i| {
                format!("emails[type eq \"work\"].value eq \"user{i}@work.example.com\"")
            }),
        ];
        for (name, filter) in lookups {
            let url = |k| format!("/Users?filter={}", enc(&filter(pick(k))));
            row(name, measure(&client, base, 300, url, one));
        }
        if n <= 100_000 {
            row(
                "nickName co (unindexed)",
                measure(
                    &client,
                    base,
                    20,
                    |k| {
                        format!(
                            "/Users?filter={}",
                            enc(&format!("nickName co \"k-{}\"", pick(k)))
                        )
                    },
                    |_| {},
                ),
            );
            row(
                "title co \"Title 42\" (unindexed, 1% match)",
                measure(
                    &client,
                    base,
                    10,
                    |_| format!("/Users?filter={}&count=100", enc("title co \"Title 42\"")),
                    |_| {},
                ),
            );
        }
        // Compounds the index answers whole: the host counts the matches
        // and reads one page, however many match.
        let compounds: [(&str, &str, usize); 2] = [
            (
                "`active eq true and (familyName eq or active eq true)`, 90% match",
                "active eq true and (name.familyName eq \"Family7\" or active eq true)",
                n - n / 10,
            ),
            (
                "`familyName sw and (familyName eq or active eq false)`",
                "name.familyName sw \"Family1\" and (name.familyName eq \"Family12\" or active eq false)",
                0,
            ),
        ];
        for (name, filter, total) in compounds {
            let url = move |_| format!("/Users?filter={}&count=50", enc(filter));
            row(
                name,
                measure(&client, base, 30, url, |b| {
                    if total > 0 {
                        assert_eq!(b["totalResults"], total, "{b}");
                    }
                    assert!(b["Resources"].as_array().is_some_and(|r| !r.is_empty()));
                }),
            );
        }
        let pages = n / 100;
        row(
            "index page of 100 (any page)",
            measure(
                &client,
                base,
                100,
                |k| {
                    format!(
                        "/Users?startIndex={}&count=100",
                        (pick(k) % pages) * 100 + 1
                    )
                },
                |b| assert_eq!(b["itemsPerPage"], 100),
            ),
        );
        row(
            "index page of 100 (last page)",
            measure(
                &client,
                base,
                50,
                |_| format!("/Users?startIndex={}&count=100", n - 99),
                |b| assert_eq!(b["itemsPerPage"], 100),
            ),
        );
        // Cursor: walk the whole directory, timing each page.
        if n <= 100_000 {
            let mut ms = Vec::new();
            let mut url = "/Users?cursor&count=100".to_string();
            loop {
                let started = Instant::now();
                let body: Value = client
                    .get(format!("{base}{url}"))
                    .bearer_auth(TOKEN)
                    .send()
                    .unwrap()
                    .json()
                    .unwrap();
                ms.push(started.elapsed().as_secs_f64() * 1000.0);
                match body["nextCursor"].as_str() {
                    Some(c) => url = format!("/Users?cursor={c}&count=100"),
                    None => break,
                }
            }
            assert_eq!(ms.len(), pages);
            let last = *ms.last().unwrap();
            row("cursor page of 100 (every page)", stats(ms));
            println!("| {n} | cursor page of 100 (last page) | {last:.2} | | |");
        }
    }
}
