//! The mapper contract: what a mapper is given about one user ([`Facts`]),
//! what it answers ([`Grant`]s, or a [`MapError`]), and how it accounts for
//! them ([`Explanation`]). Its implementations are [`default`], [`plugin`]
//! and the rules language (`crate::rules`); provisioning and the tenant's
//! mapping (`crate::provision`, `crate::mapping`) call them through
//! [`Mapper`]. Nothing here depends on either side.

use serde::Serialize;
use serde_json::Value;

pub mod default;
pub mod plugin;

pub use default::{
    DefaultMapper, LEARNER_ROLE, LEARNER_SOURCE, group_key, group_source, group_team,
};

/// What a grant gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum GrantKind {
    Role,
    Team,
    LearningPath,
}

impl GrantKind {
    /// The name used in the sync log and the admin API.
    pub fn as_str(self) -> &'static str {
        match self {
            GrantKind::Role => "role",
            GrantKind::Team => "team",
            GrantKind::LearningPath => "learningPath",
        }
    }
}

/// One assignment and its provenance (see the WIT `grant`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Grant {
    pub kind: GrantKind,
    pub name: String,
    pub source: String,
}

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
