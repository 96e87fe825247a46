//! The WIT `plugin` interface: runs the tenant's mapping plugin (or a
//! candidate under preview) in the plugin sandbox, counts consecutive
//! failures, disables a plugin that keeps failing (the rules take over and
//! every user is re-mapped), and keeps failed calls' inputs for replay.

use std::sync::Arc;

use crate::bindings::lms::scim::lms::GrantKind;
use crate::bindings::lms::scim::outbox::{Host as _, Task, Work};
use crate::bindings::lms::scim::plugin::{Assigned, Host, PluginFailure, PluginInfo, UserFacts};
use crate::db::plugins as store;
use crate::events::EventRow;
use crate::sandbox::plugin::{self as sp, Loaded, PluginLimits, Plugins};

use super::SqlStore;

/// Failures in a row that disable a plugin, unless its install said otherwise.
pub const DEFAULT_MAX_FAILURES: u32 = 5;

/// Which plugin a call runs.
pub enum PluginMode {
    /// The tenant's installed plugin, counting failures (requests, drains).
    Installed,
    /// The installed plugin without counting (preview, explain).
    Observe,
    /// A candidate, never installed (preview, replay).
    Candidate(Candidate),
    /// No plugin: the rules apply (previewing a plugin's removal).
    Off,
}

/// A plugin under preview.
#[derive(Clone)]
pub struct Candidate {
    pub loaded: Arc<Loaded>,
    pub settings: String,
    pub limits: PluginLimits,
}

impl std::fmt::Debug for Candidate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Candidate({})", self.loaded.sha256)
    }
}

/// The plugin resolved for this call.
struct Active {
    loaded: Result<Arc<Loaded>, String>,
    version: i64,
    settings: String,
    limits: PluginLimits,
    max_failures: i64,
}

/// Per-call plugin state kept on the [`SqlStore`].
pub struct PluginCtx {
    plugins: Arc<Plugins>,
    mode: PluginMode,
    /// Resolved on first use: `Some(None)` means no plugin applies.
    active: Option<Option<Active>>,
    /// Set once this call disabled the plugin.
    disabled: bool,
    /// The plugin instance serving this call's users, kept between them.
    session: Option<sp::Session>,
    /// The last call succeeded and the engine accepted its output (so far):
    /// the failure count restarts, written when the next failure or the end
    /// of the call ([`SqlStore::settle_plugin`]) confirms it.
    succeeded: bool,
}

impl PluginCtx {
    pub fn new(plugins: Arc<Plugins>, mode: PluginMode) -> Self {
        PluginCtx {
            plugins,
            mode,
            active: None,
            disabled: false,
            session: None,
            succeeded: false,
        }
    }
}

impl Drop for PluginCtx {
    /// The instance that served this engine call is released by the
    /// sandbox's own thread, not the request's.
    fn drop(&mut self) {
        if let Some(used) = self.session.take() {
            self.plugins.discard(used);
        }
    }
}

impl SqlStore {
    /// Finds the plugin this call runs, loading and compiling the installed
    /// one if this process has not yet.
    fn resolve_plugin(&mut self) -> Option<&Active> {
        let tenant = self.tenant();
        let conn = self.conn_ref()?;
        let ctx = self.plugin.as_ref()?;
        if ctx.active.is_none() {
            let active = match &ctx.mode {
                PluginMode::Candidate(c) => Some(Active {
                    loaded: Ok(c.loaded.clone()),
                    version: 0,
                    settings: c.settings.clone(),
                    limits: c.limits.clone(),
                    max_failures: i64::MAX,
                }),
                PluginMode::Off => None,
                PluginMode::Installed | PluginMode::Observe => match store::current(conn, tenant) {
                    Ok(Some(v)) if v.runs() => {
                        let sha = v.sha256.clone().unwrap_or_default();
                        let loaded = match ctx.plugins.get(&sha) {
                            Some(l) => Ok(l),
                            None => match store::component(conn, &sha) {
                                Ok(Some(bytes)) => ctx
                                    .plugins
                                    .load(&bytes)
                                    .inspect(|l| ctx.plugins.keep(tenant, l, &bytes))
                                    .map_err(|e| e.to_string()),
                                Ok(None) => Err("its component is missing".to_string()),
                                Err(e) => Err(e.to_string()),
                            },
                        };
                        Some(Active {
                            loaded,
                            version: v.version,
                            settings: v.settings.clone().unwrap_or_else(|| "{}".into()),
                            limits: v.limits(),
                            max_failures: v.max_failures.unwrap_or(DEFAULT_MAX_FAILURES as i64),
                        })
                    }
                    Ok(_) => None,
                    Err(e) => {
                        tracing::error!(error = %e, "could not read the installed plugin");
                        None
                    }
                },
            };
            self.plugin.as_mut()?.active = Some(active);
        }
        self.plugin.as_ref()?.active.as_ref()?.as_ref()
    }

