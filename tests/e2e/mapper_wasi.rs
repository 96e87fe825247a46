//! Mapping plugins built with the real toolchain that misbehave the way
//! real plugins do, end to end: the fixture `tests/mappers/misbehaving-rust`
//! (Rust, wit-bindgen, wasm32-wasip2, so it imports WASI's stdio, exit and
//! clocks like any Rust plugin) is built by cargo in the test, uploaded
//! through the admin API with settings choosing its behaviour, and driven
//! by SCIM changes through the real server.
//!
//! Whatever the plugin does, the SCIM request answers in bounded time with
//! success. A plugin that only prints or reads (empty) stdin is applied; one
//! that panics, sleeps, exits, overflows its stack or loops leaves the user's
//! LMS state as it was, and the failure is in the sync log with its reason.
//! Afterwards another tenant, the same tenant and the discovery endpoints
//! are served as usual.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::mapper::{
    Held, actions, build_rust_plugin, healthz, held, install_bytes, map_failures, mapper_state,
    patch_ops, second_tenant_works, sha256, wait_synced,
};
use crate::support::{LmsServer, encode, item};

/// The team every mode of the fixture that returns grants.
const TEAM: &str = "Misbehaving";
/// A hang guard, not a performance figure: every request, whatever the
/// plugin does, answers well within it.
const BOUND: Duration = Duration::from_secs(10);

/// The fixture's component, built once per test process.
fn misbehaving() -> &'static [u8] {
    static WASM: OnceLock<Vec<u8>> = OnceLock::new();
    WASM.get_or_init(|| {
        build_rust_plugin("misbehaving-rust-mapper", "misbehaving_rust_mapper.wasm")
    })
}

/// What a mode of the fixture should come to.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// The plugin's answer is applied: the user holds [`TEAM`] by
    /// `plugin:assign@mode:<mode>`.
    Applied,
    /// The call fails with one of `reasons`; its detail contains `says`.
    Fails {
        reasons: &'static [&'static str],
        says: &'static str,
    },
}

/// Runs `f`, asserting it answered within [`BOUND`].
#[track_caller]
fn bounded<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let started = Instant::now();
    let out = f();
    let took = started.elapsed();
    eprintln!("{what}: answered in {took:?}");
    assert!(took < BOUND, "{what} took {took:?}");
    out
}

/// Prints the end of the server's log when the test fails (a server that
/// died shows why).
pub(crate) struct LogOnFailure<'a>(pub(crate) &'a LmsServer);

impl Drop for LogOnFailure<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.0.log();
            let start = log.len().saturating_sub(8000);
            let start = (start..log.len())
                .find(|&i| log.is_char_boundary(i))
                .unwrap_or(log.len());
            eprintln!("server log (end):\n{}", &log[start..]);
        }
    }
}

/// Installs the fixture with `{"mode": mode}` as its settings (confirmed:
/// it replaces the default mapping's learner role); returns the outcome.
#[track_caller]
fn install_mode(s: &LmsServer, mode: &str) -> Value {
    let settings = json!({ "mode": mode }).to_string();
    bounded(&format!("install with mode {mode}"), || {
        install_bytes(
            s,
            misbehaving(),
            &format!("settings={}&confirm=true", encode(&settings)),
        )
    })
}

/// What the fixture's answer in `mode` gives: the team alone.
fn mapped_by(mode: &str) -> Held {
    (
        "active".to_string(),
        vec![],
        vec![item(TEAM, &[&format!("plugin:assign@mode:{mode}")])],
        vec![],
    )
}

