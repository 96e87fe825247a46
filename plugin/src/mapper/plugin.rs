//! Admin-uploaded mapping plugins, seen from the engine: the host runs the
//! plugin in its own sandbox (WIT `plugin`); the engine gives it a user's
//! facts and treats what comes back as untrusted input, validated whole
//! before any of it becomes a grant.

use std::collections::BTreeSet;

use super::{Explanation, Facts, Grant, GrantKind, GroupFact, MapError, Mapper};

/// Which plugin the host runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginInfo {
    /// SHA-256 of the component, hex.
    pub sha256: String,
    /// The tenant's install number; 0 for a candidate under preview.
    pub version: u32,
}

/// What the plugin is told about one user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserFacts {
    pub id: String,
    pub user_name: String,
    pub external_id: Option<String>,
    pub active: bool,
    pub groups: Vec<GroupFact>,
    /// The SCIM resource as stored, JSON.
    pub scim_json: String,
}

/// One item a plugin says a user should hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assigned {
    pub kind: GrantKind,
    pub name: String,
    pub reason: String,
}

/// Runs the host's plugin for one user; a failure comes back as the
/// host's reason and detail.
pub trait PluginRunner {
    fn assign(&self, user: &UserFacts) -> Result<Vec<Assigned>, MapError>;
    /// The engine refused the output `assign` gave for `user`.
    fn rejected(&self, _user: &UserFacts, _failure: &MapError) {}
}

/// Most grants one user may receive from a plugin.
pub const MAX_GRANTS: usize = 1000;
/// Longest name or reason, in characters.
pub const MAX_TEXT: usize = 200;

/// The rule part of a plugin grant's source: `plugin:assign@<reason>`.
pub const PLUGIN_RULE: &str = "plugin:assign";

/// A plugin as a [`Mapper`].
pub struct PluginMapper {
    pub info: PluginInfo,
    runner: Box<dyn PluginRunner>,
    /// Roles the tenant's policy forbids plugins to grant.
    denied_roles: BTreeSet<String>,
}

impl PluginMapper {
    pub fn new(info: PluginInfo, runner: Box<dyn PluginRunner>, denied_roles: &[String]) -> Self {
        PluginMapper {
            info,
            runner,
            denied_roles: denied_roles
                .iter()
                .map(|r| r.trim().to_lowercase())
                .collect(),
        }
    }

    /// Short form of the plugin's hash, for messages.
    fn tag(&self) -> String {
        let short: String = self.info.sha256.chars().take(12).collect();
        format!("plugin {short}")
    }

    fn failure(&self, reason: &str, detail: String) -> MapError {
        MapError {
            reason: reason.to_string(),
            detail: format!("{detail} ({})", self.tag()),
        }
    }

    /// Checks a plugin's output whole: any bad item refuses all of it, so a
    /// half-understood answer never becomes half the grants.
    fn validate(&self, out: Vec<Assigned>) -> Result<Vec<Grant>, MapError> {
        if out.len() > MAX_GRANTS {
            return Err(self.failure(
                "plugin-output-invalid",
                format!(
                    "the plugin returned {} grants; at most {MAX_GRANTS} are accepted",
                    out.len()
                ),
            ));
        }
        let mut seen = BTreeSet::new();
        let mut grants = Vec::with_capacity(out.len());
        for a in out {
            let name = a.name.trim();
            let reason = a.reason.trim();
            let what = format!("{} '{}'", a.kind.as_str(), clip(&a.name));
            if name.is_empty() || name.chars().count() > MAX_TEXT || has_control(name) {
                return Err(self.failure(
                    "plugin-output-invalid",
                    format!("the plugin returned {what}: a name must be 1 to {MAX_TEXT} printable characters"),
                ));
            }
            if reason.is_empty() || reason.chars().count() > MAX_TEXT || has_control(reason) {
                return Err(self.failure(
                    "plugin-output-invalid",
                    format!("the plugin returned {what} with the reason '{}': a reason must be 1 to {MAX_TEXT} printable characters", clip(&a.reason)),
                ));
            }
            if a.kind == GrantKind::Role && self.denied_roles.contains(&name.to_lowercase()) {
                return Err(self.failure(
                    "plugin-forbidden-grant",
                    format!("the plugin granted the role '{name}', which the tenant's policy forbids plugins to grant; nothing it returned was applied"),
                ));
            }
            if seen.insert((a.kind, name.to_string(), reason.to_string())) {
                grants.push(Grant {
                    kind: a.kind,
                    name: name.to_string(),
                    source: format!("{PLUGIN_RULE}@{reason}"),
                });
            }
        }
        Ok(grants)
    }
}

fn has_control(s: &str) -> bool {
    s.chars().any(char::is_control)
}

/// At most 60 characters of an untrusted string, for a message.
fn clip(s: &str) -> String {
    let mut out: String = s.chars().filter(|c| !c.is_control()).take(60).collect();
    if s.chars().count() > 60 {
        out.push('…');
    }
    out
}

