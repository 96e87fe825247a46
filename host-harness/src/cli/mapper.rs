//! `scim-host mapper …`: install, preview, show, roll back, remove and
//! replay a tenant's mapping plugin, against the database directly (the
//! server picks a new version up on its next request).

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::{Args, Subcommand};

use scim_host::mapper::{self, Outcome, Upload};
use scim_host::mapping::{Change, heard};

use super::mapping::{open, print_preview, progress, read, refusal};
use crate::DbArg;

/// A plugin file and how it runs.
#[derive(Args)]
pub struct PluginArgs {
    /// The plugin: a WebAssembly component of the `mapper` world.
    file: PathBuf,
    /// A JSON object the plugin receives with every call (lookup tables,
    /// options).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// Fuel per call (default 10,000,000; about one wasm instruction each).
    #[arg(long)]
    fuel: Option<u64>,
    /// Memory cap per call in MiB (default 16; up to 256, e.g. for Python).
    #[arg(long)]
    memory_mib: Option<u64>,
}

#[derive(Subcommand)]
pub enum MapperCommand {
    /// Check a plugin and run it over every user of a tenant without
    /// applying anything.
    Preview {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        plugin: PluginArgs,
        /// Per-learner differences to list (all of them with --json).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Install a plugin for a tenant (it replaces the rules) and re-map
    /// every user in the background. Refused without --confirm when more
    /// learners than the tenant's threshold would lose something.
    Install {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        plugin: PluginArgs,
        /// Failed calls in a row that disable the plugin (default 5).
        #[arg(long)]
        max_failures: Option<u32>,
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Put the version before the one in force back (same confirmation rule).
    Rollback {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Remove the tenant's plugin: its rules apply again.
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Which plugin is in force (hash, size, install time, installer,
    /// failures) and the versions before it.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Re-run the inputs of the tenant's recent failed plugin calls against
    /// a new build, before installing it.
    Replay {
        #[arg(long)]
        tenant: String,
        #[command(flatten)]
        plugin: PluginArgs,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

/// The file's bytes and the settings text.
fn load(p: &PluginArgs) -> Result<(Vec<u8>, Option<String>)> {
    let bytes = std::fs::read(&p.file).with_context(|| format!("reading {}", p.file.display()))?;
    let settings = p.settings.as_ref().map(read).transpose()?;
    Ok((bytes, settings))
}

fn upload<'a>(p: &PluginArgs, bytes: &'a [u8], settings: Option<&'a str>) -> Upload<'a> {
    Upload {
        component: bytes,
        settings,
        fuel: p.fuel,
        memory_mib: p.memory_mib,
        max_failures: None,
    }
}

fn by() -> String {
    format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    )
}

fn report(outcome: Outcome, json: bool, tenant: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&outcome)?);
        return Ok(());
    }
    print_preview(&outcome.preview);
    match &outcome.installed.sha256 {
        Some(h) => println!(
            "Version {} in force: plugin {h} ({} bytes).",
            outcome.installed.version,
            outcome.installed.size.unwrap_or(0)
        ),
        None => println!(
            "Version {} in force: no plugin, the rules apply.",
            outcome.installed.version
        ),
    }
    println!(
        "Every user is re-mapped in the background; follow it with `scim-host sync status --tenant {tenant}`."
    );
    Ok(())
}

pub fn run(cmd: MapperCommand) -> Result<()> {
    match cmd {
        MapperCommand::Preview {
            tenant,
            plugin,
            limit,
            json,
            db,
        } => {
            let (bytes, settings) = load(&plugin)?;
            let (rt, pool, tenant) = open(&db, &tenant)?;
            let candidate = mapper::candidate(&rt, &upload(&plugin, &bytes, settings.as_deref()))
                .map_err(|r| refusal(r, json))?;
            let bar = progress(&pool, &tenant);
            let keep = if json { usize::MAX } else { limit };
            let r = mapper::preview(
                &rt,
                &pool,
                &tenant,
                &candidate,
                keep,
                &mut heard(|n| bar.set_position(n)),
            );
            bar.finish_and_clear();
            let r = r.map_err(|r| refusal(r, json))?;
            if json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
                println!(
                    "Plugin {} ({} bytes).",
                    candidate.loaded.sha256, candidate.loaded.size
                );
                print_preview(&r);
            }
        }
        MapperCommand::Install {
            tenant,
            plugin,
            max_failures,
            confirm,
            json,
            db,
        } => {
            let (bytes, settings) = load(&plugin)?;
            let (rt, pool, t) = open(&db, &tenant)?;
            let mut up = upload(&plugin, &bytes, settings.as_deref());
            up.max_failures = max_failures;
            let bar = progress(&pool, &t);
            let keep = if json { 1000 } else { 20 };
            let r = mapper::install(
                &rt,
                &pool,
                &t,
                &up,
                Change {
                    confirm,
                    by: &by(),
                    keep,
                    progress: &mut heard(|n| bar.set_position(n)),
                    writers: None,
                    previewed: None,
                    claim: None,
                },
            );
            bar.finish_and_clear();
            report(r.map_err(|r| confirmation(r, json))?, json, &tenant)?;
        }
        MapperCommand::Rollback {
            tenant,
            confirm,
            json,
            db,
        } => {
            let (rt, pool, t) = open(&db, &tenant)?;
            let bar = progress(&pool, &t);
            let r = mapper::rollback(
                &rt,
                &pool,
                &t,
                Change {
                    confirm,
                    by: &by(),
                    keep: 20,
                    progress: &mut heard(|n| bar.set_position(n)),
                    writers: None,
                    previewed: None,
                    claim: None,
                },
            );
            bar.finish_and_clear();
            report(r.map_err(|r| confirmation(r, json))?, json, &tenant)?;
        }
        MapperCommand::Remove {
            tenant,
            confirm,
            json,
            db,
        } => {
            let (rt, pool, t) = open(&db, &tenant)?;
            let bar = progress(&pool, &t);
            let r = mapper::remove(
                &rt,
                &pool,
                &t,
                Change {
                    confirm,
                    by: &by(),
                    keep: 20,
                    progress: &mut heard(|n| bar.set_position(n)),
                    writers: None,
                    previewed: None,
                    claim: None,
                },
            );
            bar.finish_and_clear();
            report(r.map_err(|r| confirmation(r, json))?, json, &tenant)?;
        }
        MapperCommand::Show { tenant, json, db } => {
            let pool = crate::open_db(&db)?;
            let t = scim_host::mapping::tenant(&*pool.get()?, &tenant)?;
            let shown = mapper::show(&pool, &t).map_err(|r| refusal(r, json))?;
            if json {
                println!("{}", serde_json::to_string(&shown)?);
                return Ok(());
            }
            match &shown.current {
                Some(v) if v.sha256.is_some() => {
                    println!(
                        "Version {}: plugin {} ({} bytes), installed {} by {}; fuel {}, memory {} MiB; {} failures in a row.",
                        v.version,
                        v.sha256.as_deref().unwrap_or(""),
                        v.size.unwrap_or(0),
                        v.installed_at,
                        v.installed_by,
                        v.limits().fuel,
                        v.limits().memory_bytes >> 20,
                        v.failures
                    );
                    if let Some(at) = &v.disabled_at {
                        println!(
                            "DISABLED since {at}: {}. The rules apply; install a fixed build or roll back.",
                            v.disabled_reason.as_deref().unwrap_or("")
                        );
                    }
                }
                Some(v) => println!(
                    "Version {}: no plugin (removed {} by {}); the rules apply.",
                    v.version, v.installed_at, v.installed_by
                ),
                None => println!("No plugin was ever installed; the rules apply."),
            }
            for v in &shown.history {
                println!(
                    "  version {}: {} {} by {}",
                    v.version,
                    v.sha256.as_deref().unwrap_or("(removal)"),
                    v.installed_at,
                    v.installed_by
                );
            }
        }
        MapperCommand::Replay {
            tenant,
            plugin,
            json,
            db,
        } => {
            let (bytes, settings) = load(&plugin)?;
            let own = settings.is_some();
            let (rt, pool, t) = open(&db, &tenant)?;
            let candidate = mapper::candidate(&rt, &upload(&plugin, &bytes, settings.as_deref()))
                .map_err(|r| refusal(r, json))?;
            let runs =
                mapper::replay(&rt, &pool, &t, &candidate, own).map_err(|r| refusal(r, json))?;
            if json {
                println!("{}", serde_json::to_string(&runs)?);
                return Ok(());
            }
            if runs.is_empty() {
                println!("No failed calls are kept for tenant '{tenant}'.");
            }
            let fixed = runs.iter().filter(|r| r.failure.is_none()).count();
            for r in &runs {
                match &r.failure {
                    None => println!(
                        "ok     {} ({}): {}",
                        r.user_name,
                        r.user_id,
                        r.grants.join(", ")
                    ),
                    Some(f) => println!("FAILS  {} ({}): {f}", r.user_name, r.user_id),
                }
                println!("       before: {}", r.before);
            }
            println!(
                "{fixed} of {} failed calls succeed with this build.",
                runs.len()
            );
        }
    }
    Ok(())
}

/// Prints the preview of a refused install before the refusal.
fn confirmation(r: scim_host::mapping::Refusal, json: bool) -> anyhow::Error {
    if let scim_host::mapping::Refusal::NeedsConfirmation { preview, .. } = &r
        && !json
    {
        print_preview(preview);
    }
    refusal(r, json)
}
