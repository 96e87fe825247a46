//! The `scim-host` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};

mod cli;
use scim_host::app::{App, Background};
use scim_host::db::TokenKind;
use scim_host::http::connections::Limits as ConnectionLimits;
use scim_host::http::{BASE_PATH, Options, serve, shutdown_signal, tls::Tls};
use scim_host::runtime::{Limits, Runtime};
use scim_host::{ENGINE_WASM, db, events, outbox};

/// A request allocates and frees many small buffers on two threads (HTTP,
/// the component's arguments and results, SQLite rows); mimalloc's
/// thread-local free lists serve that faster than glibc's arenas.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "scim-host",
    version,
    about = "SCIM 2.0 provisioning server for an LMS, running the SCIM engine as a WebAssembly component"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve SCIM over HTTP at http://LISTEN/scim/v2.
    Serve(Box<ServeArgs>),
    /// Manage tenants, their tokens and their provisioning policy.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
    /// List a tenant's sync log, newest first.
    Events(EventsArgs),
    /// The roles, teams and learning paths the LMS offers.
    Catalogue {
        #[command(subcommand)]
        command: cli::catalogue::CatalogueCommand,
    },
    /// Mapping rules: check, preview, set, remove, show, explain.
    Mapping {
        #[command(subcommand)]
        command: cli::mapping::MappingCommand,
    },
    /// Mapping plugins: preview, install, rollback, remove, show, replay.
    Mapper {
        #[command(subcommand)]
        command: cli::mapper::MapperCommand,
    },
    /// Background re-mapping.
    Sync {
        #[command(subcommand)]
        command: SyncCommand,
    },
    /// The database's schema: where it stands, and migrating it.
    Db {
        #[command(subcommand)]
        command: DbCommand,
    },
}

