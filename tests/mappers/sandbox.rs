//! The product's plugin sandbox (`scim_host::sandbox::plugin`) against the
//! hostile mapping-plugin fixtures of `hostile.rs`: what `Plugins::load`
//! refuses at install, and the failure reason each misbehaviour gets from
//! `Plugins::run` under `PluginLimits`. No HTTP and no database: the same
//! calls the host makes for every request and drain.
//!
//! `cargo test -p scim-host --test sandbox`

#[path = "hostile.rs"]
mod hostile;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use hostile::{Plugin, build};
use scim_host::sandbox::plugin::{
    Failure, Grant, GrantKind, Group, Loaded, MAX_COMPONENT_BYTES, MAX_FUEL, PluginLimits, Plugins,
    Refusal, User, sha256,
};

/// One sandbox for the whole test binary, as the host has one per process,
/// with an instance slot for every call the tests may make at once.
fn plugins() -> &'static Plugins {
    static PLUGINS: OnceLock<Plugins> = OnceLock::new();
    PLUGINS.get_or_init(|| Plugins::new(None, 32).expect("plugin sandbox"))
}

#[track_caller]
fn load(p: Plugin) -> Arc<Loaded> {
    plugins()
        .load(&build(p))
        .unwrap_or_else(|r| panic!("{p:?} was refused: {r}"))
}

#[track_caller]
fn refusal(p: Plugin) -> Refusal {
    match plugins().load(&build(p)) {
        Ok(l) => panic!("{p:?} was accepted (sha256 {})", l.sha256),
        Err(r) => r,
    }
}

fn user() -> User {
    User {
        id: "u-1".into(),
        user_name: "ada@example.org".into(),
        external_id: Some("E-1".into()),
        active: true,
        groups: vec![
            Group {
                id: "g-physics".into(),
                display_name: Some("Physics".into()),
                external_id: None,
            },
            Group {
                id: "g-hidden".into(),
                display_name: None,
                external_id: Some("x".into()),
            },
            Group {
                id: "g-chess".into(),
                display_name: Some("Chess Club ♞".into()),
                external_id: Some("y".into()),
            },
        ],
        scim_json: r#"{"userName":"ada@example.org"}"#.into(),
    }
}

const SETTINGS: &str = r#"{"office":"berlin"}"#;

/// Runs `p` for `user` within `limits`, printing how long it took.
fn run_with(p: Plugin, limits: &PluginLimits, user: &User) -> Result<Vec<Grant>, Failure> {
    let loaded = load(p);
    let started = Instant::now();
    let out = plugins().run(&loaded, limits, user, SETTINGS);
    eprintln!(
        "{p:?}: {:?} in {:?}",
        out.as_ref().map(Vec::len),
        started.elapsed()
    );
    out
}

fn run(p: Plugin) -> Result<Vec<Grant>, Failure> {
    run_with(p, &PluginLimits::default(), &user())
}

/// The failure of a call that must fail.
#[track_caller]
fn failure(p: Plugin, out: Result<Vec<Grant>, Failure>) -> Failure {
    match out {
        Ok(g) => panic!("{p:?} returned {} grants: {:?}", g.len(), triples(&g)),
        Err(f) => f,
    }
}

/// Grants as comparable `(kind, name, reason)`.
fn triples(grants: &[Grant]) -> Vec<(&'static str, String, String)> {
    grants
        .iter()
        .map(|g| {
            let kind = match g.kind {
                GrantKind::Role => "role",
                GrantKind::Team => "team",
                GrantKind::LearningPath => "learning-path",
            };
            (kind, g.name.clone(), g.reason.clone())
        })
        .collect()
}

fn triple(kind: &'static str, name: &str, reason: &str) -> (&'static str, String, String) {
    (kind, name.to_string(), reason.to_string())
}

// ---------------------------------------------------------------------------
// What install refuses.

