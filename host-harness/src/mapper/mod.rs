//! Admin operations on mapping plugins, shared by the CLI and the admin
//! API: check and preview a candidate, install it (under the same
//! confirmation rule as rules), roll back, remove, show, and replay the
//! inputs of recent failed calls against a new build.
//!
//! An install stores the component by content hash, records the version,
//! logs a `mapper-install` event and queues the re-mapping of every user in
//! one transaction: the next request already runs the new plugin (requests
//! in flight finish with the one they started with), and no restart is
//! needed.

use std::sync::Arc;

use serde::Serialize;
use serde_json::Value;

use crate::bindings::lms::scim::outbox::{Task, Work};
use crate::db::plugins as store;
use crate::db::{Pool, Tenant};
use crate::events::{self, EventRow, Stamp};
use crate::imports::plugin::{Candidate, DEFAULT_MAX_FAILURES};
use crate::mapping::{self, Change, Choice, PreviewReport, Refusal};
use crate::runtime::Runtime;
use crate::sandbox::plugin::{
    self as sp, MAX_FUEL, MAX_MEMORY_BYTES, MAX_SETTINGS_BYTES, PluginLimits,
};

/// A candidate plugin as an admin submits it.
#[derive(Debug, Clone, Default)]
pub struct Upload<'a> {
    pub component: &'a [u8],
    /// JSON object; `{}` when absent.
    pub settings: Option<&'a str>,
    /// Fuel per call (default 10,000,000).
    pub fuel: Option<u64>,
    /// Memory cap per call, MiB (default 16).
    pub memory_mib: Option<u64>,
    /// Failures in a row that disable it (default 5).
    pub max_failures: Option<u32>,
}

fn bad(detail: impl Into<String>) -> Refusal {
    Refusal::Engine {
        status: 400,
        detail: detail.into(),
    }
}

/// Checks and compiles an upload into a candidate.
pub fn candidate(runtime: &Runtime, upload: &Upload) -> Result<Candidate, Refusal> {
    let settings = upload.settings.unwrap_or("{}").trim();
    if settings.len() > MAX_SETTINGS_BYTES {
        return Err(bad(format!(
            "The settings are {} bytes; at most {MAX_SETTINGS_BYTES} are accepted",
            settings.len()
        )));
    }
    match serde_json::from_str::<Value>(settings) {
        Ok(Value::Object(_)) => {}
        Ok(_) => return Err(bad("The settings must be a JSON object")),
        Err(e) => return Err(bad(format!("The settings are not JSON: {e}"))),
    }
    let mut limits = PluginLimits::default();
    if let Some(f) = upload.fuel {
        if f == 0 || f > MAX_FUEL {
            return Err(bad(format!("--fuel must be from 1 to {MAX_FUEL}")));
        }
        limits.fuel = f;
    }
    if let Some(m) = upload.memory_mib {
        let max = (MAX_MEMORY_BYTES >> 20) as u64;
        if m == 0 || m > max {
            return Err(bad(format!("--memory-mib must be from 1 to {max}")));
        }
        limits.memory_bytes = (m as usize) << 20;
    }
    if upload.max_failures == Some(0) {
        return Err(bad("--max-failures must be at least 1"));
    }
    let loaded = runtime
        .plugins()
        .load(upload.component)
        .map_err(|r| Refusal::Engine {
            status: 422,
            detail: format!("The plugin was refused: {r}"),
        })?;
    Ok(Candidate {
        loaded,
        settings: settings.to_string(),
        limits,
    })
}

/// Runs a candidate over every user of the tenant, applying nothing.
pub fn preview(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    candidate: &Candidate,
    keep: usize,
    progress: mapping::Progress,
) -> Result<PreviewReport, Refusal> {
    mapping::preview(
        runtime,
        pool,
        tenant,
        &Choice::Plugin(candidate.clone()),
        keep,
        progress,
    )
}

/// What an install, rollback or removal did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub installed: store::Version,
    pub preview: PreviewReport,
    /// The change id of the sync-log entry and of the re-mapping task.
    #[serde(rename = "changeId")]
    pub change_id: String,
}

/// What a new version puts in force.
enum Next<'a> {
    Plugin {
        candidate: &'a Candidate,
        component: &'a [u8],
        max_failures: Option<u32>,
    },
    /// Back to the rules.
    Rules,
}

/// Installs a plugin for the tenant: checks it, previews it over every
/// user, refuses without `change.confirm` when more learners than the
/// tenant's threshold would lose something, then puts it in force. Call
/// from a blocking thread.
pub fn install(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    upload: &Upload,
    change: Change,
) -> Result<Outcome, Refusal> {
    let candidate = candidate(runtime, upload)?;
    let next = Next::Plugin {
        candidate: &candidate,
        component: upload.component,
        max_failures: upload.max_failures,
    };
    put_in_force(
        runtime,
        pool,
        tenant,
        next,
        ("mapper-install", "installed"),
        change,
    )
}

