//! What a mapping plugin costs per user, next to the built-in rules: one
//! call of the example plugins in the plugin sandbox, in a fresh instance
//! (a single user's change: started inside the call, or, for the plugin in
//! force, one the sandbox started ahead) and in the instance a batch reuses
//! (preview, background re-mapping), and their install time (check +
//! compile). A hand-written plugin that does almost nothing gives the
//! sandbox's own cost.
//!
//! Run: `cargo bench -p scim-host --bench plugins`. The Rust example is
//! built first (`cargo build -p example-rust-mapper --target wasm32-wasip2
//! --profile wasm --target-dir target/mappers`), and the Python one when
//! its `mapper.wasm` is missing or stale (its `build.sh`, componentize-py
//! from PyPI). The rules figure is `cargo bench -p scim-engine --bench rules`.

use std::time::{Duration, Instant};

use criterion::{Criterion, criterion_group, criterion_main};
use scim_host::sandbox::plugin::{Group, PluginLimits, Plugins, User};
use scim_host::sandbox::threads::inline;
use serde_json::Value;

#[path = "../../tests/mappers/hostile.rs"]
mod hostile;
mod support;

use support::{root, rust_example};

/// The sample user `bjensen` as the plugin receives it.
fn sample() -> (User, String) {
    let dir = root().join("plugin/mappers/example-rust/samples");
    let v: Value =
        serde_json::from_slice(&std::fs::read(dir.join("bjensen.json")).unwrap()).unwrap();
    let s = |k: &str| v[k].as_str().map(str::to_string);
    let user = User {
        id: s("id").unwrap(),
        user_name: s("user-name").unwrap(),
        external_id: s("external-id"),
        active: true,
        groups: v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| Group {
                id: g["id"].as_str().unwrap().into(),
                display_name: g["display-name"].as_str().map(str::to_string),
                external_id: g["external-id"].as_str().map(str::to_string),
            })
            .collect(),
        scim_json: v["scim-json"].to_string(),
    };
    let settings = std::fs::read_to_string(dir.join("settings.json")).unwrap();
    (user, settings)
}

/// The process's resident memory (`VmRSS`), KiB.
fn resident_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

fn bench(c: &mut Criterion) {
    let (user, settings) = sample();
    let mut plugins: Vec<(&str, Vec<u8>, PluginLimits)> = vec![
        // The sandbox's own cost: a hand-written plugin that does almost nothing.
        (
            "wat",
            hostile::build(hostile::Plugin::Teams),
            PluginLimits::default(),
        ),
        ("rust", rust_example(), PluginLimits::default()),
    ];
    if let Some(bytes) = support::python_example() {
        let limits = PluginLimits {
            memory_bytes: 64 << 20,
            deadline: Duration::from_secs(5),
            ..PluginLimits::default()
        };
        plugins.push(("python", bytes, limits));
    }
    let mut g = c.benchmark_group("plugin");
    g.sample_size(20);
    for (name, bytes, limits) in &plugins {
        // Install: check imports and exports, compile (no cache).
        let started = Instant::now();
        let sandbox = Plugins::new(None, 16).unwrap();
        let loaded = sandbox.load(bytes).unwrap();
        eprintln!(
            "{name}: {} bytes, install (check + compile) {:.2} s",
            bytes.len(),
            started.elapsed().as_secs_f64()
        );
        let got = sandbox.run(&loaded, limits, &user, &settings).unwrap();
        assert!(!got.is_empty());
        // A single user's change of a plugin not in force (a replay): a
        // fresh instance started inside the call, which is handed to a
        // plugin thread (the engine runs on a Tokio worker).
        g.bench_function(
            format!("{name}: one user, instance started in the call"),
            |b| b.iter(|| sandbox.run(&loaded, limits, &user, &settings).unwrap()),
        );
        // A SCIM request's single user under the plugin in force: a fresh
        // instance the sandbox started ahead (a spare), the call handed to
        // a plugin thread. Timed with a spare ready, as between requests.
        let resident = resident_kib();
        sandbox.keep(1, &loaded, bytes);
        sandbox.run(&loaded, limits, &user, &settings).unwrap();
        let waiting = Instant::now();
        while sandbox.spares_ready() < 2 && waiting.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(1));
        }
        eprintln!(
            "{name}: {} spares ready; the process's resident memory grew by {:.1} MiB",
            sandbox.spares_ready(),
            (resident_kib() - resident) as f64 / 1024.0
        );
        g.bench_function(
            format!("{name}: one user, fresh instance (a spare ready)"),
            |b| {
                b.iter_custom(|iters| {
                    let mut spent = Duration::ZERO;
                    for _ in 0..iters {
                        let waiting = Instant::now();
                        while sandbox.spares_ready() < 2 {
                            assert!(
                                waiting.elapsed() < Duration::from_secs(10),
                                "no spare started"
                            );
                            std::thread::sleep(Duration::from_micros(100));
                        }
                        let started = Instant::now();
                        sandbox.run(&loaded, limits, &user, &settings).unwrap();
                        spent += started.elapsed();
                    }
                    spent
                })
            },
        );
        // A batch (preview, background re-mapping): one instance serves
        // user after user, on the blocking thread itself.
        let mut session = None;
        g.bench_function(format!("{name}: one user of a batch (assign)"), |b| {
            b.iter(|| {
                inline(|| {
                    sandbox
                        .run_in(&mut session, &loaded, limits, &user, &settings)
                        .unwrap()
                })
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
