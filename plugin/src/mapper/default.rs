//! The default mapping: every active user is a learner with the role
//! `learner`, and every group is a team of its name. The rules language
//! builds on its role and its group sources.

use super::{Explanation, Facts, Grant, GrantKind, MapError, Mapper};

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
    use crate::mapper::GroupFact;

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