/// Returns the tenant to its rules.
pub fn remove(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    change: Change,
) -> Result<Outcome, Refusal> {
    if store::current(&*pool.get()?, tenant.id)?.is_none_or(|v| v.sha256.is_none()) {
        return Err(Refusal::Engine {
            status: 409,
            detail: "No plugin is installed: the rules already apply".into(),
        });
    }
    put_in_force(
        runtime,
        pool,
        tenant,
        Next::Rules,
        ("mapper-remove", "removed: the rules apply"),
        change,
    )
}

/// Puts the version before the one in force back in force (a plugin with
/// its settings and limits, or the rules).
pub fn rollback(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    change: Change,
) -> Result<Outcome, Refusal> {
    let conn = pool.get()?;
    if store::current(&conn, tenant.id)?.is_none() {
        return Err(Refusal::Engine {
            status: 409,
            detail: "No plugin was ever installed: there is nothing to roll back".into(),
        });
    }
    let previous = store::previous(&conn, tenant.id)?;
    let Some((prev, sha)) = previous.and_then(|p| p.sha256.clone().map(|s| (p, s))) else {
        drop(conn);
        return put_in_force(
            runtime,
            pool,
            tenant,
            Next::Rules,
            ("mapper-rollback", "rolled back: the rules apply"),
            change,
        );
    };
    let component = store::component(&conn, &sha)?.ok_or_else(|| Refusal::Engine {
        status: 409,
        detail: format!("The component of version {} is missing", prev.version),
    })?;
    drop(conn);
    let mb = |b: i64| (b as u64) >> 20;
    let upload = Upload {
        component: &component,
        settings: prev.settings.as_deref(),
        fuel: prev.fuel.map(|f| f as u64),
        memory_mib: prev.memory_bytes.map(mb),
        max_failures: prev.max_failures.map(|m| m as u32),
    };
    let candidate = candidate(runtime, &upload)?;
    put_in_force(
        runtime,
        pool,
        tenant,
        Next::Plugin {
            candidate: &candidate,
            component: &component,
            max_failures: upload.max_failures,
        },
        ("mapper-rollback", "rolled back"),
        change,
    )
}

fn put_in_force(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    next: Next,
    (action, what): (&str, &str),
    change: Change,
) -> Result<Outcome, Refusal> {
    let Change {
        confirm,
        by,
        keep,
        progress,
        writers,
        previewed,
        claim,
    } = change;
    let choice = match &next {
        Next::Plugin { candidate, .. } => Choice::Plugin((*candidate).clone()),
        Next::Rules => Choice::Rules,
    };
    let (preview, seen) =
        mapping::rests_on(previewed, runtime, pool, tenant, &choice, keep, progress)?;
    let threshold = crate::db::policy(&*pool.get()?, tenant.id)?.confirm_threshold;
    if preview.losing_percent > threshold && !confirm {
        return Err(Refusal::NeedsConfirmation {
            preview: Box::new(preview),
            threshold,
        });
    }
    let change_id = crate::events::new_id();
    let _turn = writers.map(|w| w.blocking_lock());
    let conn = pool.get()?;
    let tx = conn.transaction(crate::db::Begin::Write(Some(tenant.id)))?;
    mapping::hold(&tx, tenant.id, seen.as_ref(), claim)?;
    let before = store::current(&tx, tenant.id)?.and_then(|c| c.sha256);
    let version = match &next {
        Next::Plugin {
            candidate,
            component,
            max_failures,
        } => store::NewVersion {
            component: Some((candidate.loaded.sha256.as_str(), component)),
            settings: Some(&candidate.settings),
            limits: Some(&candidate.limits),
            max_failures: Some(max_failures.unwrap_or(DEFAULT_MAX_FAILURES)),
            by,
        },
        Next::Rules => store::NewVersion {
            component: None,
            settings: None,
            limits: None,
            max_failures: None,
            by,
        },
    };
    let number = store::insert(&tx, tenant.id, &version)?;
    crate::outbox::drop_everyone(&tx, tenant.id)?;
    crate::outbox::enqueue(
        &tx,
        tenant.id,
        &change_id,
        &Task {
            work: Work::Everyone,
            cursor: None,
        },
    )?;
    let installed = store::current(&tx, tenant.id)?
        .filter(|v| v.version == number)
        .ok_or_else(|| Refusal::Internal(anyhow::anyhow!("the new version was not recorded")))?;
    let stamp = Stamp {
        request_id: change_id.clone(),
        change_id: change_id.clone(),
        duration_us: 0,
    };
    let quoted = |h: Option<&String>| h.map(|h| Value::String(h.clone()).to_string());
    events::insert(
        &tx,
        tenant.id,
        &stamp,
        &[EventRow {
            action: action.into(),
            resource_type: "Mapper".into(),
            resource_id: number.to_string(),
            resource_name: installed.sha256.as_ref().map(|h| h[..12].to_string()),
            status: "success",
            reason: confirm.then(|| "confirmed".to_string()),
            detail: Some(format!(
                "Version {number} ({what}) by {by}. Preview over {} users: {} gain, {} lose ({:.1}%), {} fail. Every user is re-mapped in the background.",
                preview.users,
                preview.gaining,
                preview.losing,
                preview.losing_percent,
                preview.failed
            )),
            changes: vec![(
                "plugin".into(),
                quoted(before.as_ref()),
                quoted(installed.sha256.as_ref()),
            )],
        }],
    )?;
    tx.commit()?;
    match &next {
        // Compiled now, so that no SCIM write compiles it.
        Next::Plugin {
            candidate,
            component,
            ..
        } => runtime
            .plugins()
            .keep(tenant.id, &candidate.loaded, component),
        Next::Rules => runtime.plugins().release(tenant.id),
    }
    Ok(Outcome {
        installed,
        preview,
        change_id,
    })
}

