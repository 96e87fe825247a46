//! Mapping rules as the admin handles them: check, preview, install (with
//! a confirmation when many learners would lose something), remove, and
//! explain. The engine does the work through its `mapping-admin` exports;
//! this module keeps the versions, the transactions, the counts and the
//! sync-log entries. The CLI and the admin API both call it.

use std::collections::BTreeMap;

use anyhow::anyhow;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::bindings::exports::lms::scim::mapping_admin::{
    self as ma, MappingChoice, PreviewPage, Severity,
};
use crate::bindings::lms::scim::outbox::{Task, Work};
use crate::bindings::lms::scim::types::RequestContext;
use crate::db::rules as store;
use crate::db::run;
use crate::db::sql::OptionalExtension as _;
use crate::db::{Conn, Pool, Tenant};
use crate::events::{self, EventRow, Stamp};
use crate::imports::SqlStore;
use crate::imports::plugin::{Candidate, PluginMode};
use crate::lms::kind_name;
use crate::runtime::{RequestState, Runtime};

/// Users per engine call in a preview.
const PAGE: u32 = 500;

/// A problem in a rules document, where it is.
#[derive(Debug, Clone, Serialize)]
pub struct Diagnostic {
    pub severity: &'static str,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.line > 0 {
            write!(
                f,
                "{}:{}: {}: {}",
                self.line, self.column, self.severity, self.message
            )
        } else {
            write!(f, "{}: {}", self.severity, self.message)
        }
    }
}

/// What checking a document found.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    pub valid: bool,
    pub rules: u32,
    pub diagnostics: Vec<Diagnostic>,
    /// What to store for mapping (see the WIT `check-report`).
    #[serde(skip)]
    pub normalized: Option<String>,
}

/// How many learners gain, lose or skip one item.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ItemCount {
    pub kind: String,
    pub name: String,
    pub gained: u64,
    pub lost: u64,
    pub skipped: u64,
}

/// One learner's difference.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Difference {
    pub id: String,
    #[serde(rename = "userName")]
    pub user_name: String,
    pub gains: Vec<Value>,
    pub losses: Vec<Value>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
}

/// A preview over every user of a tenant. It reads back from a job's
/// record, so that confirming the job's change need not preview again.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PreviewReport {
    /// Users visited.
    pub users: u64,
    /// Users with any difference or failure.
    pub changed: u64,
    pub gaining: u64,
    pub losing: u64,
    pub failed: u64,
    /// `losing` as a percentage of `users`: what the confirmation
    /// threshold is compared with.
    #[serde(rename = "losingPercent")]
    pub losing_percent: f64,
    pub items: Vec<ItemCount>,
    /// Failures by reason.
    pub failures: BTreeMap<String, u64>,
    /// Per learner, up to the limit asked for.
    pub differences: Vec<Difference>,
    /// Whether `differences` stops short of `changed`.
    pub truncated: bool,
}

/// Why a mapping operation did not happen.
#[derive(Debug)]
pub enum Refusal {
    /// The document has errors; nothing was installed.
    Invalid(CheckReport),
    /// Too many learners would lose something; run again with the
    /// confirmation.
    NeedsConfirmation {
        preview: Box<PreviewReport>,
        threshold: f64,
    },
    /// The engine refused (400 bad candidate, 404 unknown user…).
    Engine { status: u16, detail: String },
    /// Storage or the sandbox failed.
    Internal(anyhow::Error),
    /// Its job was cancelled; nothing was applied.
    Cancelled,
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::Invalid(r) => {
                write!(f, "the rules document has errors:")?;
                for d in &r.diagnostics {
                    write!(f, "\n  {d}")?;
                }
                Ok(())
            }
            Refusal::NeedsConfirmation { preview, threshold } => write!(
                f,
                "this change takes roles, teams or learning paths away from {} of {} learners ({:.1}%, above the {threshold}% threshold); \
                 review it with `mapping preview`, then confirm (CLI --confirm, API ?confirm=true)",
                preview.losing, preview.users, preview.losing_percent
            ),
            Refusal::Engine { detail, .. } => f.write_str(detail),
            Refusal::Internal(e) => write!(f, "{e:#}"),
            Refusal::Cancelled => f.write_str("the job was cancelled; nothing was applied"),
        }
    }
}

impl From<anyhow::Error> for Refusal {
    fn from(e: anyhow::Error) -> Self {
        Refusal::Internal(e)
    }
}

