//! Mapping: from what the identity provider says about a user to the roles,
//! teams and learning paths the learner should hold. The default mapping
//! lives here; the rules language and admin-uploaded plugins implement the
//! same [`Mapper`] trait, whose `explain` answers an [`Explanation`].

use serde::Serialize;
use serde_json::Value;

use super::host::{Grant, GrantKind};

/// A group a user is a direct member of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupFact {
    pub id: String,
    pub display_name: Option<String>,
    /// Filled only for mappers that ask ([`Mapper::needs_group_external_ids`]).
    pub external_id: Option<String>,
}

/// What a mapper sees of one user.
#[derive(Debug, Clone)]
pub struct Facts<'a> {
    pub id: &'a str,
    pub active: bool,
    /// The SCIM resource as stored.
    pub resource: &'a Value,
    pub groups: &'a [GroupFact],
}

/// A mapping failure: the user's LMS state stays as it was and the failure
/// is recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{reason}: {detail}")]
pub struct MapError {
    /// Machine-readable, for the sync log.
    pub reason: String,
    pub detail: String,
}

/// One step of a condition's evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct Trace {
    /// The test or combinator, as written.
    pub test: String,
    pub result: bool,
    /// The values the test saw (tests only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub values: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Trace>,
}

/// What one rule did for one user.
#[derive(Debug, Clone, Serialize)]
pub struct RuleOutcome {
    pub rule: String,
    pub priority: i64,
    pub matched: bool,
    /// The group or attribute the match came through (part of the source).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub condition: Option<Trace>,
    /// Why a matched rule's role or a name was not granted.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

/// The full account of one user's mapping, as every mapper's `explain`
/// gives it (rules fill in their outcomes and traces).
#[derive(Debug, Clone, Default, Serialize)]
pub struct Explanation {
    pub rules: Vec<RuleOutcome>,
    /// Notes that belong to no single rule (the default role, inactive).
    pub notes: Vec<String>,
    #[serde(skip)]
    pub grants: Vec<Grant>,
}

/// Computes the grants a user should hold. Suspension does not depend on it:
/// an inactive user is suspended whatever the mapper says or fails to say.
pub trait Mapper {
    /// The grants `facts` call for, each with its source.
    fn desired(&self, facts: &Facts) -> Result<Vec<Grant>, MapError>;

    /// The grants with an account of how they came about (explain).
    fn explain(&self, facts: &Facts) -> Result<Explanation, MapError> {
        Ok(Explanation {
            grants: self.desired(facts)?,
            ..Explanation::default()
        })
    }

    /// Whether the grants depend on the user's attributes. When they do not,
    /// the facts of a learner whose profile is not rewritten carry an empty
    /// resource, and re-mapping skips parsing the stored user.
    fn reads_attributes(&self) -> bool {
        true
    }

    /// Whether group facts must carry external ids (a fetch per group).
    fn needs_group_external_ids(&self) -> bool {
        false
    }

    /// Whether what a user gets may depend on a group's name beyond the
    /// grants that name the group in their source: then a renamed group's
    /// members are all re-mapped, not only the holders of its grants.
    fn reads_group_names(&self) -> bool {
        false
    }

    /// Whether a learner holds one mapped role, so that a manual role beside
    /// it is a contradiction worth reporting.
    fn exclusive_role(&self) -> bool {
        false
    }

    /// Whether a role or learning path missing from the catalogue fails the
    /// user's whole mapping (its state stays as it was) instead of being
    /// skipped; `Some` names the mapper in the failure.
    fn strict_catalogue(&self) -> Option<String> {
        None
    }

    /// What kind of mapping this is, for explain and the sync log.
    fn name(&self) -> &'static str;
}

/// The default mapping: every active user is a learner with the role
/// `learner`, and every group is a team of the same name.
pub struct DefaultMapper;

/// The role every active user holds under the default mapping.
pub const LEARNER_ROLE: &str = "learner";

/// Source of the default mapping's role grant.
pub const LEARNER_SOURCE: &str = "default:learner-role@active";

/// Source of the team grant a group produces under the default mapping.
pub fn group_source(group_id: &str) -> String {
    format!("default:groups-as-teams@{}", group_key(group_id))
}

/// The team `groups-as-teams` makes of a group with this `displayName`:
/// none for a blank name. The mappers and a rename's drain share it, so a
/// renamed team lands where mapping would put it.
pub fn group_team(display_name: Option<&str>) -> Option<&str> {
    display_name.filter(|n| !n.trim().is_empty())
}

/// How a group is named in sources, so its grants can be found again
/// (`lms.holders`) when it is renamed or deleted.
pub fn group_key(group_id: &str) -> String {
    format!("group:{group_id}")
}

impl Mapper for DefaultMapper {
    fn desired(&self, facts: &Facts) -> Result<Vec<Grant>, MapError> {
        if !facts.active {
            return Ok(Vec::new());
        }
        let mut out = vec![Grant {
            kind: GrantKind::Role,
            name: LEARNER_ROLE.to_string(),
            source: LEARNER_SOURCE.to_string(),
        }];
        for g in facts.groups {
            if let Some(name) = group_team(g.display_name.as_deref()) {
                out.push(Grant {
                    kind: GrantKind::Team,
                    name: name.to_string(),
                    source: group_source(&g.id),
                });
            }
        }
        Ok(out)
    }

    fn reads_attributes(&self) -> bool {
        false
    }

    fn explain(&self, facts: &Facts) -> Result<Explanation, MapError> {
        let mut notes = vec![
            "no rules are installed: the default mapping applies (every active user has the role 'learner'; every group is a team of its name)".to_string(),
        ];
        if !facts.active {
            notes.push("the user is inactive: it holds nothing mapped".into());
        }
        Ok(Explanation {
            grants: self.desired(facts)?,
            notes,
            ..Explanation::default()
        })
    }

    fn name(&self) -> &'static str {
        "default"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn active_users_are_learners_in_their_groups_teams() {
        let groups = [
            GroupFact {
                id: "g1".into(),
                display_name: Some("Sales".into()),
                external_id: None,
            },
            GroupFact {
                id: "g2".into(),
                display_name: None,
                external_id: None,
            },
        ];
        let resource = serde_json::json!({});
        let facts = Facts {
            id: "u",
            active: true,
            resource: &resource,
            groups: &groups,
        };
        let got = DefaultMapper.desired(&facts).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].name, "learner");
        assert_eq!(got[1].name, "Sales");
        assert_eq!(got[1].source, "default:groups-as-teams@group:g1");
        let inactive = Facts {
            active: false,
            ..facts
        };
        assert!(DefaultMapper.desired(&inactive).unwrap().is_empty());
    }
}