/// Compiles every tenant's installed plugin (from the disk cache when it is
/// there), so that no SCIM write compiles one; run before serving.
pub fn compile_installed(runtime: &Runtime, pool: &Pool) -> anyhow::Result<usize> {
    let conn = pool.get()?;
    let mut compiled = 0;
    for (tenant, sha) in store::installed(&conn)? {
        let Some(bytes) = store::component(&conn, &sha)? else {
            tracing::warn!(tenant, sha256 = %sha, "an installed plugin's component is missing");
            continue;
        };
        match runtime.plugins().load(&bytes) {
            Ok(loaded) => {
                runtime.plugins().keep(tenant, &loaded, &bytes);
                compiled += 1;
            }
            Err(e) => {
                tracing::error!(tenant, sha256 = %sha, error = %e, "an installed plugin cannot be compiled")
            }
        }
    }
    Ok(compiled)
}

/// What `mapper show` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Shown {
    /// Whether a plugin maps the tenant's users now.
    pub active: bool,
    /// The version in force, if any was ever installed.
    pub current: Option<store::Version>,
    /// Earlier versions, newest first.
    pub history: Vec<store::Version>,
}

/// The tenant's plugin and its history.
pub fn show(pool: &Pool, tenant: &Tenant) -> Result<Shown, Refusal> {
    let conn = pool.get()?;
    let mut history = store::history(&conn, tenant.id, 50)?;
    let current = (!history.is_empty()).then(|| history.remove(0));
    Ok(Shown {
        active: current.as_ref().is_some_and(store::Version::runs),
        current,
        history,
    })
}

/// One failed call re-run against a candidate.
#[derive(Debug, Clone, Serialize)]
pub struct Replayed {
    #[serde(rename = "userId")]
    pub user_id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    pub at: String,
    /// What the failing build ran into.
    pub before: String,
    /// `null` when the candidate succeeded.
    pub failure: Option<String>,
    /// What the candidate returned, as `kind:name (reason)`.
    pub grants: Vec<String>,
}

/// Re-runs the kept inputs of the tenant's recent failed calls against a
/// candidate (with its own settings when given, else each call's).
pub fn replay(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    candidate: &Candidate,
    own_settings: bool,
) -> Result<Vec<Replayed>, Refusal> {
    let calls = store::failures(&*pool.get()?, tenant.id)?;
    let plugins: Arc<sp::Plugins> = runtime.plugins();
    Ok(calls
        .into_iter()
        .map(|c| {
            let v: Value = serde_json::from_str(&c.input).unwrap_or(Value::Null);
            let text = |k: &str| v[k].as_str().map(str::to_string);
            let user = sp::User {
                id: text("id").unwrap_or_default(),
                user_name: text("userName").unwrap_or_default(),
                external_id: text("externalId"),
                active: v["active"].as_bool().unwrap_or(true),
                groups: v["groups"]
                    .as_array()
                    .map(|gs| {
                        gs.iter()
                            .map(|g| sp::Group {
                                id: g["id"].as_str().unwrap_or_default().to_string(),
                                display_name: g["displayName"].as_str().map(str::to_string),
                                external_id: g["externalId"].as_str().map(str::to_string),
                            })
                            .collect()
                    })
                    .unwrap_or_default(),
                scim_json: text("scim").unwrap_or_else(|| "{}".into()),
            };
            let settings = if own_settings {
                &candidate.settings
            } else {
                &c.settings
            };
            let out = plugins.run(&candidate.loaded, &candidate.limits, &user, settings);
            let (failure, grants) = match out {
                Ok(gs) => (
                    None,
                    gs.iter()
                        .map(|g| format!("{}:{} ({})", kind(g.kind), g.name, g.reason))
                        .collect(),
                ),
                Err(f) => (Some(format!("{}: {}", f.reason, f.detail)), Vec::new()),
            };
            Replayed {
                user_id: user.id,
                user_name: user.user_name,
                at: c.at,
                before: format!("{}: {}", c.reason, c.detail),
                failure,
                grants,
            }
        })
        .collect())
}

fn kind(k: sp::GrantKind) -> &'static str {
    match k {
        sp::GrantKind::Role => "role",
        sp::GrantKind::Team => "team",
        sp::GrantKind::LearningPath => "learningPath",
    }
}