#[test]
fn a_core_module_is_not_a_component() {
    let r = refusal(Plugin::NotAComponent);
    assert!(matches!(r, Refusal::NotAComponent(_)), "{r:?}");
    assert!(r.to_string().contains("core WebAssembly module"), "{r}");

    // Neither is a file that is no WebAssembly at all.
    let r = plugins()
        .load(b"#!/bin/sh\necho hello\n")
        .err()
        .expect("a shell script is refused");
    assert!(matches!(r, Refusal::NotAComponent(_)), "{r:?}");
    assert!(r.to_string().contains("magic number"), "{r}");
}

#[track_caller]
fn assert_refused_import(p: Plugin, import: &str) {
    let r = refusal(p);
    assert_eq!(r, Refusal::Imports(vec![import.to_string()]), "{p:?}");
    let said = r.to_string();
    assert!(said.contains(import), "{said}");
    // It exports `assign` all right: only the import gives it away.
    assert!(!said.contains("mapper` world"), "{said}");
}

#[test]
fn a_filesystem_import_is_refused_by_name() {
    assert_refused_import(Plugin::ImportsFilesystem, hostile::FILESYSTEM_IMPORT);
}

#[test]
fn a_sockets_import_is_refused_by_name() {
    assert_refused_import(Plugin::ImportsSockets, hostile::SOCKETS_IMPORT);
}

#[test]
fn a_component_of_another_world_is_refused() {
    let r = refusal(Plugin::WrongWorld);
    assert!(matches!(r, Refusal::WrongWorld(_)), "{r:?}");
    assert!(r.to_string().contains("assign"), "{r}");
}

#[test]
fn a_file_over_the_size_limit_is_refused_before_parsing() {
    let huge = vec![0u8; MAX_COMPONENT_BYTES + 1];
    let r = plugins().load(&huge).err().expect("too large");
    assert_eq!(r, Refusal::TooLarge(MAX_COMPONENT_BYTES + 1));
}

#[test]
fn refusals_are_not_cached_as_plugins() {
    let bytes = build(Plugin::ImportsSockets);
    let sha = scim_host::sandbox::plugin::sha256(&bytes);
    assert!(plugins().load(&bytes).is_err());
    assert!(plugins().get(&sha).is_none());
    // And the second upload is refused again, not served from a cache.
    assert!(matches!(plugins().load(&bytes), Err(Refusal::Imports(_))));
}

// ---------------------------------------------------------------------------
// Loading.

#[test]
fn the_same_bytes_load_once_by_content_hash() {
    let bytes = build(Plugin::Teams);
    let first = plugins().load(&bytes).expect("Teams loads");
    let again = plugins().load(&bytes.clone()).expect("Teams loads again");
    assert!(Arc::ptr_eq(&first, &again), "compiled twice");
    assert_eq!(first.size, bytes.len());
    {
        use sha2::Digest as _;
        assert_eq!(first.sha256, hex::encode(sha2::Sha256::digest(&bytes)));
    }
    let found = plugins().get(&first.sha256).expect("found by hash");
    assert!(Arc::ptr_eq(&first, &found));
    // Other bytes are another plugin.
    let other = load(Plugin::Trap);
    assert_ne!(other.sha256, first.sha256);
    assert!(!Arc::ptr_eq(&first, &other));
}

/// The same component with a custom section of `n` appended: other bytes,
/// another plugin to the cache.
fn variant(bytes: &[u8], n: u32) -> Vec<u8> {
    let name = b"variant";
    let payload = n.to_le_bytes();
    let mut out = bytes.to_vec();
    out.push(0); // custom section
    out.push((1 + name.len() + payload.len()) as u8);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out.extend_from_slice(&payload);
    out
}