impl From<crate::db::sql::Error> for Refusal {
    fn from(e: crate::db::sql::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

impl From<r2d2::Error> for Refusal {
    fn from(e: r2d2::Error) -> Self {
        Refusal::Internal(e.into())
    }
}

/// Which mapping to preview or explain.
#[derive(Debug, Clone)]
pub enum Choice {
    Installed,
    Default,
    Document(String),
    /// A candidate mapping plugin.
    Plugin(Candidate),
    /// What applies without the tenant's plugin: its rules, else the
    /// default mapping.
    Rules,
}

impl Choice {
    fn wit(&self) -> MappingChoice {
        match self {
            Choice::Installed => MappingChoice::Installed,
            Choice::Default => MappingChoice::Default,
            Choice::Document(d) => MappingChoice::Document(d.clone()),
            Choice::Plugin(_) => MappingChoice::Plugin,
            Choice::Rules => MappingChoice::Installed,
        }
    }

    /// Which plugin the engine's `plugin` import runs for this choice.
    fn plugin_mode(&self) -> PluginMode {
        match self {
            Choice::Plugin(c) => PluginMode::Candidate(c.clone()),
            Choice::Rules => PluginMode::Off,
            _ => PluginMode::Observe,
        }
    }
}

fn context(tenant: &Tenant) -> RequestContext {
    RequestContext {
        tenant: tenant.name.clone(),
        base_url: String::new(),
        request_id: crate::events::new_id(),
        subject: None,
        max_payload_bytes: 0,
        signing_key: tenant.signing_key.clone(),
    }
}

/// A snapshot of one tenant for engine reads; rolled back when dropped
/// through [`Snapshot::end`].
struct Snapshot<'a> {
    runtime: &'a Runtime,
    state: Option<RequestState>,
    context: RequestContext,
}

impl<'a> Snapshot<'a> {
    fn begin(
        runtime: &'a Runtime,
        conn: Conn,
        tenant: &Tenant,
        plugin: PluginMode,
    ) -> Result<Self, Refusal> {
        conn.begin(crate::db::Begin::Read)?;
        Ok(Snapshot {
            runtime,
            state: Some(RequestState::new(
                SqlStore::new(conn, tenant.id).with_plugins(runtime.plugins(), plugin),
                runtime.limits(),
            )),
            context: context(tenant),
        })
    }

