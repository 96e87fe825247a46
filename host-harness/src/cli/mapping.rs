//! `scim-host mapping …`: check, preview, install, remove, show and explain
//! a tenant's mapping rules, against the database directly (the server
//! may be running: SQLite serialises the one write).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{Value, json};

use scim_host::db::{self, Pool};
use scim_host::mapping::{self, Change, Choice, PreviewReport, Refusal};
use scim_host::runtime::{Limits, Runtime};

use crate::{DbArg, default_cache_dir, open_db};

#[derive(Subcommand)]
pub enum MappingCommand {
    /// Check a rules file; with --tenant, also against the LMS catalogue.
    /// Exits 1 when it has errors.
    Check {
        file: PathBuf,
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Run a rules file (or the installed rules, or --default) over every
    /// user of a tenant without applying anything.
    Preview {
        #[arg(long)]
        tenant: String,
        /// The candidate rules; omitted: the installed ones.
        file: Option<PathBuf>,
        /// Preview the default mapping (as if the rules were removed).
        #[arg(long, conflicts_with = "file")]
        default: bool,
        /// Per-learner differences to list (all of them with --json).
        #[arg(long, default_value_t = 50)]
        limit: usize,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Install a rules file for a tenant and re-map every user in the
    /// background. Refused without --confirm when more learners than the
    /// tenant's threshold would lose a role, team or learning path.
    Set {
        #[arg(long)]
        tenant: String,
        file: PathBuf,
        #[arg(long)]
        confirm: bool,
        /// Percent of learners that may lose something without --confirm
        /// (default: the tenant's policy, 5 unless changed).
        #[arg(long)]
        threshold: Option<f64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Install again the version before the one in force (same
    /// confirmation rule); `mapping show` lists the versions.
    Rollback {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        threshold: Option<f64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Return a tenant to the default mapping (same confirmation rule).
    Remove {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        confirm: bool,
        #[arg(long)]
        threshold: Option<f64>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// The rules in force and the versions installed before.
    Show {
        #[arg(long)]
        tenant: String,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Why one user holds what it holds: facts, rules, desired and current
    /// state, and the effects mapping would apply. Changes nothing.
    Explain {
        #[arg(long)]
        tenant: String,
        /// The user's SCIM id or userName.
        user: String,
        /// Explain under these candidate rules instead of the installed ones.
        #[arg(long)]
        file: Option<PathBuf>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

pub(crate) fn runtime() -> Result<Runtime> {
    let limits = Limits {
        timeout: Duration::from_secs(60),
        memory_bytes: 256 << 20,
        instances: 2,
        warm: 0,
    };
    Runtime::new(
        scim_host::ENGINE_WASM,
        limits,
        default_cache_dir().as_deref(),
    )
}

pub(crate) fn read(file: &PathBuf) -> Result<String> {
    std::fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))
}

/// The users a preview has visited, of the tenant's, on a terminal (on a
/// large tenant a preview takes seconds to minutes); nothing when stderr
/// is piped, so `--json` and scripts see only their output.
pub(crate) fn progress(pool: &Pool, tenant: &db::Tenant) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let total = pool
        .get()
        .ok()
        .and_then(|c| mapping::users(&c, tenant.id).ok())
        .unwrap_or(0);
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} previewing {pos}/{len} users [{bar:30}] {per_sec}, {eta} left",
        )
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}

pub(crate) fn refusal(r: Refusal, json: bool) -> anyhow::Error {
    if json {
        let body = match &r {
            Refusal::Invalid(report) => json!({"error": "invalid", "check": report}),
            Refusal::NeedsConfirmation { preview, threshold } => {
                json!({"error": "confirmation-required", "threshold": threshold, "preview": preview})
            }
            Refusal::Engine { status, detail } => {
                json!({"error": "refused", "status": status, "detail": detail})
            }
            Refusal::Internal(e) => json!({"error": "internal", "detail": format!("{e:#}")}),
            Refusal::Cancelled => json!({"error": "cancelled", "detail": r.to_string()}),
        };
        println!("{body}");
    }
    anyhow::anyhow!("{r}")
}

pub fn run(cmd: MappingCommand) -> Result<()> {
    match cmd {
        MappingCommand::Check {
            file,
            tenant,
            json,
            db,
        } => {
            let text = read(&file)?;
            let rt = runtime()?;
            let scope = match &tenant {
                Some(t) => {
                    let pool = open_db(&db)?;
                    let tenant = mapping::tenant(&*pool.get()?, t)?;
                    Some((pool, tenant))
                }
                None => None,
            };
            let report = mapping::check(&rt, scope.as_ref().map(|(p, t)| (p, t)), &text)
                .map_err(|r| refusal(r, json))?;
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                for d in &report.diagnostics {
                    eprintln!("{}:{d}", file.display());
                }
                if report.valid {
                    println!("{}: {} rules, valid", file.display(), report.rules);
                }
            }
            if !report.valid {
                bail!("{} has errors; nothing was installed", file.display());
            }
        }
        MappingCommand::Preview {
            tenant,
            file,
            default,
            limit,
            json,
            db,
        } => {
            let choice = match (&file, default) {
                (Some(f), _) => Choice::Document(read(f)?),
                (None, true) => Choice::Default,
                (None, false) => Choice::Installed,
            };
            let (rt, pool, tenant) = open(&db, &tenant)?;
            let bar = progress(&pool, &tenant);
            let keep = if json { usize::MAX } else { limit };
            let report = mapping::preview(
                &rt,
                &pool,
                &tenant,
                &choice,
                keep,
                &mut mapping::heard(|n| bar.set_position(n)),
            )
            .map_err(|r| refusal(r, json))?;
            bar.finish_and_clear();
            if json {
                println!("{}", serde_json::to_string(&report)?);
            } else {
                print_preview(&report);
            }
        }
        MappingCommand::Set {
            tenant,
            file,
            confirm,
            threshold,
            json,
            db,
        } => {
            let text = read(&file)?;
            install(&db, &tenant, Some(&text), confirm, threshold, json)?;
        }
        MappingCommand::Remove {
            tenant,
            confirm,
            threshold,
            json,
            db,
        } => install(&db, &tenant, None, confirm, threshold, json)?,
        MappingCommand::Rollback {
            tenant,
            confirm,
            threshold,
            json,
            db,
        } => {
            let pool = open_db(&db)?;
            let t = mapping::tenant(&*pool.get()?, &tenant)?;
            let (version, document) =
                mapping::rollback_target(&pool, &t).map_err(|r| refusal(r, json))?;
            if !json {
                eprintln!("Rolling back to version {version}.");
            }
            install(&db, &tenant, document.as_deref(), confirm, threshold, json)?;
        }
        MappingCommand::Show { tenant, json, db } => {
            let pool = open_db(&db)?;
            let conn = pool.get()?;
            let t = mapping::tenant(&conn, &tenant)?;
            let current = db::rules::current(&conn, t.id)?;
            let history = db::rules::history(&conn, t.id, 20)?;
            if json {
                println!("{}", json!({"current": current, "history": history}));
            } else {
                match current {
                    Some(c) if c.document.is_some() => {
                        println!(
                            "# version {} installed {} by {} (sha256 {})",
                            c.version,
                            c.installed_at,
                            c.installed_by,
                            c.sha256.as_deref().unwrap_or("")
                        );
                        println!("{}", c.document.unwrap_or_default());
                    }
                    _ => println!("No rules installed: the default mapping applies."),
                }
            }
        }
        MappingCommand::Explain {
            tenant,
            user,
            file,
            json,
            db,
        } => {
            let choice = match &file {
                Some(f) => Choice::Document(read(f)?),
                None => Choice::Installed,
            };
            let (rt, pool, tenant) = open(&db, &tenant)?;
            let v = mapping::explain(&rt, &pool, &tenant, &choice, &user)
                .map_err(|r| refusal(r, json))?;
            if json {
                println!("{v}");
            } else {
                print_explain(&v);
            }
        }
    }
    Ok(())
}

pub(crate) fn open(db: &DbArg, tenant: &str) -> Result<(Runtime, Pool, db::Tenant)> {
    let pool = open_db(db)?;
    let tenant = mapping::tenant(&*pool.get()?, tenant)?;
    Ok((runtime()?, pool, tenant))
}

fn install(
    db: &DbArg,
    tenant: &str,
    document: Option<&str>,
    confirm: bool,
    threshold: Option<f64>,
    json: bool,
) -> Result<()> {
    let (rt, pool, tenant) = open(db, tenant)?;
    let bar = progress(&pool, &tenant);
    let by = format!(
        "cli:{}",
        std::env::var("USER").unwrap_or_else(|_| "unknown".into())
    );
    let outcome = mapping::install(
        &rt,
        &pool,
        &tenant,
        document,
        threshold,
        Change {
            confirm,
            by: &by,
            keep: if json { 1000 } else { 20 },
            progress: &mut mapping::heard(|n| bar.set_position(n)),
            writers: None,
            previewed: None,
            claim: None,
        },
    );
    bar.finish_and_clear();
    let outcome = outcome.map_err(|r| {
        if let Refusal::NeedsConfirmation { preview, .. } = &r
            && !json
        {
            print_preview(preview);
        }
        refusal(r, json)
    })?;
    if json {
        println!("{}", serde_json::to_string(&outcome)?);
    } else {
        print_preview(&outcome.preview);
        println!(
            "Installed version {}. Every user is re-mapped in the background; follow it with `scim-host sync status --tenant {}`.",
            outcome.installed.version, tenant.name
        );
    }
    Ok(())
}

pub(crate) fn print_preview(r: &PreviewReport) {
    println!(
        "{} users: {} would change ({} gain, {} lose, {} failed); {:.1}% would lose something.",
        r.users, r.changed, r.gaining, r.losing, r.failed, r.losing_percent
    );
    for i in &r.items {
        let mut parts = Vec::new();
        if i.gained > 0 {
            parts.push(format!("+{}", i.gained));
        }
        if i.lost > 0 {
            parts.push(format!("-{}", i.lost));
        }
        if i.skipped > 0 {
            parts.push(format!("{} skipped: not in the catalogue", i.skipped));
        }
        println!("  {} {:?}: {}", i.kind, i.name, parts.join(", "));
    }
    for (reason, n) in &r.failures {
        println!("  {n} failed: {reason}");
    }
    for d in &r.differences {
        let list = |l: &[Value], sign: &str| {
            l.iter()
                .map(|i| {
                    format!(
                        "{sign}{} {}",
                        i["kind"].as_str().unwrap_or(""),
                        i["name"].as_str().unwrap_or("")
                    )
                })
                .collect::<Vec<_>>()
        };
        let mut parts = list(&d.gains, "+");
        parts.extend(list(&d.losses, "-"));
        if let Some(f) = &d.failure {
            parts.push(format!("failed: {f}"));
        }
        println!("    {} ({}): {}", d.user_name, d.id, parts.join("; "));
    }
    if r.truncated {
        println!("    … and more (--limit N, or --json for every learner)");
    }
}

fn print_explain(v: &Value) {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let u = &v["user"];
    println!(
        "1. User {} ({}), {}",
        s(&u["userName"]),
        s(&u["id"]),
        if u["active"].as_bool() == Some(true) {
            "active"
        } else {
            "inactive"
        }
    );
    println!("2. Facts the mapper saw:");
    for g in v["facts"]["groups"].as_array().into_iter().flatten() {
        println!("     group {} ({})", s(&g["displayName"]), s(&g["id"]));
    }
    if let Some(attrs) = v["facts"]["attributes"].as_object() {
        for (k, vals) in attrs {
            println!("     {k} = {vals}");
        }
    }
    println!("3. Mapping: {}", s(&v["mapper"]));
    for r in v["rules"].as_array().into_iter().flatten() {
        let mark = if r["matched"].as_bool() == Some(true) {
            "matched"
        } else {
            "did not match"
        };
        let via = r["via"]
            .as_str()
            .map(|v| format!(" through {v}"))
            .unwrap_or_default();
        println!(
            "     rule {:?} (priority {}): {mark}{via}",
            s(&r["rule"]),
            r["priority"]
        );
        if let Some(t) = r.get("condition") {
            print_trace(t, 7);
        }
        for n in r["notes"].as_array().into_iter().flatten() {
            println!("       note: {}", s(n));
        }
    }
    for n in v["notes"].as_array().into_iter().flatten() {
        println!("     note: {}", s(n));
    }
    if let Some(f) = v.get("failure") {
        println!("     FAILED: {}: {}", s(&f["reason"]), s(&f["detail"]));
    }
    println!("4. Desired:");
    for g in v["desired"].as_array().into_iter().flatten() {
        println!(
            "     {} {:?} from {}",
            s(&g["kind"]),
            s(&g["name"]),
            s(&g["source"])
        );
    }
    println!("5. Current:");
    match v["current"].as_object() {
        None => println!("     no learner yet"),
        Some(c) => {
            println!("     status {}", s(&c["status"]));
            for g in c["grants"].as_array().into_iter().flatten() {
                println!(
                    "     {} {:?} from {}",
                    s(&g["kind"]),
                    s(&g["name"]),
                    s(&g["source"])
                );
            }
            for g in c["withdrawn"].as_array().into_iter().flatten() {
                println!(
                    "     {} {:?} from {} (removed by hand)",
                    s(&g["kind"]),
                    s(&g["name"]),
                    s(&g["source"])
                );
            }
        }
    }
    println!("6. Effects mapping would apply:");
    let effects = v["effects"].as_array().cloned().unwrap_or_default();
    if effects.is_empty() {
        println!("     none: the learner is as mapping wants");
    }
    for e in effects {
        let note = e
            .get("note")
            .map(|n| format!(" ({})", s(n)))
            .unwrap_or_default();
        println!(
            "     {} {} {:?}{}{note}",
            s(&e["effect"]),
            s(&e["kind"]),
            s(&e["name"]),
            e.get("source")
                .map(|x| format!(" from {}", s(x)))
                .unwrap_or_default()
        );
    }
}

fn print_trace(t: &Value, indent: usize) {
    let values = t
        .get("values")
        .map(|v| format!(" (saw {v})"))
        .unwrap_or_default();
    println!(
        "{:indent$}{} → {}{values}",
        "",
        t["test"].as_str().unwrap_or(""),
        t["result"]
    );
    for c in t["children"].as_array().into_iter().flatten() {
        print_trace(c, indent + 2);
    }
}
