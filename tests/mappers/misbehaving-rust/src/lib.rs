//! A test fixture: deliberately misbehaving mapping-plugin code, a
//! WebAssembly component of the world `lms:mapping/mapper@0.1.0`
//! (`wit/mapper/mapper.wit`) built with the real toolchain (Rust,
//! wit-bindgen, wasm32-wasip2), so it imports WASI the way real plugins do.
//! Do not use it as an example; `plugin/mappers/example-rust` is one.
//!
//! `assign` reads the settings `{"mode": "<mode>"}` and then:
//!
//! | mode | behaviour |
//! |---|---|
//! | `ok` | returns the team `Misbehaving` with reason `mode:ok` (the control) |
//! | `panic` | `panic!`s; Rust writes the message to stderr, then aborts (a trap) |
//! | `println` | prints a line to stdout, then returns like `ok` |
//! | `eprintln` | prints a line to stderr, then returns like `ok` |
//! | `print-megabytes` | writes [`MEGABYTES`] to stdout and to stderr, then returns like `ok` |
//! | `sleep` | sleeps [`SLEEP`], then returns like `ok` |
//! | `stdin` | reads stdin to its end (it is empty), then returns like `ok` |
//! | `exit` | `std::process::exit(3)` |
//! | `stack-overflow` | recurses without end |
//! | `loop` | loops without end |
//!
//! Every mode that returns gives the team `Misbehaving` with the reason
//! `mode:<mode>`, so a test sees which mode's answer was applied. Unknown
//! modes and bad settings are refused with `bad-settings`.
//!
//! The end-to-end tests (`tests/e2e/mapper_wasi.rs`) build it:
//!
//! ```sh
//! cargo build -p misbehaving-rust-mapper --target wasm32-wasip2 --profile wasm
//! ```

// The export glue `generate!` writes takes the user record's fields as
// separate parameters.
#![allow(clippy::too_many_arguments)]

use std::hint::black_box;
use std::io::{Read, Write};
use std::time::Duration;

use serde::Deserialize;

wit_bindgen::generate!({
    path: "../../../wit/mapper",
    world: "mapper",
});

use lms::mapping::types::GrantKind;

/// The team every mode that returns grants.
pub const TEAM: &str = "Misbehaving";
/// What `print-megabytes` writes to stdout, and again to stderr: far more
/// than a host keeps, and little enough to be written well within the
/// host's 100 ms deadline (Rust's stdio hands WASI 4 KiB per call).
pub const MEGABYTES: usize = 1 << 20;
/// How long `sleep` sleeps: far past any deadline of the host.
pub const SLEEP: Duration = Duration::from_secs(30);

#[derive(Deserialize)]
struct Settings {
    mode: String,
}

struct Plugin;

impl Guest for Plugin {
    fn assign(user: User, settings: String) -> Result<Vec<Grant>, MappingError> {
        let mode = serde_json::from_str::<Settings>(&settings)
            .map_err(|e| MappingError {
                code: "bad-settings".into(),
                message: format!("expected {{\"mode\": \"<mode>\"}}: {e}"),
            })?
            .mode;
        match mode.as_str() {
            "ok" => {}
            "panic" => panic!("deliberate panic for user {}", user.user_name),
            "println" => println!("mapping user {}", user.user_name),
            "eprintln" => eprintln!("mapping user {}", user.user_name),
            "print-megabytes" => {
                // Lines of 64 KiB written whole. (`println!` of a line that
                // long would cost some 5 fuel units a byte: stdout's line
                // buffering scans the text for a newline before the `\n`
                // is written, and the budget, not the output, would stop it.)
                let line = format!("{}\n", "x".repeat((64 << 10) - 1));
                for _ in 0..MEGABYTES / line.len() {
                    std::io::stdout()
                        .write_all(line.as_bytes())
                        .expect("write stdout");
                    std::io::stderr()
                        .write_all(line.as_bytes())
                        .expect("write stderr");
                }
            }
            "sleep" => std::thread::sleep(SLEEP),
            "stdin" => {
                let mut input = Vec::new();
                std::io::stdin()
                    .read_to_end(&mut input)
                    .expect("read stdin");
            }
            "exit" => std::process::exit(3),
            "stack-overflow" => {
                black_box(recurse(black_box(0)));
            }
            "loop" => {
                let mut n = 0u64;
                loop {
                    n = black_box(n.wrapping_add(1));
                }
            }
            other => {
                return Err(MappingError {
                    code: "bad-settings".into(),
                    message: format!("unknown mode {other:?}"),
                });
            }
        }
        Ok(vec![Grant {
            kind: GrantKind::Team,
            name: TEAM.into(),
            reason: format!("mode:{mode}"),
        }])
    }
}

/// Recurses until the stack runs out: each frame keeps a kilobyte on the
/// stack, and `black_box` keeps the optimizer from removing either.
#[allow(unconditional_recursion)]
fn recurse(depth: u64) -> u64 {
    let frame = black_box([depth as u8; 1024]);
    recurse(black_box(depth + 1)).wrapping_add(u64::from(frame[(depth % 1024) as usize]))
}

export!(Plugin);