fn cached_files(dir: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| n.starts_with("plugin-") && n.ends_with(".cwasm"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn an_installed_plugin_is_cached_on_disk_and_serves_a_second_sandbox() {
    let dir = tempfile::tempdir().expect("temp dir");
    let bytes = build(Plugin::Teams);
    let a = Plugins::new(Some(dir.path()), 4).expect("sandbox");
    let loaded = a.load(&bytes).expect("Teams loads");
    assert_eq!(
        cached_files(dir.path()),
        Vec::<String>::new(),
        "an upload never installed is not written"
    );
    a.keep(1, &loaded, &bytes);
    assert_eq!(cached_files(dir.path()).len(), 1, "an installed one is");
    // A new process (sandbox) loads the compiled code and it runs.
    let b = Plugins::new(Some(dir.path()), 4).expect("sandbox");
    let loaded = b.load(&bytes).expect("Teams loads from the cache");
    let grants = b
        .run(&loaded, &PluginLimits::default(), &user(), "{}")
        .expect("Teams runs");
    assert_eq!(grants.len(), 3);
}

#[test]
fn uploads_never_installed_are_kept_within_a_budget_and_installed_ones_stay() {
    let sandbox = Plugins::new(None, 4).expect("sandbox");
    let teams = build(Plugin::Teams);
    let installed = sandbox.load(&teams).expect("loads");
    sandbox.keep(1, &installed, &teams);
    for n in 0..40 {
        let l = sandbox.load(&variant(&teams, n)).expect("a variant loads");
        assert_ne!(l.sha256, installed.sha256);
    }
    let (count, _) = sandbox.recent();
    assert!(count <= 16, "{count} uploads kept compiled");
    assert!(
        sandbox.get(&installed.sha256).is_some(),
        "the installed plugin stays compiled"
    );
    assert!(
        sandbox.get(&sha256(&variant(&teams, 0))).is_none(),
        "the oldest upload was let go"
    );
    assert!(
        sandbox.get(&sha256(&variant(&teams, 39))).is_some(),
        "the newest is kept"
    );
}

/// A plugin no tenant has in force any more is an upload like the others:
/// kept while recent, then let go, so installs over the life of a server
/// do not accumulate.
#[test]
fn a_replaced_plugin_is_let_go_once_no_tenant_runs_it() {
    let sandbox = Plugins::new(None, 4).expect("sandbox");
    let teams = build(Plugin::Teams);
    let first = sandbox.load(&teams).expect("loads");
    sandbox.keep(1, &first, &teams);
    sandbox.keep(2, &first, &teams);
    let other = variant(&teams, 1000);
    let second = sandbox.load(&other).expect("loads");
    sandbox.keep(1, &second, &other);
    sandbox.release(2);
    for n in 0..40 {
        sandbox.load(&variant(&teams, n)).expect("a variant loads");
    }
    assert!(
        sandbox.get(&first.sha256).is_none(),
        "the plugin no tenant runs was let go"
    );
    assert!(
        sandbox.get(&second.sha256).is_some(),
        "tenant 1's plugin stays compiled"
    );
}

// ---------------------------------------------------------------------------
// Running.

#[test]
fn teams_grants_the_learner_role_and_named_groups() {
    let grants = run(Plugin::Teams).expect("Teams succeeds");
    assert_eq!(
        triples(&grants),
        [
            triple("role", "learner", "active"),
            triple("team", "Physics", "group:g-physics"),
            triple("team", "Chess Club ♞", "group:g-chess"),
        ]
    );
    let alone = User {
        groups: vec![],
        ..user()
    };
    let grants = run_with(Plugin::Teams, &PluginLimits::default(), &alone).expect("ok");
    assert_eq!(triples(&grants), [triple("role", "learner", "active")]);
}

/// The default limits, as plugin/mappers/README.md documents them.
#[test]
fn default_limits_are_the_documented_ones() {
    let d = PluginLimits::default();
    assert_eq!(d.fuel, 10_000_000);
    assert_eq!(d.memory_bytes, 16 << 20);
    assert_eq!(d.deadline, Duration::from_millis(100));
    assert_eq!(d.max_input, 128 << 10);
    assert_eq!(d.max_output, 20 << 10);
}

/// Default limits with a deadline far enough away that fuel decides even on
/// a loaded machine (a tight loop burns 10 million fuel in some 25 ms here,
/// a quarter of the default 100 ms deadline).
fn fuel_decides() -> PluginLimits {
    PluginLimits {
        deadline: Duration::from_secs(10),
        ..PluginLimits::default()
    }
}

#[test]
fn an_infinite_loop_runs_out_of_fuel() {
    let f = failure(
        Plugin::InfiniteLoop,
        run_with(Plugin::InfiniteLoop, &fuel_decides(), &user()),
    );
    assert_eq!(f.reason, "plugin-fuel", "{f:?}");
    assert!(f.detail.contains("10000000 fuel"), "{f:?}");
}

#[test]
fn an_infinite_loop_with_ample_fuel_meets_the_deadline() {
    // 10^12 is over what a tenant may configure (MAX_FUEL), but the limits
    // are a plain struct: the deadline is the backstop behind any fuel.
    let fuel = 1_000_000_000_000;
    assert!(fuel > MAX_FUEL);
    let limits = PluginLimits {
        fuel,
        deadline: Duration::from_millis(50),
        ..PluginLimits::default()
    };
    let started = Instant::now();
    let f = failure(
        Plugin::InfiniteLoop,
        run_with(Plugin::InfiniteLoop, &limits, &user()),
    );
    let took = started.elapsed();
    assert_eq!(f.reason, "plugin-timeout", "{f:?}");
    assert!(f.detail.contains("50 ms"), "{f:?}");
    assert!(took >= Duration::from_millis(40), "stopped early: {took:?}");
    assert!(took < Duration::from_secs(5), "stopped late: {took:?}");
}

#[test]
fn a_memory_bomb_hits_the_cap() {
    let f = failure(Plugin::MemoryBomb, run(Plugin::MemoryBomb));
    assert_eq!(f.reason, "plugin-memory", "{f:?}");
    assert!(f.detail.contains("16 MiB"), "{f:?}");
    // A smaller cap is the one reported.
    let limits = PluginLimits {
        memory_bytes: 2 << 20,
        ..PluginLimits::default()
    };
    let f = failure(
        Plugin::MemoryBomb,
        run_with(Plugin::MemoryBomb, &limits, &user()),
    );
    assert_eq!(f.reason, "plugin-memory", "{f:?}");
    assert!(f.detail.contains("2 MiB"), "{f:?}");
}

/// An output past what the host copies is refused before it is copied
/// (wasmtime's host-call fuel); a smaller one that is still too large is
/// measured and refused.
#[test]
fn a_huge_output_is_refused() {
    let f = failure(Plugin::HugeOutput, run(Plugin::HugeOutput));
    assert_eq!(f.reason, "plugin-output-too-large", "{f:?}");
    assert!(f.detail.contains("refused uncopied"), "{f:?}");
    let limits = PluginLimits {
        max_output: hostile::HUGE_OUTPUT_GRANTS as usize * 2,
        ..PluginLimits::default()
    };
    let f = failure(
        Plugin::HugeOutput,
        run_with(Plugin::HugeOutput, &limits, &user()),
    );
    assert_eq!(f.reason, "plugin-output-too-large", "{f:?}");
    assert!(
        f.detail
            .contains(&format!("{} grants", hostile::HUGE_OUTPUT_GRANTS)),
        "{f:?}"
    );
}

#[test]
fn a_trap_is_a_trap() {
    let f = failure(Plugin::Trap, run(Plugin::Trap));
    assert_eq!(f.reason, "plugin-trap", "{f:?}");
    assert!(f.detail.contains("unreachable"), "{f:?}");
}

#[test]
fn a_stack_overflow_is_a_trap() {
    let f = failure(Plugin::StackOverflow, run(Plugin::StackOverflow));
    assert_eq!(f.reason, "plugin-trap", "{f:?}");
    // wasmtime's words for it: "call stack exhausted".
    assert!(f.detail.contains("stack"), "{f:?}");
}

#[test]
fn a_refusal_carries_the_plugins_code_and_message() {
    let f = failure(Plugin::Refuses, run(Plugin::Refuses));
    assert_eq!(f.reason, "plugin-refused", "{f:?}");
    assert!(f.detail.contains(hostile::REFUSAL_CODE), "{f:?}");
    assert!(f.detail.contains(hostile::REFUSAL_MESSAGE), "{f:?}");
}

#[test]
fn unknown_and_denied_names_are_the_engines_business() {
    // The sandbox returns what the plugin said; the catalogue and the
    // tenant's denied roles are checked by the engine (e2e tests).
    let grants = run(Plugin::UnknownRole).expect("UnknownRole succeeds");
    assert_eq!(triples(&grants), [triple("role", "wizard", "magic")]);
    let grants = run(Plugin::GrantsAdmin).expect("GrantsAdmin succeeds");
    assert_eq!(triples(&grants), [triple("role", "admin", "everyone")]);
}

#[test]
fn too_large_an_input_is_refused_without_running_the_plugin() {
    let limits = PluginLimits::default();
    let big = User {
        scim_json: format!(r#"{{"title":"{}"}}"#, "x".repeat(limits.max_input)),
        ..user()
    };
    // The Trap plugin would trap, the loop would run out of fuel: neither
    // runs.
    for p in [Plugin::Trap, Plugin::InfiniteLoop] {
        let f = failure(p, run_with(p, &limits, &big));
        assert_eq!(f.reason, "plugin-input-too-large", "{p:?}: {f:?}");
        assert!(
            f.detail.contains(&limits.max_input.to_string()),
            "{p:?}: {f:?}"
        );
    }
    // Just at the limit it runs (and traps).
    let fits = User {
        scim_json: String::new(),
        ..user()
    };
    let size = fits.id.len()
        + fits.user_name.len()
        + fits.external_id.as_ref().map_or(0, String::len)
        + fits
            .groups
            .iter()
            .map(|g| {
                g.id.len()
                    + g.display_name.as_ref().map_or(0, String::len)
                    + g.external_id.as_ref().map_or(0, String::len)
            })
            .sum::<usize>();
    let fits = User {
        scim_json: "x".repeat(limits.max_input - size),
        ..fits
    };
    let f = failure(Plugin::Trap, run_with(Plugin::Trap, &limits, &fits));
    assert_eq!(f.reason, "plugin-trap", "{f:?}");
}

#[test]
fn every_call_gets_a_fresh_instance() {
    // A trapped instance cannot be entered again; each call instantiates
    // anew, so the same plugin keeps answering, and a call after another
    // plugin's trap is unaffected.
    for _ in 0..3 {
        assert_eq!(
            failure(Plugin::Trap, run(Plugin::Trap)).reason,
            "plugin-trap"
        );
        assert_eq!(
            failure(Plugin::StackOverflow, run(Plugin::StackOverflow)).reason,
            "plugin-trap"
        );
        assert_eq!(run(Plugin::Teams).expect("Teams after a trap").len(), 3);
    }
    // The memory a bomb grew is gone with its instance: the cap is hit
    // again (not already exceeded), and a plugin after it runs normally.
    for _ in 0..2 {
        assert_eq!(
            failure(Plugin::MemoryBomb, run(Plugin::MemoryBomb)).reason,
            "plugin-memory"
        );
    }
    assert_eq!(run(Plugin::Teams).expect("Teams after a bomb").len(), 3);
    // Fuel is per call too.
    let limits = PluginLimits {
        fuel: 1_000_000,
        ..fuel_decides()
    };
    for _ in 0..2 {
        let out = run_with(Plugin::InfiniteLoop, &limits, &user());
        assert_eq!(failure(Plugin::InfiniteLoop, out).reason, "plugin-fuel");
    }
    assert_eq!(run(Plugin::Teams).expect("Teams after the loop").len(), 3);
}

#[test]
fn calls_run_in_parallel_from_one_sandbox() {
    let teams = load(Plugin::Teams);
    let threads: Vec<_> = (0..4)
        .map(|i| {
            let teams = teams.clone();
            std::thread::spawn(move || {
                let p = if i % 2 == 0 {
                    Plugin::Trap
                } else {
                    Plugin::Teams
                };
                let loaded = if p == Plugin::Teams { teams } else { load(p) };
                (0..5)
                    .map(|_| {
                        plugins()
                            .run(&loaded, &PluginLimits::default(), &user(), "{}")
                            .map(|g| g.len())
                            .map_err(|f| f.reason)
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    for (i, t) in threads.into_iter().enumerate() {
        let outs = t.join().expect("thread");
        let want = if i % 2 == 0 {
            Err("plugin-trap")
        } else {
            Ok(3)
        };
        assert!(outs.iter().all(|o| *o == want), "thread {i}: {outs:?}");
    }
}

// ---------------------------------------------------------------------------
// The fixtures themselves.

/// The layouts and flattening hard-coded in hostile.rs's WAT, checked
/// against wit-parser's canonical-ABI implementation.
#[test]
fn canonical_abi_layouts_match_wit_parser() {
    use wit_parser::abi::{AbiVariant, WasmType};
    use wit_parser::{Int, Resolve, SizeAlign, Type, TypeDefKind, WorldItem};

    let mut resolve = Resolve::default();
    let (package, _) = resolve.push_dir(hostile::mapper_wit_dir()).unwrap();
    let world = resolve.select_world(&[package], Some("mapper")).unwrap();
    let mut sizes = SizeAlign::default();
    sizes.fill(&resolve);
    let types = resolve.packages[package].interfaces["types"];
    let ty = |name: &str| Type::Id(resolve.interfaces[types].types[name]);
    let size = |t: &Type| sizes.size(t).size_wasm32() as u32;
    let align = |t: &Type| sizes.align(t).align_wasm32() as u32;
    let offsets = |t: &Type| -> Vec<u32> {
        let Type::Id(id) = t else { unreachable!() };
        let TypeDefKind::Record(r) = &resolve.types[*id].kind else {
            unreachable!()
        };
        sizes
            .field_offsets(r.fields.iter().map(|f| &f.ty))
            .iter()
            .map(|(o, _)| o.size_wasm32() as u32)
            .collect()
    };

    let grant = ty("grant");
    assert_eq!(
        (size(&grant), align(&grant)),
        (hostile::GRANT_SIZE, hostile::GRANT_ALIGN)
    );
    assert_eq!(
        offsets(&grant),
        [
            hostile::GRANT_KIND,
            hostile::GRANT_NAME,
            hostile::GRANT_REASON
        ]
    );
    assert_eq!(size(&ty("grant-kind")), 1);

    let group = ty("group");
    assert_eq!(
        (size(&group), align(&group)),
        (hostile::GROUP_SIZE, hostile::GROUP_ALIGN)
    );
    assert_eq!(
        offsets(&group),
        [
            hostile::GROUP_ID,
            hostile::GROUP_DISPLAY_NAME,
            hostile::GROUP_EXTERNAL_ID
        ]
    );
    // option<string>: tag byte, then (ptr, len) at +4.
    assert_eq!(
        sizes
            .payload_offset(Int::U8, [None, Some(&Type::String)])
            .size_wasm32(),
        4
    );

    let error = ty("mapping-error");
    assert_eq!(
        offsets(&error),
        [hostile::ERROR_CODE, hostile::ERROR_MESSAGE]
    );

    let WorldItem::Function(assign) = resolve.worlds[world]
        .exports
        .iter()
        .find_map(|(key, item)| (resolve.name_world_key(key) == "assign").then_some(item))
        .expect("assign export")
    else {
        panic!("assign is not a function")
    };
    let result = assign.result.expect("assign returns");
    assert_eq!(
        (size(&result), align(&result)),
        (hostile::RESULT_SIZE, hostile::RESULT_ALIGN)
    );
    let Type::Id(result_id) = result else {
        unreachable!()
    };
    let TypeDefKind::Result(r) = &resolve.types[result_id].kind else {
        unreachable!()
    };
    assert_eq!(
        sizes
            .payload_offset(Int::U8, [r.ok.as_ref(), r.err.as_ref()])
            .size_wasm32() as u32,
        hostile::RESULT_PAYLOAD
    );

    let sig = resolve.wasm_signature(AbiVariant::GuestExport, assign);
    assert_eq!(sig.params.len(), 14, "{sig:?}");
    assert!(!sig.indirect_params, "params are passed flat");
    assert!(sig.retptr, "the result goes through a return area");
    assert_eq!(sig.results.len(), 1);
    assert!(
        sig.params
            .iter()
            .chain(&sig.results)
            .all(|t| matches!(t, WasmType::I32 | WasmType::Pointer | WasmType::Length)),
        "{sig:?}"
    );
}

// Instance reuse within a batch (`Plugins::run_in`).

#[test]
fn a_batch_reuses_one_instance_for_user_after_user() {
    let loaded = load(Plugin::Teams);
    let mut session = None;
    let limits = PluginLimits::default();
    for _ in 0..3 {
        let got = plugins()
            .run_in(&mut session, &loaded, &limits, &user(), SETTINGS)
            .expect("teams maps the user");
        assert_eq!(got.len(), 3, "{:?}", triples(&got));
    }
    assert_eq!(session.as_ref().map(|s| s.calls()), Some(3));
}

#[test]
fn a_failure_discards_the_instance() {
    let mut session = None;
    let limits = PluginLimits::default();
    let trap = load(Plugin::Trap);
    let f = failure(
        Plugin::Trap,
        plugins().run_in(&mut session, &trap, &limits, &user(), SETTINGS),
    );
    assert_eq!(f.reason, "plugin-trap");
    assert!(session.is_none(), "a trapped instance must not be kept");
}

#[test]
fn a_refusal_keeps_the_instance() {
    let mut session = None;
    let refuses = load(Plugin::Refuses);
    for _ in 0..2 {
        let f = failure(
            Plugin::Refuses,
            plugins().run_in(
                &mut session,
                &refuses,
                &PluginLimits::default(),
                &user(),
                SETTINGS,
            ),
        );
        assert_eq!(f.reason, "plugin-refused");
    }
    assert_eq!(session.as_ref().map(|s| s.calls()), Some(2));
}

#[test]
fn another_plugin_never_runs_in_the_instance_of_the_last() {
    let mut session = None;
    let limits = PluginLimits::default();
    let teams = load(Plugin::Teams);
    plugins()
        .run_in(&mut session, &teams, &limits, &user(), SETTINGS)
        .expect("teams");
    let admin = load(Plugin::GrantsAdmin);
    let got = plugins()
        .run_in(&mut session, &admin, &limits, &user(), SETTINGS)
        .expect("grants-admin");
    assert_eq!(triples(&got), vec![triple("role", "admin", "everyone")]);
    assert_eq!(
        session.as_ref().map(|s| s.calls()),
        Some(1),
        "a fresh instance"
    );
}

#[test]
fn what_earlier_users_left_in_an_instance_never_fails_the_next() {
    // `Teams` never frees what the host copies in: with 64 KB users and a
    // 1 MiB cap a reused instance runs out of memory after a dozen users.
    // Each of them must still be mapped (in a fresh instance).
    let loaded = load(Plugin::Teams);
    let limits = PluginLimits {
        memory_bytes: 1 << 20,
        ..PluginLimits::default()
    };
    let mut big = user();
    big.scim_json = format!(r#"{{"note":"{}"}}"#, "x".repeat(64 << 10));
    let mut session = None;
    let mut fresh = 0;
    for i in 0..40 {
        let got = plugins()
            .run_in(&mut session, &loaded, &limits, &big, SETTINGS)
            .unwrap_or_else(|f| panic!("user {i}: {} {}", f.reason, f.detail));
        assert_eq!(got.len(), 3);
        if session.as_ref().map(|s| s.calls()) == Some(1) {
            fresh += 1;
        }
    }
    assert!(
        fresh > 1,
        "the cap was never reached: the test proves nothing"
    );
}

#[test]
fn a_host_out_of_instance_slots_is_busy_not_a_plugin_failure() {
    let sandbox = Plugins::new(None, 1).expect("sandbox");
    let loaded = sandbox.load(&build(Plugin::Teams)).expect("teams");
    let limits = PluginLimits::default();
    let mut held = None;
    sandbox
        .run_in(&mut held, &loaded, &limits, &user(), SETTINGS)
        .expect("the one slot");
    let f = failure(
        Plugin::Teams,
        sandbox.run(&loaded, &limits, &user(), SETTINGS),
    );
    assert_eq!(f.reason, "plugin-busy", "{}", f.detail);
    drop(held);
    sandbox
        .run(&loaded, &limits, &user(), SETTINGS)
        .expect("the slot is free again");
}
