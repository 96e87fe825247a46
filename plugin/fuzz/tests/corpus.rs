//! Replays every seed in `corpus/<target>/` and every past finding in
//! `regressions/<target>/` through the target's function, so that plain
//! `cargo test` keeps the targets compiling and the findings fixed.

use std::path::Path;

fn replay(target: &str, run: fn(&[u8])) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut seen = 0;
    for dir in ["corpus", "regressions"] {
        let Ok(entries) = std::fs::read_dir(root.join(dir).join(target)) else {
            continue;
        };
        let mut files: Vec<_> = entries.map(|e| e.unwrap().path()).collect();
        files.sort();
        for file in files {
            let data = std::fs::read(&file).unwrap();
            if let Err(e) = std::panic::catch_unwind(|| run(&data)) {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                panic!("{} fails: {msg}", file.display());
            }
            seen += 1;
        }
    }
    assert!(seen > 0, "no seeds for {target}");
}

#[test]
fn filter_seeds() {
    replay("filter", scim_engine_fuzz::filter);
}

#[test]
fn path_seeds() {
    replay("path", scim_engine_fuzz::path);
}

#[test]
fn patch_seeds() {
    replay("patch", scim_engine_fuzz::patch);
}

#[test]
fn normalize_seeds() {
    replay("normalize", scim_engine_fuzz::normalize);
}

#[test]
fn rules_seeds() {
    replay("rules", scim_engine_fuzz::rules);
}

#[test]
fn cursor_seeds() {
    replay("cursor", scim_engine_fuzz::cursor);
}

#[test]
fn plugin_output_seeds() {
    replay("plugin_output", scim_engine_fuzz::plugin_output);
}

#[test]
fn handler_seeds() {
    replay("handler", scim_engine_fuzz::handler);
}