impl Mapper for PluginMapper {
    fn desired(&self, facts: &Facts) -> Result<Vec<Grant>, MapError> {
        if !facts.active {
            return Ok(Vec::new());
        }
        let text = |k: &str| facts.resource.get(k).and_then(|v| v.as_str());
        let user = UserFacts {
            id: facts.id.to_string(),
            user_name: text("userName").unwrap_or_default().to_string(),
            external_id: text("externalId").map(str::to_string),
            active: facts.active,
            groups: facts.groups.to_vec(),
            scim_json: facts.resource.to_string(),
        };
        let out = self
            .runner
            .assign(&user)
            .map_err(|e| self.failure(&e.reason, e.detail))?;
        self.validate(out)
            .inspect_err(|e| self.runner.rejected(&user, e))
    }

    fn explain(&self, facts: &Facts) -> Result<Explanation, MapError> {
        let mut notes = vec![format!(
            "mapped by the tenant's plugin (sha256 {}, version {})",
            self.info.sha256, self.info.version
        )];
        if !facts.active {
            notes.push("the user is inactive: it holds nothing mapped".into());
        }
        Ok(Explanation {
            grants: self.desired(facts)?,
            notes,
            ..Explanation::default()
        })
    }

    fn needs_group_external_ids(&self) -> bool {
        true
    }

    fn reads_group_names(&self) -> bool {
        true
    }

    /// A plugin is untrusted: an item the LMS lacks means its answer is not
    /// understood, so none of it is applied.
    fn strict_catalogue(&self) -> Option<String> {
        Some(self.tag())
    }

    fn name(&self) -> &'static str {
        "plugin"
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    struct Fixed(Result<Vec<Assigned>, MapError>);

    impl PluginRunner for Fixed {
        fn assign(&self, _: &UserFacts) -> Result<Vec<Assigned>, MapError> {
            self.0.clone()
        }
    }

    fn mapper(out: Result<Vec<Assigned>, MapError>) -> PluginMapper {
        PluginMapper::new(
            PluginInfo {
                sha256: "ab".repeat(32),
                version: 3,
            },
            Box::new(Fixed(out)),
            &["Admin".to_string()],
        )
    }

    fn item(kind: GrantKind, name: &str, reason: &str) -> Assigned {
        Assigned {
            kind,
            name: name.into(),
            reason: reason.into(),
        }
    }

    fn run(m: &PluginMapper, active: bool) -> Result<Vec<Grant>, MapError> {
        let resource = json!({"userName": "ada", "externalId": "e1"});
        m.desired(&Facts {
            id: "u1",
            active,
            resource: &resource,
            groups: &[],
        })
    }

    #[test]
    fn grants_carry_the_plugins_reason_and_duplicates_collapse() {
        let m = mapper(Ok(vec![
            item(GrantKind::Role, " learner ", "active"),
            item(GrantKind::Team, "Sales", "group:g1"),
            item(GrantKind::Team, "Sales", "group:g1"),
        ]));
        let got = run(&m, true).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "learner");
        assert_eq!(got[0].source, "plugin:assign@active");
        assert_eq!(got[1].source, "plugin:assign@group:g1");
    }

    #[test]
    fn inactive_users_hold_nothing_and_the_plugin_is_not_asked() {
        let m = mapper(Err(MapError {
            reason: "plugin-trap".into(),
            detail: "boom".into(),
        }));
        assert_eq!(run(&m, false).unwrap(), Vec::new());
    }

    #[test]
    fn a_denied_role_refuses_the_whole_output() {
        let m = mapper(Ok(vec![
            item(GrantKind::Team, "Sales", "group:g1"),
            item(GrantKind::Role, "admin", "everyone"),
        ]));
        let e = run(&m, true).unwrap_err();
        assert_eq!(e.reason, "plugin-forbidden-grant");
        assert!(e.detail.contains("'admin'"), "{}", e.detail);
        assert!(e.detail.contains("plugin abababababab"), "{}", e.detail);
        // A team of that name is not a role: allowed.
        let m = mapper(Ok(vec![item(GrantKind::Team, "admin", "group:g1")]));
        assert_eq!(run(&m, true).unwrap().len(), 1);
    }

    #[test]
    fn malformed_items_refuse_the_whole_output() {
        for bad in [
            item(GrantKind::Role, "  ", "x"),
            item(GrantKind::Role, "ok", ""),
            item(GrantKind::Team, &"x".repeat(201), "x"),
            item(GrantKind::Team, "line\nbreak", "x"),
            item(GrantKind::LearningPath, "ok", &"r".repeat(201)),
        ] {
            let m = mapper(Ok(vec![item(GrantKind::Role, "learner", "active"), bad]));
            assert_eq!(run(&m, true).unwrap_err().reason, "plugin-output-invalid");
        }
        let many = (0..=MAX_GRANTS)
            .map(|i| item(GrantKind::Team, &format!("t{i}"), "x"))
            .collect();
        assert_eq!(
            run(&mapper(Ok(many)), true).unwrap_err().reason,
            "plugin-output-invalid"
        );
    }

    #[test]
    fn a_host_failure_keeps_its_reason_and_names_the_plugin() {
        let m = mapper(Err(MapError {
            reason: "plugin-fuel".into(),
            detail: "the plugin ran out of fuel".into(),
        }));
        let e = run(&m, true).unwrap_err();
        assert_eq!(e.reason, "plugin-fuel");
        assert!(e.detail.ends_with("(plugin abababababab)"), "{}", e.detail);
    }
}
