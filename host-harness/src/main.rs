//! The `scim-host` command line.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, Result};
use clap::{Args, Parser, Subcommand};
use scim_host::runtime::{Limits, Runtime};
use scim_host::server::{App, BASE_PATH, serve};
use scim_host::{ENGINE_WASM, db};

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
    Serve(ServeArgs),
    /// Manage tenants and their bearer tokens.
    Tenant {
        #[command(subcommand)]
        command: TenantCommand,
    },
}

#[derive(Args)]
struct DbArg {
    /// SQLite database file (created on first start).
    #[arg(long, env = "SCIM_DB", default_value = "./scim.db")]
    db: PathBuf,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "SCIM_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    #[command(flatten)]
    db: DbArg,
    /// Bearer token of the `default` tenant. Without it, a token is created on
    /// first start and printed once.
    #[arg(long, env = "SCIM_TOKEN", hide_env_values = true)]
    token: Option<String>,
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
    /// Threads that serve HTTP and run the engine (default: one per core;
    /// raise it when long queries should not delay short ones).
    #[arg(long, env = "SCIM_WORKERS")]
    workers: Option<usize>,
    /// Where compiled engine code is cached between starts.
    #[arg(long, env = "SCIM_CACHE_DIR")]
    cache_dir: Option<PathBuf>,
    /// Compile the engine on every start instead of caching it.
    #[arg(long)]
    no_cache: bool,
}

#[derive(Subcommand)]
enum TenantCommand {
    /// Create a tenant and print its bearer token (shown once).
    Add {
        name: String,
        #[command(flatten)]
        db: DbArg,
    },
    /// List tenants.
    List {
        #[command(flatten)]
        db: DbArg,
    },
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
        Command::Serve(args) => run_server(args),
        Command::Tenant { command } => tenant(command),
    }
}

fn tenant(cmd: TenantCommand) -> Result<()> {
    match cmd {
        TenantCommand::Add { name, db } => {
            let pool = db::open(&db.db, 1, db::Checkpoints::InCommit)?;
            let token = db::add_tenant(&*pool.get()?, &name)?;
            println!("{token}");
        }
        TenantCommand::List { db } => {
            let pool = db::open(&db.db, 1, db::Checkpoints::InCommit)?;
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
    let pool = db::open(
        &args.db.db,
        args.concurrency + 4,
        db::Checkpoints::Background,
    )?;
    db::spawn_checkpointer(&args.db.db)?;
    {
        let conn = pool.get()?;
        match &args.token {
            Some(token) => db::set_tenant_token(&conn, "default", token)?,
            None if db::tenant_names(&conn)?.is_empty() => {
                let token = db::add_tenant(&conn, "default")?;
                println!(
                    "Created tenant 'default'. Its bearer token (shown only once):\n\n    {token}\n"
                );
            }
            None => {}
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
        instances: args.concurrency + 2,
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

    let app = Arc::new(App {
        runtime,
        pool,
        max_body_bytes: args.max_body_bytes,
        public_url: args.public_url.clone(),
        permits: Arc::new(tokio::sync::Semaphore::new(args.concurrency as usize)),
        writers: tokio::sync::Mutex::new(()),
        request_timeout_ms: args.request_timeout_ms as u128,
    });
    // Requests run on the workers themselves (see `server`): one per core
    // measured fastest; more let long queries overlap short ones.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.workers.unwrap_or(cores).max(1))
        .enable_all()
        .build()?;
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("listening on {}", args.listen))?;
        let addr = listener.local_addr()?;
        tracing::info!(%addr, "serving SCIM at http://{addr}{BASE_PATH}");
        // A line tools can wait for (the end-to-end tests do).
        println!("listening on http://{addr}{BASE_PATH}");
        serve(app, listener).await
    })
}