    /// Counts a failed call of the installed plugin, keeps its input, and
    /// disables the plugin at its limit.
    fn plugin_failed(&mut self, user: &UserFacts, failure: &PluginFailure) {
        if !matches!(
            self.plugin.as_ref().map(|c| &c.mode),
            Some(PluginMode::Installed)
        ) {
            return;
        }
        let (tenant, Some(conn)) = (self.tenant(), self.conn_ref()) else {
            return;
        };
        let Some(Some(a)) = self.plugin.as_ref().and_then(|c| c.active.as_ref()) else {
            return;
        };
        let sha = a
            .loaded
            .as_ref()
            .map_or("", |l| l.sha256.as_str())
            .to_string();
        let (version, max) = (a.version, a.max_failures);
        let kept = store::keep_failure(
            conn,
            tenant,
            &sha,
            &input_json(user),
            &a.settings,
            &failure.reason,
            &failure.detail,
        );
        if let Err(e) = kept {
            tracing::warn!(error = %e, "could not keep a failed plugin call for replay");
        }
        // A refusal is the plugin's deliberate answer, not a malfunction;
        // a busy host is not the plugin's doing.
        if failure.reason == "plugin-refused" || failure.reason == "plugin-busy" {
            return;
        }
        if self.plugin.as_ref().is_some_and(|c| c.succeeded)
            && let Err(e) = store::succeeded(conn, tenant, version)
        {
            self.journal.failed = Some(format!("could not record a plugin call: {e}"));
            return;
        }
        if let Some(c) = self.plugin.as_mut() {
            c.succeeded = false;
        }
        let Some(conn) = self.conn_ref() else {
            return;
        };
        let count = match store::failed(conn, tenant, version) {
            Ok(n) => n,
            Err(e) => {
                self.journal.failed = Some(format!("could not count a plugin failure: {e}"));
                return;
            }
        };
        if count < max || self.plugin.as_ref().is_some_and(|c| c.disabled) {
            return;
        }
        let why = format!(
            "{count} calls in a row failed (the last: {}: {}); the tenant's rules apply until a plugin is installed again",
            failure.reason, failure.detail
        );
        if let Err(e) = store::disable(conn, tenant, version, &why) {
            self.journal.failed = Some(format!("could not disable a failing plugin: {e}"));
            return;
        }
        if let Some(c) = self.plugin.as_mut() {
            c.disabled = true;
        }
        tracing::error!(tenant, version, sha256 = %sha, "mapping plugin disabled after {count} failures in a row");
        self.journal.events.push(EventRow {
            action: "mapper-disabled".into(),
            resource_type: "Mapper".into(),
            resource_id: version.to_string(),
            resource_name: Some(sha.chars().take(12).collect()),
            status: "failure",
            reason: Some("plugin-disabled".into()),
            detail: Some(why),
            changes: Vec::new(),
        });
        // Everyone is mapped again, by the rules.
        self.enqueue(Task {
            work: Work::Everyone,
            cursor: None,
        });
    }
}

impl SqlStore {
    /// Ends a request's or batch's plugin use: a last call that succeeded
    /// (and whose output the engine accepted) restarts the failure count.
    pub fn settle_plugin(&mut self) {
        let tenant = self.tenant();
        let Some(ctx) = self.plugin.as_ref() else {
            return;
        };
        let (true, PluginMode::Installed, Some(Some(a)), Some(conn)) =
            (ctx.succeeded, &ctx.mode, &ctx.active, self.conn_ref())
        else {
            return;
        };
        if let Err(e) = store::succeeded(conn, tenant, a.version) {
            self.journal.failed = Some(format!("could not record a plugin call: {e}"));
        }
    }
}