#[derive(Subcommand)]
enum DbCommand {
    /// Create or migrate the schema now (every `serve` also does this on
    /// start; replicas starting at once take turns).
    Migrate {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// The schema version the database has and the one this build knows,
    /// without changing anything.
    Status {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Copy a SQLite database into FILE, consistently, while a server runs
    /// on it. To restore: stop the server, copy FILE over the database
    /// (removing its -wal and -shm files), start the server. PostgreSQL is
    /// backed up with pg_dump.
    Backup {
        /// Where to write the copy.
        file: PathBuf,
        /// Replace FILE if it exists.
        #[arg(long)]
        force: bool,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Args)]
struct EventsArgs {
    /// The tenant whose log to read.
    #[arg(long)]
    tenant: String,
    /// Only events at or after this time (RFC 3339, or a date).
    #[arg(long)]
    since: Option<String>,
    /// Only failures.
    #[arg(long)]
    failed: bool,
    /// Only events about this user (SCIM id or userName).
    #[arg(long)]
    user: Option<String>,
    /// Only events before this time (RFC 3339, or a date).
    #[arg(long)]
    until: Option<String>,
    /// Only events with this action (create, replace, grant, revoke, ...).
    #[arg(long)]
    action: Option<String>,
    /// Only events of this request id.
    #[arg(long)]
    request: Option<String>,
    /// Only events of this change id (a request and its background work).
    #[arg(long)]
    change: Option<String>,
    /// At most this many events.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    /// Print JSON (`{"events": [...]}`) instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    db: DbArg,
}

#[derive(Subcommand)]
enum SyncCommand {
    /// The outbox backlog: pending tasks, the oldest one's age, failures.
    Status {
        /// Only this tenant's tasks.
        #[arg(long)]
        tenant: Option<String>,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
}

#[derive(Args)]
struct DbArg {
    /// The database: a SQLite file (created on first start), or a
    /// PostgreSQL URL (`postgres://USER[:PASSWORD]@HOST[:PORT]/DB`) shared
    /// by several replicas.
    #[arg(long, env = "SCIM_DB", default_value = "./scim.db")]
    db: db::Location,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCIM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    db: DbArg,
    /// SCIM bearer token of the `default` tenant (for the identity
    /// provider). Without it, tokens are created on first start and printed
    /// once.
    #[arg(long, env = "SCIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Admin token of the `default` tenant (for `/admin/v1`).
    #[arg(long, env = "SCIM_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// Token `/metrics` requires; without it, `/metrics` is off.
    #[arg(long, env = "SCIM_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Users re-mapped per background batch (one transaction each), 1 to
    /// 10,000.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..=i64::from(scim_host::lms::MAX_LEARNERS_PER_CALL)))]
    drain_batch: u32,
    /// Pause between background batches, in milliseconds.
    #[arg(long, default_value_t = 0)]
    drain_delay_ms: u64,
    /// Days the sync log keeps events.
    #[arg(long, default_value_t = 30)]
    event_retention_days: u32,
    /// Run another build of the engine component instead of the embedded one.
    #[arg(long, env = "SCIM_ENGINE")]
    engine: Option<PathBuf>,
    /// Absolute SCIM base URL for Location headers (default: from the Host header).
    #[arg(long, env = "SCIM_PUBLIC_URL")]
    public_url: Option<String>,
    /// Largest accepted request body, in bytes (also advertised as bulk.maxPayloadSize).
    #[arg(long, default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Longest a request may run inside the engine, in milliseconds.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Memory cap of one engine instance, in MiB.
    #[arg(long, default_value_t = 256)]
    memory_mib: usize,
    /// Requests handled at once; more wait.
    #[arg(long, default_value_t = 32)]
    concurrency: u32,
    /// Engine instances kept warm between requests of the same tenant (a
    /// request then skips instantiation); 0 gives every request a fresh
    /// instance.
    #[arg(long, default_value_t = 8)]
    warm_instances: usize,
    /// Size in MiB past which the write-ahead log is started over, which
    /// holds writers back once for about two fsyncs; 0 never does (the log
    /// then grows for as long as writes never pause).
    #[arg(long, default_value_t = 1024)]
    wal_limit_mib: u64,
    /// Threads that serve HTTP and run the engine (default: one per core,
    /// and one more so that a tenant at its --tenant-concurrency leaves a
    /// thread to the others).
    #[arg(long, env = "SCIM_WORKERS")]
    workers: Option<usize>,
    /// SCIM requests of one tenant that run at once unless `tenant limits`
    /// says otherwise (default: one per core).
    #[arg(long, env = "SCIM_TENANT_CONCURRENCY")]
    tenant_concurrency: Option<u32>,
    /// SCIM requests of one tenant started per second unless `tenant
    /// limits` says otherwise; 0: no limit.
    #[arg(long, env = "SCIM_TENANT_RATE", default_value_t = 0.0)]
    tenant_rate: f64,
    /// Where compiled engine code is cached between starts.
    #[arg(long, env = "SCIM_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the engine on every start instead of caching it.
    #[arg(long)]
    no_cache: bool,
    /// PEM certificate chain to serve HTTPS with (with --tls-key); read
    /// again on SIGHUP.
    #[arg(long, env = "SCIM_TLS_CERT", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert; read again on SIGHUP.
    #[arg(long, env = "SCIM_TLS_KEY", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Seconds a client has to send a request's headers, counted from the
    /// connection's start or its previous response: also how long an idle
    /// connection stays open.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    header_timeout_secs: u64,
    /// Seconds a request's body has to arrive whole once its headers have,
    /// plus one per 64 KiB its Content-Length declares; a slower one is
    /// answered 408.
    #[arg(long, default_value_t = 60, value_parser = clap::value_parser!(u64).range(1..=3600))]
    body_timeout_secs: u64,
    /// Connections open at once; more wait to be accepted (default: the
    /// open-file limit, less some for the database and the engine).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: Option<u64>,
    /// Seconds that requests in flight and the background batch in progress
    /// get to finish on SIGTERM before the server exits anyway.
    #[arg(long, default_value_t = 30)]
    shutdown_grace_secs: u64,
    /// Let alert webhooks reach loopback, private and link-local
    /// addresses (refused by default, so that an admin's webhook URL
    /// cannot probe the server's own network).
    #[arg(long, env = "SCIM_ALERTS_ALLOW_PRIVATE")]
    alerts_allow_private: bool,
    /// Serve the test API under /test/v1 (the tenant's learners, sync log
    /// and a wait for background work, behind its SCIM token): for the
    /// host test suite (tests/hosts); never in production.
    #[arg(long)]
    test_api: bool,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its SCIM and admin tokens (shown once).
    Add {
        name: String,
        /// Print JSON (`{"name", "scimToken", "adminToken"}`).
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Replace a tenant's SCIM token (or, with --admin, its admin token) and
    /// print the new one; the old one stops working at once.
    RotateToken {
        name: String,
        #[arg(long)]
        admin: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Delete a tenant and everything stored for it.
    Remove {
        name: String,
        /// Confirm the deletion.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Set a tenant's provisioning policy; prints it (`--json` for tools).
    Policy {
        name: String,
        /// `suspend` (keep learning records; the default) or `remove`
        /// (anonymise the learner).
        #[arg(long)]
        on_delete: Option<String>,
        /// What mapping does with a mapped grant removed by hand: `restore`
        /// (the default) or `report`.
        #[arg(long)]
        drift: Option<String>,
        /// Percent of learners a mapping change may take something from
        /// before it needs --confirm (default 5).
        #[arg(long)]
        confirm_threshold: Option<f64>,
        /// A role mapping plugins may not grant (repeat for several); a
        /// plugin output naming one is refused whole. Replaces the list.
        #[arg(long = "plugin-deny-role")]
        plugin_deny_role: Vec<String>,
        /// Clear the roles plugins may not grant.
        #[arg(long, conflicts_with = "plugin_deny_role")]
        plugin_deny_none: bool,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// Set a tenant's share of the server, so that its load cannot starve
    /// other tenants: SCIM requests at once and per second (beyond them it
    /// gets 429 with Retry-After). Prints it (`--json` for tools); a server
    /// applies it from the tenant's next request.
    Limits {
        name: String,
        /// Requests of the tenant that run at once (a few more wait their
        /// turn), or `default` (the server's `--tenant-concurrency`).
        #[arg(long, value_parser = parse_limit::<u32>)]
        max_concurrent: Option<Limit<u32>>,
        /// Requests of the tenant started per second (0: no limit), or
        /// `default` (the server's `--tenant-rate`).
        #[arg(long, value_parser = parse_limit::<f64>)]
        rate: Option<Limit<f64>>,
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        db: DbArg,
    },
    /// A tenant's alert webhooks: add one (--webhook URL --on KINDS), list
    /// them (the default), remove one, or show the delivery log.
    Alerts(cli::alerts::AlertsArgs),
    /// List tenants.
    List {
        #[command(flatten)]
        db: DbArg,
    },
}

/// A limit given on the command line: a value, or `default` (`None`).
#[derive(Debug, Clone, Copy)]
struct Limit<T>(Option<T>);

fn parse_limit<T: std::str::FromStr>(s: &str) -> std::result::Result<Limit<T>, String> {
    if s.eq_ignore_ascii_case("default") {
        return Ok(Limit(None));
    }
    s.parse()
        .map(|v| Limit(Some(v)))
        .map_err(|_| format!("'{s}' is neither a number nor 'default'"))
}

fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,wasmtime=warn,cranelift=warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match Cli::parse().command {
        Command::Serve(args) => run_server(*args),
        Command::Tenant { command } => tenant(command),
        Command::Events(args) => list_events(args),
        Command::Mapping { command } => cli::mapping::run(command),
        Command::Mapper { command } => cli::mapper::run(command),
        Command::Catalogue { command } => cli::catalogue::run(command),
        Command::Sync {
            command: SyncCommand::Status { tenant, json, db },
        } => sync_status(tenant, json, db),
        Command::Db { command } => database(command),
    }
}

fn database(command: DbCommand) -> Result<()> {
    let describe = |s: &db::SchemaStatus| match s.version {
        0 => format!("no schema yet (this build creates version {})", s.latest),
        v if v == s.latest => format!("schema version {v}, up to date"),
        v if v < s.latest => format!("schema version {v}; this build migrates it to {}", s.latest),
        v => format!(
            "schema version {v}, newer than this build knows ({})",
            s.latest
        ),
    };
    match command {
        DbCommand::Migrate { json, db } => {
            // Read before the pool opens: opening it migrates. A database
            // that cannot be read yet (a new file) has no schema; one that
            // cannot be reached fails in `open_db` with its reason.
            let before = db::status(&db.db).ok();
            let pool = open_db(&db)?;
            let (_, after) = db::migrate_explicitly(&*pool.get()?)?;
            let before = before.unwrap_or(db::SchemaStatus {
                version: 0,
                ..after.clone()
            });
            if json {
                println!("{}", serde_json::json!({"before": before, "after": after}));
            } else {
                println!(
                    "{}: {} (was: {})",
                    db.db,
                    describe(&after),
                    describe(&before)
                );
            }
        }
        DbCommand::Status { json, db } => {
            let status = db::status(&db.db)?;
            if json {
                println!("{}", serde_json::to_string(&status)?);
            } else {
                println!("{} ({}): {}", db.db, status.backend, describe(&status));
            }
            if status.version > status.latest {
                std::process::exit(2);
            }
        }
        DbCommand::Backup {
            file,
            force,
            json,
            db,
        } => {
            let written = cli::backup::run(&db.db, &file, force)?;
            if json {
                println!("{}", serde_json::to_string(&written)?);
            } else {
                println!(
                    "Backed up {} to {}: {} pages of {} bytes ({} bytes) in {} ms",
                    db.db,
                    written.file.display(),
                    written.pages,
                    written.page_size,
                    written.bytes,
                    written.millis
                );
            }
        }
    }
    Ok(())
}

fn open_db(db: &DbArg) -> Result<db::Pool> {
    db::open(&db.db, 1, db::Checkpoints::InCommit)
}

fn list_events(args: EventsArgs) -> Result<()> {
    let pool = open_db(&args.db)?;
    let conn = pool.get()?;
    let tenant = db::tenant_id(&conn, &args.tenant)?;
    let time = |name: &str, t: &Option<String>| {
        t.as_deref()
            .map(|t| events::normalize_time(name, t).map_err(anyhow::Error::msg))
            .transpose()
    };
    let list = events::list(
        &conn,
        tenant,
        &events::Query {
            since: time("since", &args.since)?,
            until: time("until", &args.until)?,
            failed: args.failed,
            user: args.user.clone(),
            action: args.action.clone(),
            request: args.request.clone(),
            change: args.change.clone(),
            before: None,
            limit: args.limit.clamp(1, 10_000),
        },
    )?;
    if args.json {
        println!("{}", serde_json::json!({ "events": list }));
        return Ok(());
    }
    for e in &list {
        let s = |k: &str| e[k].as_str().unwrap_or("").to_string();
        let changes: Vec<String> = e["changes"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|c| {
                format!(
                    "{}: {} -> {}",
                    c["name"].as_str().unwrap_or("?"),
                    c["old"],
                    c["new"]
                )
            })
            .collect();
        println!(
            "{}  {:<8} {:<10} {:<7} {} {}{}{}",
            s("time"),
            s("status"),
            s("action"),
            s("resourceType"),
            s("resourceId"),
            s("resourceName"),
            e["reason"]
                .as_str()
                .map(|r| format!("  [{r}]"))
                .unwrap_or_default(),
            if changes.is_empty() {
                String::new()
            } else {
                format!("\n      {}", changes.join("\n      "))
            }
        );
    }
    if list.is_empty() {
        eprintln!("No events match.");
    }
    Ok(())
}

fn sync_status(tenant: Option<String>, json: bool, db: DbArg) -> Result<()> {
    let pool = open_db(&db)?;
    let conn = pool.get()?;
    let tenant = tenant.map(|t| db::tenant_id(&conn, &t)).transpose()?;
    let status = outbox::status(&conn, tenant, &Default::default())?;
    if json {
        println!("{status}");
        return Ok(());
    }
    println!(
        "{} background task(s) pending; oldest {}",
        status["pending"],
        status["oldestAgeSeconds"]
            .as_f64()
            .map(|s| format!("{s:.1} s old"))
            .unwrap_or_else(|| "-".into())
    );
    for t in status["tasks"].as_array().into_iter().flatten() {
        println!(
            "  #{} tenant {} change {} {} cursor {} attempts {}{}",
            t["id"],
            t["tenant"].as_str().unwrap_or(""),
            t["changeId"].as_str().unwrap_or(""),
            t["work"],
            t["cursor"],
            t["attempts"],
            t["lastError"]
                .as_str()
                .map(|e| format!(" last error: {e}"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

fn tenant(cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Add { name, json, db } => {
            let pool = open_db(&db)?;
            let t = db::add_tenant(&*pool.get()?, &name)?;
            if json {
                println!("{}", serde_json::to_string(&t)?);
            } else {
                println!(
                    "Created tenant '{}'. Its tokens are shown only once:",
                    t.name
                );
                println!("  SCIM token (for the identity provider): {}", t.scim_token);
                println!(
                    "  Admin token (for /admin/v1):            {}",
                    t.admin_token
                );
            }
        }
        TenantCommand::RotateToken { name, admin, db } => {
            let pool = open_db(&db)?;
            let kind = if admin {
                TokenKind::Admin
            } else {
                TokenKind::Scim
            };
            println!("{}", db::rotate_token(&*pool.get()?, &name, kind)?);
        }
        TenantCommand::Remove { name, yes, db } => {
            if !yes {
                anyhow::bail!(
                    "this deletes tenant '{name}' with all its users, groups, learners and events; \
                     run again with --yes to confirm"
                );
            }
            let pool = open_db(&db)?;
            db::remove_tenant(&mut *pool.get()?, &name)?;
            eprintln!("Removed tenant '{name}'.");
        }
        TenantCommand::Policy {
            name,
            on_delete,
            drift,
            confirm_threshold,
            plugin_deny_role,
            plugin_deny_none,
            json,
            db,
        } => {
            let pool = open_db(&db)?;
            let denied =
                (plugin_deny_none || !plugin_deny_role.is_empty()).then_some(plugin_deny_role);
            let p = db::set_policy(
                &*pool.get()?,
                &name,
                on_delete.as_deref(),
                drift.as_deref(),
                confirm_threshold,
                denied.as_deref(),
            )?;
            if json {
                println!("{}", serde_json::to_string(&p)?);
            } else {
                println!(
                    "on-delete: {}\ndrift: {}\nconfirm-threshold: {}%\nplugin-denied-roles: {}",
                    p.on_delete,
                    p.drift,
                    p.confirm_threshold,
                    if p.plugin_denied_roles.is_empty() {
                        "(none)".to_string()
                    } else {
                        p.plugin_denied_roles.join(", ")
                    }
                );
            }
        }
        TenantCommand::Limits {
            name,
            max_concurrent,
            rate,
            json,
            db,
        } => {
            let pool = open_db(&db)?;
            let share = db::set_share(
                &*pool.get()?,
                &name,
                max_concurrent.map(|l| l.0),
                rate.map(|l| l.0),
            )?;
            if json {
                println!("{}", serde_json::to_string(&share)?);
            } else {
                let show = |v: Option<String>| v.unwrap_or_else(|| "the server's default".into());
                println!(
                    "max-concurrent: {}\nrate: {}",
                    show(share.max_concurrent.map(|m| m.to_string())),
                    show(share.rate_per_sec.map(|r| if r > 0.0 {
                        format!("{r} requests/s")
                    } else {
                        "no limit".into()
                    }))
                );
            }
        }
        TenantCommand::Alerts(args) => cli::alerts::run(args)?,
        TenantCommand::List { db } => {
            let pool = open_db(&db)?;
            for name in db::tenant_names(&*pool.get()?)? {
                println!("{name}");
            }
        }
    }
    Ok(())
}

fn default_cache_dir() -> Option<PathBuf> {
    std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .map(|d| d.join("scim-host"))
}

fn run_server(args: ServeArgs) -> Result<()> {
    // A certificate that does not load stops the start before anything else.
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(Arc::new(Tls::load(cert, key)?)),
        _ => None,
    };
    let open_files = raise_open_file_limit();
    // One server per SQLite file; any number of replicas share PostgreSQL.
    let (_serving, checkpointer) = match &args.db.db {
        db::Location::File(path) => (
            Some(db::lock_for_serving(path)?),
            Some(db::Checkpointer::open(path)?),
        ),
        db::Location::Postgres(_) => (None, None),
    };
    let pool = db::open(
        &args.db.db,
        args.concurrency + 4,
        db::Checkpoints::Background,
    )?;
    let dialect = pool.get()?.dialect();
    {
        let conn = pool.get()?;
        if args.token.is_none() && db::tenant_names(&conn)?.is_empty() {
            let t = db::add_tenant(&conn, "default")?;
            println!(
                "Created tenant 'default'. Its tokens are shown only once:\n\n    SCIM token (for the identity provider): {}\n    Admin token (for /admin/v1):            {}\n",
                t.scim_token, t.admin_token
            );
        }
        if let Some(token) = &args.token {
            db::set_tenant_token(&conn, "default", TokenKind::Scim, token)?;
        }
        if let Some(token) = &args.admin_token {
            db::set_tenant_token(&conn, "default", TokenKind::Admin, token)?;
        } else if !db::has_admin_token(&conn, "default")? {
            tracing::warn!(
                "tenant 'default' has no admin token, so /admin/v1 refuses every request; \
                 start with --admin-token or run `scim-host tenant rotate-token default --admin`"
            );
        }
    }
    let wasm = match &args.engine {
        Some(path) => {
            std::fs::read(path).with_context(|| format!("reading engine {}", path.display()))?
        }
        None => ENGINE_WASM.to_vec(),
    };
    let limits = Limits {
        timeout: Duration::from_millis(args.request_timeout_ms),
        memory_bytes: args.memory_mib * 1024 * 1024,
        instances: args.concurrency + 2 + args.warm_instances as u32,
        warm: args.warm_instances,
    };
    let cache_dir = if args.no_cache {
        None
    } else {
        args.cache_dir.clone().or_else(default_cache_dir)
    };
    let started = std::time::Instant::now();
    let runtime = Runtime::new(&wasm, limits, cache_dir.as_deref())?;
    tracing::info!(
        ms = started.elapsed().as_millis() as u64,
        bytes = wasm.len(),
        "engine ready"
    );
    let started = std::time::Instant::now();
    let plugins = scim_host::mapper::compile_installed(&runtime, &pool)?;
    if plugins > 0 {
        tracing::info!(
            ms = started.elapsed().as_millis() as u64,
            plugins,
            "installed mapping plugins compiled"
        );
    }

    scim_host::alerts::configure(
        scim_host::alerts::Settings::from_env(args.alerts_allow_private)
            .with_public_url(args.public_url.as_deref()),
    );
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let app = Arc::new(App {
        runtime,
        pool,
        dialect,
        max_body_bytes: args.max_body_bytes,
        public_url: args.public_url.clone(),
        permits: Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize)),
        writers: tokio::sync::Mutex::new(()),
        request_timeout_ms: args.request_timeout_ms as u128,
        metrics: scim_host::metrics::Metrics::new(),
        outbox: tokio::sync::Notify::new(),
        progress: Default::default(),
        background: Background {
            batch: args.drain_batch.max(1),
            pause: Duration::from_millis(args.drain_delay_ms),
            retention_days: args.event_retention_days.max(1),
        },
        metrics_token: args.metrics_token.as_deref().map(db::hash_token),
        gates: scim_host::gate::Gates::new(
            args.tenant_concurrency.unwrap_or(cores as u32),
            Some(args.tenant_rate),
        ),
        rendered: Default::default(),
        // One core stays for SCIM requests.
        mapping_work: scim_host::gate::MappingWork::new(cores.saturating_sub(1).max(1)),
    });
    // Requests run on the workers themselves (see `server`): one per core
    // keeps the cores busy, and one more is free for other tenants while a
    // tenant runs as many requests as it may (`gate`).
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.unwrap_or(cores + 1).max(1))
        .enable_all()
        .build()?;
    let limits = ConnectionLimits {
        header_timeout: Duration::from_secs(args.header_timeout_secs),
        body_timeout: Duration::from_secs(args.body_timeout_secs),
        // The rest of the descriptors: the database's files, the engine's
        // cache, plugins, the listener.
        max_connections: args
            .max_connections
            .map_or(open_files.saturating_sub(512).max(64), |m| m as usize),
        shutdown_grace: Duration::from_secs(args.shutdown_grace_secs),
    };
    let sqlite_file = match &args.db.db {
        db::Location::File(path) => Some(path.clone()),
        db::Location::Postgres(_) => None,
    };
    let scheme = if tls.is_some() { "https" } else { "http" };
    let finished = rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Installed before the line below, which tools wait for: a SIGTERM
        // after it is a graceful stop.
        let signal = shutdown_signal().context("installing the SIGTERM handler")?;
        let stopping = Arc::new(std::sync::OnceLock::new());
        let shutdown = {
            let stopping = stopping.clone();
            async move {
                signal.await;
                let _ = stopping.set(std::time::Instant::now());
            }
        };
        if let Some(tls) = &tls {
            tokio::spawn(tls.clone().reload_on_sighup());
        }
        tracing::info!(
            %addr,
            max_connections = limits.max_connections,
            open_files,
            "serving SCIM at {scheme}://{addr}{BASE_PATH}"
        );
        // A line tools can wait for (the end-to-end tests do).
        println!("listening on {scheme}://{addr}{BASE_PATH}");
        tokio::spawn(scim_host::worker::run_worker(app.clone()));
        tokio::spawn(scim_host::alert_worker::run_worker(
            app.clone(),
            scim_host::alerts::settings().clone(),
        ));
        if let Some(checkpointer) = checkpointer {
            tokio::spawn(scim_host::checkpoints::run(
                app.clone(),
                checkpointer,
                args.wal_limit_mib.saturating_mul(1 << 20),
            ));
        }
        if args.test_api {
            tracing::warn!(
                "the test API is on at /test/v1: for the host test suite, never in production"
            );
        }
        let options = Options {
            test_api: args.test_api,
            tls,
            limits,
        };
        let drained = serve(app.clone(), listener, options, shutdown).await;
        let since = stopping
            .get()
            .copied()
            .unwrap_or_else(std::time::Instant::now);
        let left = limits.shutdown_grace.saturating_sub(since.elapsed());
        finish_background(&app, sqlite_file.as_deref(), left, drained).await;
        anyhow::Ok(drained)
    });
    // Requests still running past the grace period are abandoned.
    rt.shutdown_timeout(Duration::from_secs(1));
    if finished? {
        tracing::info!("stopped");
    }
    Ok(())
}

/// After the last request: waits (at most `left`) for the background batch
/// in progress, keeps the write turn so that no other starts, and moves the
/// write-ahead log into the database file, leaving it empty.
async fn finish_background(
    app: &App,
    sqlite_file: Option<&std::path::Path>,
    left: Duration,
    drained: bool,
) {
    if !drained {
        tracing::warn!("requests still in flight after the shutdown grace period are abandoned");
    }
    match tokio::time::timeout(left.max(Duration::from_secs(1)), app.writers.lock()).await {
        // Held until the process exits.
        Ok(turn) => std::mem::forget(turn),
        Err(_) => {
            tracing::warn!(
                "the background batch in progress did not finish in time; it rolls back"
            );
            return;
        }
    }
    let Some(path) = sqlite_file else { return };
    let checkpoint = tokio::task::spawn_blocking({
        let path = path.to_path_buf();
        move || -> Result<(i64, i64, i64)> {
            let conn = rusqlite::Connection::open(&path)?;
            conn.busy_timeout(Duration::from_secs(5))?;
            Ok(conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })?)
        }
    })
    .await;
    match checkpoint {
        Ok(Ok((0, _, _))) => tracing::info!("write-ahead log checkpointed and emptied"),
        Ok(Ok((_, frames, copied))) => {
            tracing::warn!(
                frames,
                copied,
                "final checkpoint incomplete: a reader held the log"
            )
        }
        Ok(Err(e)) => tracing::error!(error = %e, "final checkpoint failed"),
        Err(e) => tracing::error!(error = %e, "final checkpoint panicked"),
    }
}

/// Raises the soft limit on open files to the hard one (each connection
/// is a descriptor) and returns it.
#[cfg(unix)]
fn raise_open_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 1024;
    }
    // An unlimited hard limit is still bounded by the kernel (nr_open).
    let wanted = limit.rlim_max.min(1 << 20);
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit {
            rlim_cur: wanted,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: setrlimit reads the struct it is given.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit.rlim_cur = wanted;
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

#[cfg(not(unix))]
fn raise_open_file_limit() -> usize {
    1024
}
