//! `scim-host tenant alerts NAME …`: a tenant's alert webhooks from the
//! command line (the same as `/admin/v1/alerts`), on the database directly.

use anyhow::{Result, bail};
use clap::Args;
use serde_json::json;

use scim_host::alerts::{self, hooks, queue};
use scim_host::db;

use crate::{DbArg, open_db};

#[derive(Args)]
pub struct AlertsArgs {
    /// The tenant.
    name: String,
    /// Add a webhook that receives alerts at this http(s) URL (with --on).
    #[arg(long, requires = "on", conflicts_with_all = ["list", "remove", "deliveries"])]
    webhook: Option<String>,
    /// The alerts it receives, comma-separated: provisioning-failed,
    /// mapping-failed, role-mismatch, drift, plugin-disabled, outbox-backlog.
    #[arg(long, value_delimiter = ',', requires = "webhook")]
    on: Vec<String>,
    /// `json` (the default) or `slack` (a Slack-compatible message).
    #[arg(long, requires = "webhook")]
    format: Option<String>,
    /// Minutes the oldest background task may wait before an
    /// outbox-backlog alert (default 15).
    #[arg(long, requires = "webhook")]
    backlog_minutes: Option<i64>,
    /// Accept a loopback, private or link-local address (the server must
    /// also run with `serve --alerts-allow-private` to deliver there).
    #[arg(long, requires = "webhook")]
    allow_private: bool,
    /// List the webhooks (what the command does without another action).
    #[arg(long, conflicts_with_all = ["remove", "deliveries"])]
    list: bool,
    /// Remove the webhook with this id.
    #[arg(long, value_name = "ID", conflicts_with = "deliveries")]
    remove: Option<i64>,
    /// Show the delivery log, newest first.
    #[arg(long)]
    deliveries: bool,
    /// Deliveries shown (with --deliveries).
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(i64).range(1..=1000))]
    limit: i64,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArg,
}

pub fn run(args: AlertsArgs) -> Result<()> {
    let pool = open_db(&args.db)?;
    let conn = pool.get()?;
    let tenant = db::tenant_id(&conn, &args.name)?;
    if let Some(url) = &args.webhook {
        let new = hooks::NewHook {
            url: url.clone(),
            on: args.on.clone(),
            format: args.format.clone(),
            backlog_minutes: args.backlog_minutes,
        };
        let (hook, secret) = match hooks::create(&conn, tenant, &new, args.allow_private) {
            Ok(h) => h,
            Err(hooks::HookError::Invalid(why)) => bail!("{why}"),
            Err(hooks::HookError::Db(e)) => return Err(e.into()),
        };
        if args.json {
            let mut out = hook.json();
            out["secret"] = json!(secret);
            println!("{out}");
        } else {
            println!(
                "Added webhook {} of tenant '{}': {} ({}) on {}.",
                hook.id,
                args.name,
                hook.url,
                hook.format,
                hook.on.join(", ")
            );
            println!("Its signing secret is shown only once:\n  {secret}");
        }
        return Ok(());
    }
    if let Some(id) = args.remove {
        if !hooks::remove(&conn, tenant, id)? {
            bail!(
                "tenant '{}' has no webhook {id}; `scim-host tenant alerts {} --list` lists them",
                args.name,
                args.name
            );
        }
        if args.json {
            println!("{}", json!({"removed": id}));
        } else {
            eprintln!("Removed webhook {id} of tenant '{}'.", args.name);
        }
        return Ok(());
    }
    if args.deliveries {
        let list = queue::list(&conn, tenant, args.limit)?;
        if args.json {
            println!("{}", json!({ "deliveries": list }));
            return Ok(());
        }
        for d in &list {
            let s = |k: &str| d[k].as_str().unwrap_or("-").to_string();
            println!(
                "{}  webhook {}  {:<20} {:<10} attempts {}  {}{}",
                s("created"),
                d["webhook"],
                s("kind"),
                s("state"),
                d["attempts"],
                s("eventId"),
                d["lastError"]
                    .as_str()
                    .map(|e| format!("  last error: {e}"))
                    .unwrap_or_default()
            );
        }
        if list.is_empty() {
            eprintln!("No deliveries yet.");
        }
        return Ok(());
    }
    let list = hooks::list(&conn, tenant)?;
    if args.json {
        println!(
            "{}",
            json!({
                "webhooks": list.iter().map(hooks::Hook::json).collect::<Vec<_>>(),
                "kinds": alerts::KINDS,
            })
        );
        return Ok(());
    }
    for h in &list {
        println!(
            "{}  {}  {}  on {}  (backlog {} min, since {})",
            h.id,
            h.url,
            h.format,
            h.on.join(","),
            h.backlog_minutes,
            h.created
        );
    }
    if list.is_empty() {
        eprintln!(
            "Tenant '{}' has no webhooks; add one with --webhook URL --on KINDS.",
            args.name
        );
    }
    Ok(())
}
