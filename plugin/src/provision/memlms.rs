//! An in-memory LMS for tests and benchmarks, applying effects the way the
//! reference host does.

use std::collections::{BTreeMap, BTreeSet};

use super::host::{
    Change, Effect, Event, Grant, GrantKind, LearnerState, LearnerStatus, LmsHost, LmsResult,
    Policy, Profile, Task,
};
use crate::mapper::MapError;
use crate::mapper::plugin::{Assigned, PluginInfo, PluginRunner, UserFacts};

/// A plugin stand-in: what it answers for a user.
pub type PluginFn = fn(&UserFacts) -> Result<Vec<Assigned>, MapError>;

struct FnRunner(PluginFn);

impl PluginRunner for FnRunner {
    fn assign(&self, user: &UserFacts) -> Result<Vec<Assigned>, MapError> {
        (self.0)(user)
    }
}

/// One learner.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemLearner {
    pub status: LearnerStatus,
    pub profile: Profile,
    pub grants: BTreeSet<Grant>,
    /// Mapped grants removed by hand.
    pub withdrawn: BTreeSet<Grant>,
}

/// An LMS held in memory.
#[derive(Debug, Default)]
pub struct MemLms {
    pub learners: BTreeMap<String, MemLearner>,
    /// Role and learning-path names that exist.
    pub catalogue: BTreeSet<(GrantKind, String)>,
    pub policy: Policy,
    /// The installed rules document.
    pub mapping: Option<String>,
    pub outbox: Vec<Task>,
    pub events: Vec<Event>,
    /// Every change applied, in order.
    pub applied: Vec<Change>,
    /// The plugin in force, if any.
    pub plugin: Option<(PluginInfo, PluginFn)>,
}

impl MemLms {
    /// An LMS whose catalogue has the role `learner`.
    pub fn new() -> Self {
        let mut lms = MemLms::default();
        lms.catalogue.insert((GrantKind::Role, "learner".into()));
        lms
    }

    /// Names of the items of `kind` a learner holds.
    pub fn holds(&self, id: &str, kind: GrantKind) -> Vec<String> {
        let mut names: Vec<String> = self.learners[id]
            .grants
            .iter()
            .filter(|g| g.kind == kind)
            .map(|g| g.name.clone())
            .collect();
        names.dedup();
        names
    }

    /// What an admin removing an item by hand does: manual grants go,
    /// mapped ones are withdrawn (mapping notices: drift).
    pub fn withdraw(&mut self, id: &str, kind: GrantKind, name: &str) {
        let l = self.learners.get_mut(id).expect("learner");
        let taken: Vec<Grant> = l
            .grants
            .iter()
            .filter(|g| g.kind == kind && g.name == name)
            .cloned()
            .collect();
        for g in taken {
            l.grants.remove(&g);
            if g.source != super::host::MANUAL {
                l.withdrawn.insert(g);
            }
        }
    }
}

impl LmsHost for MemLms {
    fn learners(&mut self, ids: &[String]) -> LmsResult<Vec<LearnerState>> {
        Ok(ids
            .iter()
            .filter_map(|id| {
                self.learners.get(id).map(|l| LearnerState {
                    scim_id: id.clone(),
                    status: l.status,
                    grants: l.grants.iter().cloned().collect(),
                    withdrawn: l.withdrawn.iter().cloned().collect(),
                })
            })
            .collect())
    }

    fn apply(&mut self, changes: Vec<Change>) -> LmsResult<()> {
        for c in &changes {
            let id = c.learner.scim_id.clone();
            for e in &c.effects {
                if let Effect::Upsert(p) = e {
                    let l = self
                        .learners
                        .entry(id.clone())
                        .or_insert_with(|| MemLearner {
                            status: LearnerStatus::Active,
                            profile: Profile::default(),
                            grants: BTreeSet::new(),
                            withdrawn: BTreeSet::new(),
                        });
                    l.profile = p.clone();
                    continue;
                }
                let Some(l) = self.learners.get_mut(&id) else {
                    continue;
                };
                match e {
                    Effect::Upsert(_) => {}
                    Effect::Suspend => l.status = LearnerStatus::Suspended,
                    Effect::Reactivate => l.status = LearnerStatus::Active,
                    Effect::Remove => {
                        l.status = LearnerStatus::Removed;
                        l.profile = Profile::default();
                        l.grants.clear();
                        l.withdrawn.clear();
                    }
                    Effect::Grant(g) => {
                        l.withdrawn.remove(g);
                        l.grants.insert(g.clone());
                    }
                    Effect::Revoke(g) => {
                        l.grants.remove(g);
                        l.withdrawn.remove(g);
                    }
                }
            }
        }
        self.applied.extend(changes);
        Ok(())
    }

    fn known(&mut self, kind: GrantKind, names: &[String]) -> LmsResult<Vec<String>> {
        Ok(names
            .iter()
            .filter(|n| self.catalogue.contains(&(kind, n.to_string())))
            .cloned()
            .collect())
    }

    fn policy(&mut self) -> LmsResult<Policy> {
        Ok(self.policy.clone())
    }

    fn mapping(&mut self) -> LmsResult<Option<String>> {
        Ok(self.mapping.clone())
    }

    fn holders(&mut self, source: &str, after: Option<&str>, limit: u32) -> LmsResult<Vec<String>> {
        Ok(self
            .learners
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
            .filter(|(_, l)| l.grants.iter().any(|g| via(&g.source) == source))
            .map(|(id, _)| id.clone())
            .take(limit as usize)
            .collect())
    }

    fn rename_grants(
        &mut self,
        kind: GrantKind,
        source: &str,
        to: Option<&str>,
        after: Option<&str>,
        limit: u32,
    ) -> LmsResult<Vec<String>> {
        let stale = |g: &Grant| g.kind == kind && g.source == source && Some(g.name.as_str()) != to;
        let ids: Vec<String> = self
            .learners
            .iter()
            .filter(|(id, _)| after.is_none_or(|a| id.as_str() > a))
            .filter(|(_, l)| l.grants.iter().chain(&l.withdrawn).any(stale))
            .map(|(id, _)| id.clone())
            .take(limit as usize)
            .collect();
        for id in &ids {
            let l = self.learners.get_mut(id).expect("listed above");
            for set in [&mut l.grants, &mut l.withdrawn] {
                let old: Vec<Grant> = set.iter().filter(|g| stale(g)).cloned().collect();
                for g in old {
                    set.remove(&g);
                    if let Some(to) = to {
                        set.insert(Grant {
                            name: to.to_string(),
                            ..g
                        });
                    }
                }
            }
        }
        Ok(ids)
    }

    fn enqueue(&mut self, task: Task) {
        self.outbox.push(task);
    }

    fn append(&mut self, events: Vec<Event>) {
        self.events.extend(events);
    }

    fn plugin(&mut self) -> Option<(PluginInfo, Box<dyn PluginRunner>)> {
        let (info, f) = self.plugin.clone()?;
        Some((info, Box::new(FnRunner(f))))
    }
}

/// The group or attribute part of a source (`rule@via`).
pub fn via(source: &str) -> &str {
    source.split_once('@').map_or(source, |(_, v)| v)
}
