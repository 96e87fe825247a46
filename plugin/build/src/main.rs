//! `scim-engine-build`: builds the engine component and prints its path, for
//! hosts that are not built by cargo (`host-harness/python/serve`,
//! `host-harness/node/serve`) and for release pipelines.
//!
//! ```text
//! cargo run -q -p scim-engine-build [-- [--out FILE] [--features F] [--target-dir DIR] [--json]]
//! ```

use std::path::PathBuf;

use anyhow::{Context as _, Result, bail};

fn main() {
    if let Err(e) = run() {
        eprintln!("scim-engine-build: {e:#}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = root.canonicalize().context("finding the workspace root")?;
    let mut opts = scim_engine_build::Options {
        target_dir: root.join("target/engine"),
        root,
        features: Vec::new(),
    };
    let (mut out, mut json) = (None, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--out" => out = Some(PathBuf::from(args.next().context("--out needs a file")?)),
            "--features" => opts
                .features
                .push(args.next().context("--features needs a list")?),
            "--target-dir" => {
                opts.target_dir =
                    PathBuf::from(args.next().context("--target-dir needs a directory")?)
            }
            "--json" => json = true,
            "-h" | "--help" => {
                println!(
                    "usage: scim-engine-build [--out FILE] [--features F] [--target-dir DIR] [--json]\n\
                     Builds the engine component and prints its path (and, with --json, \
                     its size and imports)."
                );
                return Ok(());
            }
            other => bail!("unknown argument '{other}'; see --help"),
        }
    }
    let mut path = scim_engine_build::build(&opts)?;
    if let Some(out) = out {
        std::fs::copy(&path, &out).with_context(|| format!("copying to {}", out.display()))?;
        path = out;
    }
    if json {
        let bytes = std::fs::read(&path)?;
        let imports = scim_engine_build::imports(&bytes)?;
        let report = serde_json::json!({
            "path": path,
            "bytes": bytes.len(),
            "imports": imports,
        });
        println!("{report}");
    } else {
        println!("{}", path.display());
    }
    Ok(())
}