/// Maps ann with the fixture in mode `ok`, installs it in `mode`, changes
/// ann through SCIM, and checks what `expect` says; then another tenant,
/// the same tenant's next creation and discovery are served as usual.
fn plugin_in_mode(mode: &str, expect: Expect) {
    let s = LmsServer::start();
    let _log = LogOnFailure(&s);
    let sha = sha256(misbehaving());
    let ann = s.create_user("ann");
    install_mode(&s, "ok");
    wait_synced(&s);
    let before = held(&s, &ann);
    assert_eq!(before, mapped_by("ok"));

    let outcome = install_mode(&s, mode);
    let preview = &outcome["preview"];
    assert_eq!(preview["users"], 1, "{outcome}");
    let reason_of = |failures: &Value| -> String {
        let failures = failures.as_object().expect("failures");
        assert_eq!(failures.len(), 1, "{failures:?}");
        failures.keys().next().expect("a reason").clone()
    };
    match expect {
        Expect::Applied => assert_eq!(preview["failed"], 0, "{outcome}"),
        Expect::Fails { reasons, .. } => {
            // The preview ran it over ann and saw it fail.
            assert_eq!(preview["failed"], 1, "{outcome}");
            let reason = reason_of(&preview["failures"]);
            assert!(reasons.contains(&reason.as_str()), "{outcome}");
        }
    }
    wait_synced(&s);
    let after_drain = map_failures(&s, &ann).len();
    match expect {
        Expect::Applied => {
            assert_eq!(after_drain, 0, "{:?}", map_failures(&s, &ann));
            assert_eq!(held(&s, &ann), mapped_by(mode));
        }
        Expect::Fails { .. } => {
            assert_eq!(after_drain, 1, "the re-mapping after install fails once");
            assert_eq!(held(&s, &ann), before);
        }
    }

    // A change through SCIM: answered in bounded time, with success.
    bounded(&format!("{mode}: PATCH"), || {
        s.patch(
            &format!("/Users/{ann}"),
            &patch_ops(json!([{"op": "replace", "path": "title", "value": "Physicist"}])),
        )
        .expect(200)
    });
    assert_eq!(
        s.get(&format!("/Users/{ann}")).expect(200).json["title"],
        "Physicist"
    );
    let failures = map_failures(&s, &ann);
    match expect {
        Expect::Applied => {
            assert_eq!(held(&s, &ann), mapped_by(mode));
            assert!(failures.is_empty(), "{failures:?}");
        }
        Expect::Fails { reasons, says } => {
            // Last known good.
            assert_eq!(held(&s, &ann), before, "{mode}");
            assert_eq!(failures.len(), after_drain + 1, "{failures:?}");
            let f = &failures[0];
            let reason = f["reason"].as_str().expect("reason");
            assert!(reasons.contains(&reason), "{mode}: {f}");
            assert_eq!(f["resourceName"], "ann", "{f}");
            let detail = f["detail"].as_str().expect("detail");
            eprintln!("{mode}: {reason}: {detail}");
            assert!(
                detail.contains(&format!("plugin {}", &sha[..12])),
                "{mode}: {detail}"
            );
            assert!(detail.contains(says), "{mode}: {detail}");
        }
    }
    let m = mapper_state(&s);
    assert_eq!(m["active"], true, "{m}");
    let failed = match expect {
        Expect::Applied => 0,
        Expect::Fails { .. } => 2,
    };
    assert_eq!(m["current"]["failures"], failed, "{m}");

    // Right after: another tenant, this tenant's next creation, discovery.
    second_tenant_works(&s);
    let bob = bounded(&format!("{mode}: create"), || s.create_user("bob"));
    match expect {
        Expect::Applied => assert_eq!(held(&s, &bob), mapped_by(mode)),
        Expect::Fails { reasons, .. } => {
            let l = held(&s, &bob);
            assert!(l.1.is_empty() && l.2.is_empty() && l.3.is_empty(), "{l:?}");
            let f = map_failures(&s, &bob);
            assert_eq!(f.len(), 1, "{f:?}");
            assert!(
                reasons.contains(&f[0]["reason"].as_str().unwrap_or_default()),
                "{f:?}"
            );
        }
    }
    let r = bounded(&format!("{mode}: ServiceProviderConfig"), || {
        s.get("/ServiceProviderConfig").expect(200)
    });
    assert_eq!(
        r.json["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
        "{}",
        r.text
    );
    healthz(&s);
}

// ---------------------------------------------------------------------------
// The control

#[test]
fn mapper_wasi_ok_maps_the_user() {
    plugin_in_mode("ok", Expect::Applied);
}

// ---------------------------------------------------------------------------
// Output and input: harmless, the answer is applied

#[test]
fn mapper_wasi_println_is_applied() {
    plugin_in_mode("println", Expect::Applied);
}

#[test]
fn mapper_wasi_eprintln_is_applied() {
    plugin_in_mode("eprintln", Expect::Applied);
}

#[test]
fn mapper_wasi_printing_megabytes_is_applied() {
    plugin_in_mode("print-megabytes", Expect::Applied);
}

#[test]
fn mapper_wasi_reading_stdin_is_applied() {
    plugin_in_mode("stdin", Expect::Applied);
}

// ---------------------------------------------------------------------------
// Failures: the user keeps its state, the sync log says why

#[test]
fn mapper_wasi_panic_is_a_trap_with_its_message_and_changes_nothing() {
    // Rust writes the panic message to stderr, then aborts: the host keeps
    // what the plugin wrote for the failure's detail.
    plugin_in_mode(
        "panic",
        Expect::Fails {
            reasons: &["plugin-trap"],
            says: "deliberate panic for user ann",
        },
    );
}

#[test]
fn mapper_wasi_sleep_times_out_and_changes_nothing() {
    plugin_in_mode(
        "sleep",
        Expect::Fails {
            reasons: &["plugin-timeout"],
            says: "deadline",
        },
    );
}

#[test]
fn mapper_wasi_exit_is_a_trap_and_changes_nothing() {
    // WASI 0.2's `exit` carries only success or failure (wasi-libc's
    // `_Exit` passes `err` for any non-zero status): Rust's
    // `process::exit(3)` reaches the host as status 1.
    plugin_in_mode(
        "exit",
        Expect::Fails {
            reasons: &["plugin-trap"],
            says: "the plugin exited with status 1",
        },
    );
}

#[test]
fn mapper_wasi_stack_overflow_is_a_trap_and_changes_nothing() {
    plugin_in_mode(
        "stack-overflow",
        Expect::Fails {
            reasons: &["plugin-trap"],
            says: "",
        },
    );
}

#[test]
fn mapper_wasi_loop_is_stopped_and_changes_nothing() {
    // The default fuel (10 million units) or the 100 ms deadline, whichever
    // comes first on this machine.
    plugin_in_mode(
        "loop",
        Expect::Fails {
            reasons: &["plugin-fuel", "plugin-timeout"],
            says: "",
        },
    );
}

// ---------------------------------------------------------------------------
// A restart with a failing plugin installed

/// Users of the tenant whose plugin panics.
const RESTART_USERS: usize = 20;
/// The plugin's failure limit: more than the re-mapping after install
/// fails, so that the plugin is still in force when the server restarts.
const RESTART_MAX_FAILURES: usize = RESTART_USERS + 5;

/// `pending` of `GET /admin/v1/sync`.
#[track_caller]
fn pending(s: &LmsServer) -> u64 {
    let r = s.admin_get("/admin/v1/sync").expect(200);
    r.json["pending"]
        .as_u64()
        .unwrap_or_else(|| panic!("sync status without pending: {}", r.text))
}

/// The plugin panics on every user. The server is killed right after the
/// install, while the re-mapping of everyone runs, and started again: it
/// compiles the installed plugin before serving, serves, goes on failing
/// the plugin's calls until its failure limit disables it, and drains the
/// outbox (everyone re-mapped by the default mapping).
#[test]
fn mapper_wasi_panicking_plugin_survives_a_restart_and_is_disabled() {
    let mut s = LmsServer::start();
    let users: Vec<String> = (0..RESTART_USERS)
        .map(|i| s.create_user(&format!("user-{i:02}")))
        .collect();
    let settings = json!({ "mode": "panic" }).to_string();
    let outcome = bounded("install with mode panic", || {
        install_bytes(
            &s,
            misbehaving(),
            &format!(
                "settings={}&confirm=true&maxFailures={RESTART_MAX_FAILURES}",
                encode(&settings)
            ),
        )
    });
    assert_eq!(outcome["preview"]["users"], RESTART_USERS, "{outcome}");
    assert_eq!(outcome["preview"]["failed"], RESTART_USERS, "{outcome}");
    assert_eq!(
        outcome["installed"]["max_failures"], RESTART_MAX_FAILURES,
        "{outcome}"
    );
    // Straight away: the re-mapping after install has just begun.
    let pending_at_kill = pending(&s);
    s.kill9();
    eprintln!("killed with {pending_at_kill} pending change(s)");
    s.restart();
    let _log = LogOnFailure(&s);

    // It serves.
    let r = bounded("ServiceProviderConfig after restart", || {
        s.get("/ServiceProviderConfig").expect(200)
    });
    assert_eq!(
        r.json["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig",
        "{}",
        r.text
    );
    healthz(&s);
    // The plugin, still in force, was compiled before serving (the first
    // start had none to compile).
    let log = s.log();
    let compiled: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("installed mapping plugins compiled"))
        .collect();
    assert_eq!(compiled.len(), 1, "{compiled:?}");

    // The re-mapping resumes and fails on every user; then changes fail,
    // until the failure limit disables the plugin.
    wait_synced(&s);
    let m = mapper_state(&s);
    let after_remap = m["current"]["failures"].as_u64().expect("failures");
    eprintln!("failures after the re-mapping: {after_remap}; mapper: {m}");
    assert!(after_remap >= RESTART_USERS as u64, "{m}");
    let mut touched = 0;
    while mapper_state(&s)["active"] == true {
        assert!(touched < RESTART_MAX_FAILURES, "still active: {m}");
        let id = &users[touched % users.len()];
        bounded("PATCH with the plugin failing", || {
            s.patch(
                &format!("/Users/{id}"),
                &patch_ops(json!([{"op": "replace", "path": "title", "value": "Physicist"}])),
            )
            .expect(200)
        });
        touched += 1;
    }
    let m = mapper_state(&s);
    assert_eq!(m["active"], false, "{m}");
    let current = &m["current"];
    assert_eq!(current["failures"], RESTART_MAX_FAILURES, "{m}");
    let why = current["disabled_reason"]
        .as_str()
        .expect("disabled_reason");
    assert!(
        why.contains(&format!("{RESTART_MAX_FAILURES} calls in a row failed"))
            && why.contains("plugin-trap"),
        "{why}"
    );
    let disabled = actions(&s, "mapper-disabled");
    assert_eq!(disabled.len(), 1, "{disabled:?}");
    assert_eq!(disabled[0]["reason"], "plugin-disabled", "{}", disabled[0]);
    assert_eq!(
        disabled[0]["resourceName"],
        &sha256(misbehaving())[..12],
        "{}",
        disabled[0]
    );

    // The outbox drains: everyone is re-mapped by the default mapping.
    let deadline = Instant::now() + Duration::from_secs(60);
    while pending(&s) > 0 {
        assert!(Instant::now() < deadline, "the outbox did not drain");
        std::thread::sleep(Duration::from_millis(50));
    }
    for id in &users {
        let (status, roles, teams, _) = held(&s, id);
        assert_eq!(status, "active");
        assert_eq!(
            roles,
            [item("learner", &["default:learner-role@active"])],
            "{id}"
        );
        assert!(teams.is_empty(), "{teams:?}");
    }
    eprintln!(
        "after restart: {after_remap} failures from the re-mapping, {touched} PATCH(es) to the limit of {RESTART_MAX_FAILURES}"
    );
    second_tenant_works(&s);
}