/// The user as the plugin received it, for replay.
fn input_json(u: &UserFacts) -> String {
    serde_json::json!({
        "id": u.id,
        "userName": u.user_name,
        "externalId": u.external_id,
        "active": u.active,
        "groups": u.groups.iter().map(|g| serde_json::json!({
            "id": g.id, "displayName": g.display_name, "externalId": g.external_id,
        })).collect::<Vec<_>>(),
        "scim": u.scim_json,
    })
    .to_string()
}

/// The plugin's view of a user.
pub fn plugin_user(u: &UserFacts) -> sp::User {
    sp::User {
        id: u.id.clone(),
        user_name: u.user_name.clone(),
        external_id: u.external_id.clone(),
        active: u.active,
        groups: u
            .groups
            .iter()
            .map(|g| sp::Group {
                id: g.id.clone(),
                display_name: g.display_name.clone(),
                external_id: g.external_id.clone(),
            })
            .collect(),
        scim_json: u.scim_json.clone(),
    }
}

fn kind(k: sp::GrantKind) -> GrantKind {
    match k {
        sp::GrantKind::Role => GrantKind::Role,
        sp::GrantKind::Team => GrantKind::Team,
        sp::GrantKind::LearningPath => GrantKind::LearningPath,
    }
}

impl Host for SqlStore {
    fn active(&mut self) -> Option<PluginInfo> {
        if self.plugin.as_ref().is_some_and(|c| c.disabled) {
            return None;
        }
        let a = self.resolve_plugin()?;
        Some(PluginInfo {
            sha256: a
                .loaded
                .as_ref()
                .map_or_else(|_| "unavailable".to_string(), |l| l.sha256.clone()),
            version: a.version as u32,
        })
    }

    fn rejected(&mut self, user: UserFacts, failure: PluginFailure) {
        // The output just counted as a success was not one.
        if let Some(c) = self.plugin.as_mut() {
            c.succeeded = false;
        }
        self.plugin_failed(&user, &failure);
    }

    fn assign(&mut self, user: UserFacts) -> Result<Vec<Assigned>, PluginFailure> {
        if self.plugin.as_ref().is_some_and(|c| c.disabled) {
            return Err(PluginFailure {
                reason: "plugin-unavailable".into(),
                detail: "the plugin was disabled after repeated failures; the rules apply from the next change".into(),
            });
        }
        let plugins = match &self.plugin {
            Some(c) => c.plugins.clone(),
            None => {
                return Err(PluginFailure {
                    reason: "plugin-unavailable".into(),
                    detail: "this host runs no plugins".into(),
                });
            }
        };
        // Out of the context while `a` borrows it; back after the call.
        let mut session = self.plugin.as_mut().and_then(|c| c.session.take());
        let Some(a) = self.resolve_plugin() else {
            return Err(PluginFailure {
                reason: "plugin-unavailable".into(),
                detail: "no plugin is installed".into(),
            });
        };
        let outcome = match &a.loaded {
            Err(why) => Err(sp::Failure {
                reason: "plugin-unavailable",
                detail: format!("the installed plugin cannot be loaded: {why}"),
            }),
            Ok(loaded) => plugins.run_in(
                &mut session,
                loaded,
                &a.limits,
                &plugin_user(&user),
                &a.settings,
            ),
        };
        if let Some(c) = self.plugin.as_mut() {
            c.session = session;
        }
        match outcome {
            Ok(grants) => {
                if let Some(c) = self.plugin.as_mut() {
                    c.succeeded = true;
                }
                Ok(grants
                    .into_iter()
                    .map(|g| Assigned {
                        kind: kind(g.kind),
                        name: g.name,
                        reason: g.reason,
                    })
                    .collect())
            }
            Err(f) => {
                let failure = PluginFailure {
                    reason: f.reason.into(),
                    detail: f.detail,
                };
                self.plugin_failed(&user, &failure);
                Err(failure)
            }
        }
    }
}