    fn call<R>(
        &mut self,
        f: impl FnOnce(
            &mut wasmtime::Store<RequestState>,
            &crate::bindings::Engine,
            &RequestContext,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, Refusal> {
        let state = self.state.take().expect("snapshot in use");
        let ctx = &self.context;
        let (r, state) = self.runtime.call(state, |s, e| f(s, e, ctx));
        self.state = Some(state);
        r.map_err(|e| Refusal::Internal(anyhow!("the engine trapped: {e}")))
    }

    fn end(mut self) -> Option<Conn> {
        let conn = self.state.take()?.store.into_conn()?;
        let _ = run(&conn, "ROLLBACK");
        Some(conn)
    }
}

fn diagnostics(r: ma::CheckReport) -> CheckReport {
    let diagnostics: Vec<Diagnostic> = r
        .diagnostics
        .into_iter()
        .map(|d| Diagnostic {
            severity: match d.severity {
                Severity::Error => "error",
                Severity::Warning => "warning",
            },
            line: d.line,
            column: d.column,
            message: d.message,
        })
        .collect();
    CheckReport {
        valid: diagnostics.iter().all(|d| d.severity != "error"),
        rules: r.rules,
        diagnostics,
        normalized: r.normalized,
    }
}

/// Checks a document; with a tenant, also against its LMS catalogue.
pub fn check(
    runtime: &Runtime,
    tenant: Option<(&Pool, &Tenant)>,
    document: &str,
) -> Result<CheckReport, Refusal> {
    let report = match tenant {
        Some((pool, t)) => {
            let mut snap = Snapshot::begin(runtime, pool.get()?, t, PluginMode::Observe)?;
            let r = snap.call(|s, e, ctx| {
                e.lms_scim_mapping_admin()
                    .call_check(s, ctx, document, true)
            });
            snap.end();
            r?
        }
        None => {
            let state = RequestState::new(SqlStore::detached(), runtime.limits());
            let nobody = Tenant {
                id: 0,
                name: String::new(),
                signing_key: Vec::new(),
                share: Default::default(),
            };
            let ctx = context(&nobody);
            let (r, _) = runtime.call(state, |s, e| {
                e.lms_scim_mapping_admin()
                    .call_check(s, &ctx, document, false)
            });
            r.map_err(|e| Refusal::Internal(anyhow!("the engine trapped: {e}")))?
        }
    };
    Ok(diagnostics(report))
}

/// Hears the users a preview visited so far, after each page; an `Err`
/// ends the preview with it (a cancelled job), so nothing is applied.
pub type Progress<'a> = &'a mut dyn FnMut(u64) -> Result<(), Refusal>;

/// Runs first in a change's transaction; an `Err` rolls the change back.
pub type Claim<'a> = &'a dyn Fn(&crate::db::sql::Connection) -> Result<(), Refusal>;

/// A [`Progress`] that only listens.
pub fn heard(mut f: impl FnMut(u64)) -> impl FnMut(u64) -> Result<(), Refusal> {
    move |n| {
        f(n);
        Ok(())
    }
}

/// Users of the tenant, as counted on every write: what a preview visits.
pub fn users(conn: &crate::db::sql::Connection, tenant: i64) -> Result<u64, Refusal> {
    let n: Option<i64> = conn
        .query_row(
            "SELECT n FROM kind_counts WHERE tenant = ?1 AND kind = 'User'",
            [tenant],
            |r| r.get(0),
        )
        .optional()?;
    Ok(n.unwrap_or(0).max(0) as u64)
}

/// Runs `choice` over every user of the tenant, applying nothing; keeps at
/// most `keep` per-learner differences. `progress` hears the users visited
/// so far.
pub fn preview(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    choice: &Choice,
    keep: usize,
    progress: Progress,
) -> Result<PreviewReport, Refusal> {
    let mut snap = Snapshot::begin(runtime, pool.get()?, tenant, choice.plugin_mode())?;
    let wit = choice.wit();
    let mut report = PreviewReport::default();
    let mut items: BTreeMap<(&'static str, String), ItemCount> = BTreeMap::new();
    let mut after: Option<String> = None;
    let result = loop {
        let page: Result<PreviewPage, ma::MappingError> = match snap.call(|s, e, ctx| {
            e.lms_scim_mapping_admin()
                .call_preview(s, ctx, &wit, after.as_deref(), PAGE)
        }) {
            Ok(p) => p,
            Err(e) => break Err(e),
        };
        let page = match page {
            Ok(p) => p,
            Err(e) => {
                break Err(Refusal::Engine {
                    status: e.status,
                    detail: e.detail,
                });
            }
        };
        report.users += page.scanned as u64;
        for u in page.users {
            tally(&mut report, &mut items, u, keep);
        }
        if let Err(stop) = progress(report.users) {
            break Err(stop);
        }
        match page.next {
            Some(next) => after = Some(next),
            None => break Ok(()),
        }
    };
    snap.end();
    result?;
    report.items = items.into_values().collect();
    report.losing_percent = if report.users == 0 {
        0.0
    } else {
        report.losing as f64 * 100.0 / report.users as f64
    };
    report.truncated = (report.differences.len() as u64) < report.changed;
    Ok(report)
}

fn tally(
    report: &mut PreviewReport,
    items: &mut BTreeMap<(&'static str, String), ItemCount>,
    u: ma::UserPreview,
    keep: usize,
) {
    report.changed += 1;
    if !u.gains.is_empty() {
        report.gaining += 1;
    }
    if !u.losses.is_empty() {
        report.losing += 1;
    }
    if let Some(f) = &u.failure {
        report.failed += 1;
        let reason = f.split(':').next().unwrap_or(f).to_string();
        *report.failures.entry(reason).or_default() += 1;
    }
    let mut count = |list: &[ma::NamedItem], which: fn(&mut ItemCount) -> &mut u64| {
        for i in list {
            let kind = kind_name(i.kind);
            let entry = items
                .entry((kind, i.name.clone()))
                .or_insert_with(|| ItemCount {
                    kind: kind.to_string(),
                    name: i.name.clone(),
                    ..ItemCount::default()
                });
            *which(entry) += 1;
        }
    };
    count(&u.gains, |c| &mut c.gained);
    count(&u.losses, |c| &mut c.lost);
    count(&u.skipped, |c| &mut c.skipped);
    if report.differences.len() < keep {
        let json = |list: &[ma::NamedItem]| {
            list.iter()
                .map(|i| serde_json::json!({"kind": kind_name(i.kind), "name": i.name}))
                .collect()
        };
        report.differences.push(Difference {
            id: u.scim_id,
            user_name: u.user_name,
            gains: json(&u.gains),
            losses: json(&u.losses),
            skipped: json(&u.skipped),
            failure: u.failure,
        });
    }
}

/// What an install or removal did.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub installed: store::Installed,
    pub preview: PreviewReport,
    /// The change id of the sync-log entry and of the re-mapping task.
    #[serde(rename = "changeId")]
    pub change_id: String,
}

/// Who asks for a change of what maps a tenant's users (installing,
/// removing or rolling back rules or a plugin), and how. Every such change
/// takes these same arguments, from the CLI and the admin API alike, so
/// they travel together.
pub struct Change<'a> {
    /// Go ahead even when more learners than the threshold would lose
    /// something.
    pub confirm: bool,
    /// Who asks, for the version and the sync log (`admin-api`, `cli:…`).
    pub by: &'a str,
    /// Per-learner differences the preview keeps.
    pub keep: usize,
    /// Hears the users previewed so far; may end the preview.
    pub progress: Progress<'a>,
    /// The server's queue for the write lock, held just for the
    /// transaction that records the change; `None` outside the server.
    pub writers: Option<&'a tokio::sync::Mutex<()>>,
    /// A complete preview of this same change taken before (a job's): the
    /// change rests on it instead of previewing again, and is refused if
    /// what maps the tenant changed since.
    pub previewed: Option<Previewed>,
    /// Runs first in the change's transaction; an `Err` rolls the change
    /// back (its job was cancelled). Committing also commits what it wrote.
    pub claim: Option<Claim<'a>>,
}

/// What maps a tenant's users: the versions of its rules and of its plugin
/// in force (0: none ever installed), and whether the plugin runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct InForce {
    pub rules: i64,
    pub plugin: i64,
    #[serde(rename = "pluginRuns")]
    pub plugin_runs: bool,
}

impl InForce {
    pub fn read(conn: &crate::db::sql::Connection, tenant: i64) -> Result<InForce, Refusal> {
        let plugin = crate::db::plugins::current(conn, tenant)?;
        Ok(InForce {
            rules: store::current(conn, tenant)?.map_or(0, |r| r.version),
            plugin: plugin.as_ref().map_or(0, |p| p.version),
            plugin_runs: plugin
                .as_ref()
                .is_some_and(crate::db::plugins::Version::runs),
        })
    }
}

/// A preview taken before, and what mapped the tenant when it began.
#[derive(Debug, Clone)]
pub struct Previewed {
    pub report: PreviewReport,
    pub in_force: InForce,
    /// Where it came from, for the refusal (a job's id).
    pub source: String,
}

/// What a change rests on: the preview given, or a new one; and what was
/// in force under the one given, for [`hold`].
pub(crate) fn rests_on(
    previewed: Option<Previewed>,
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    choice: &Choice,
    keep: usize,
    progress: Progress,
) -> Result<(PreviewReport, Option<(InForce, String)>), Refusal> {
    match previewed {
        Some(p) => Ok((p.report, Some((p.in_force, p.source)))),
        None => Ok((
            preview(runtime, pool, tenant, choice, keep, progress)?,
            None,
        )),
    }
}

/// First in a change's transaction (under the tenant's write lock): refuses
/// when what maps the tenant changed since the preview the change rests on,
/// then runs the change's claim.
pub(crate) fn hold(
    tx: &crate::db::sql::Connection,
    tenant: i64,
    seen: Option<&(InForce, String)>,
    claim: Option<Claim>,
) -> Result<(), Refusal> {
    if let Some((then, source)) = seen {
        let now = InForce::read(tx, tenant)?;
        if now != *then {
            return Err(Refusal::Engine {
                status: 409,
                detail: format!(
                    "What maps this tenant changed since the preview of {source} (rules version {} then, {} now; plugin version {} then, {} now): preview again, then confirm that preview",
                    then.rules, now.rules, then.plugin, now.plugin
                ),
            });
        }
    }
    match claim {
        Some(claim) => claim(tx),
        None => Ok(()),
    }
}

/// Installs `document` (or, with `None`, returns to the default mapping)
/// for the tenant: checks it, previews it, refuses without `change.confirm`
/// when more learners than the tenant's threshold (or `threshold`) would
/// lose something, then records the version and queues the re-mapping of
/// every user in one transaction. Call from a blocking thread.
pub fn install(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    document: Option<&str>,
    threshold: Option<f64>,
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
    let (choice, compiled) = match document {
        Some(d) => {
            let report = check(runtime, Some((pool, tenant)), d)?;
            if !report.valid {
                return Err(Refusal::Invalid(report));
            }
            (Choice::Document(d.to_string()), report.normalized)
        }
        None => {
            let current = store::current(&*pool.get()?, tenant.id)?;
            if current.is_none_or(|c| c.document.is_none()) {
                return Err(Refusal::Engine {
                    status: 409,
                    detail: "No rules are installed: the default mapping already applies".into(),
                });
            }
            (Choice::Default, None)
        }
    };
    let (preview, seen) = rests_on(previewed, runtime, pool, tenant, &choice, keep, progress)?;
    let threshold = match threshold {
        Some(t) => t,
        None => crate::db::policy(&*pool.get()?, tenant.id)?.confirm_threshold,
    };
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
    hold(&tx, tenant.id, seen.as_ref(), claim)?;
    let before = store::current(&tx, tenant.id)?.and_then(|c| c.sha256);
    let installed = store::insert(&tx, tenant.id, document, compiled.as_deref(), by)?;
    // A re-mapping of every user still queued is superseded by this one.
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
    let (action, what) = match document {
        Some(_) => ("mapping-install", "rules installed"),
        None => (
            "mapping-remove",
            "rules removed: the default mapping applies",
        ),
    };
    let stamp = Stamp {
        request_id: change_id.clone(),
        change_id: change_id.clone(),
        duration_us: 0,
    };
    events::insert(
        &tx,
        tenant.id,
        &stamp,
        &[EventRow {
            action: action.into(),
            resource_type: "Mapping".into(),
            resource_id: installed.version.to_string(),
            resource_name: installed.sha256.as_ref().map(|h| h[..12].to_string()),
            status: "success",
            reason: confirm.then(|| "confirmed".to_string()),
            detail: Some(format!(
                "Version {} ({what}) by {by}. Preview over {} users: {} gain, {} lose ({:.1}%). Every user is re-mapped in the background.",
                installed.version,
                preview.users,
                preview.gaining,
                preview.losing,
                preview.losing_percent
            )),
            changes: vec![(
                "rules".into(),
                before.map(|h| Value::String(h).to_string()),
                installed
                    .sha256
                    .as_ref()
                    .map(|h| Value::String(h.clone()).to_string()),
            )],
        }],
    )?;
    tx.commit()?;
    Ok(Outcome {
        installed,
        preview,
        change_id,
    })
}

/// What rolling back installs: the version before the one in force (its
/// number and document; `None`: the default mapping).
/// Before the first version, that is the default mapping (version 0).
pub fn rollback_target(pool: &Pool, tenant: &Tenant) -> Result<(i64, Option<String>), Refusal> {
    let conn = pool.get()?;
    if store::current(&conn, tenant.id)?.is_none() {
        return Err(Refusal::Engine {
            status: 409,
            detail: "No rules were ever installed: there is nothing to roll back".into(),
        });
    }
    Ok(store::previous(&conn, tenant.id)?.unwrap_or((0, None)))
}

/// One user's mapping under `choice`, step by step (see the README).
pub fn explain(
    runtime: &Runtime,
    pool: &Pool,
    tenant: &Tenant,
    choice: &Choice,
    user: &str,
) -> Result<Value, Refusal> {
    let mut snap = Snapshot::begin(runtime, pool.get()?, tenant, choice.plugin_mode())?;
    let wit = choice.wit();
    let r = snap.call(|s, e, ctx| e.lms_scim_mapping_admin().call_explain(s, ctx, &wit, user));
    snap.end();
    match r? {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Refusal::Internal(anyhow!("unreadable explanation: {e}"))),
        Err(e) => Err(Refusal::Engine {
            status: e.status,
            detail: e.detail,
        }),
    }
}

/// The tenant a name designates, for commands.
pub fn tenant(conn: &crate::db::sql::Connection, name: &str) -> anyhow::Result<Tenant> {
    let id = crate::db::tenant_id(conn, name)?;
    let signing_key: Vec<u8> =
        conn.query_row("SELECT signing_key FROM tenants WHERE id = ?1", [id], |r| {
            r.get(0)
        })?;
    Ok(Tenant {
        id,
        name: name.to_string(),
        signing_key,
        share: Default::default(),
    })
}
