//! The WIT `lms` interface over the reference LMS (`crate::lms`).

use crate::bindings::lms::scim::lms::{
    Change, DriftPolicy, Grant, GrantKind, Host, LearnerState, LmsError, OnDelete, TenantPolicy,
};

use super::SqlStore;
use crate::bindings::lms::scim::lms::Effect;

/// An effect's name, for metrics.
fn effect_name(e: &Effect) -> &'static str {
    match e {
        Effect::Upsert(_) => "upsert",
        Effect::Suspend => "suspend",
        Effect::Reactivate => "reactivate",
        Effect::Remove => "remove",
        Effect::SetRole(_) => grant_effect_names(GrantKind::Role).0,
        Effect::ClearRole(_) => grant_effect_names(GrantKind::Role).1,
        Effect::JoinTeam(_) => grant_effect_names(GrantKind::Team).0,
        Effect::LeaveTeam(_) => grant_effect_names(GrantKind::Team).1,
        Effect::AssignPath(_) => grant_effect_names(GrantKind::LearningPath).0,
        Effect::UnassignPath(_) => grant_effect_names(GrantKind::LearningPath).1,
    }
}

/// The names of the effects that grant and revoke an item of `kind`.
fn grant_effect_names(kind: GrantKind) -> (&'static str, &'static str) {
    match kind {
        GrantKind::Role => ("set-role", "clear-role"),
        GrantKind::Team => ("join-team", "leave-team"),
        GrantKind::LearningPath => ("assign-path", "unassign-path"),
    }
}

type R<T> = Result<T, LmsError>;

fn unavailable(e: crate::db::sql::Error) -> LmsError {
    LmsError::Unavailable(e.to_string())
}

impl SqlStore {
    fn lms_conn(&self) -> R<&crate::db::sql::Connection> {
        self.conn_ref()
            .ok_or_else(|| LmsError::Unavailable("no database in this context".into()))
    }
}

impl Host for SqlStore {
    fn learners(&mut self, ids: Vec<String>) -> R<Vec<LearnerState>> {
        let (conn, tenant) = (self.lms_conn()?, self.tenant());
        let learners = crate::lms::learners(conn, tenant, &ids).map_err(unavailable)?;
        let grants = |list: Vec<(GrantKind, String, String)>| {
            list.into_iter()
                .map(|(kind, name, source)| Grant { kind, name, source })
                .collect()
        };
        Ok(learners
            .into_iter()
            .map(|l| LearnerState {
                scim_id: l.scim_id,
                status: l.status,
                grants: grants(l.grants),
                withdrawn: grants(l.withdrawn),
            })
            .collect())
    }

    fn apply(&mut self, changes: Vec<Change>) -> R<()> {
        let (conn, tenant) = (self.lms_conn()?, self.tenant());
        let mut rows = Vec::with_capacity(changes.len());
        let mut batch = crate::lms::Batch::new(conn, tenant, &changes).map_err(unavailable)?;
        for c in &changes {
            if let Some(row) =
                crate::lms::apply(conn, tenant, c, &mut batch).map_err(unavailable)?
            {
                rows.push(row);
            }
            // Tests inject a panic here, with the change half-applied.
            crate::fault::hit_id(crate::fault::Point::LmsEffect, conn, tenant);
        }
        self.journal.reserve(rows.len());
        for row in rows {
            self.journal.learner_event(row);
        }
        for e in changes.iter().flat_map(|c| &c.effects) {
            *self.journal.effects.entry(effect_name(e)).or_default() += 1;
        }
        Ok(())
    }

    fn known(&mut self, kind: GrantKind, names: Vec<String>) -> R<Vec<String>> {
        crate::lms::known(self.lms_conn()?, self.tenant(), kind, &names).map_err(unavailable)
    }

    fn policy(&mut self) -> R<TenantPolicy> {
        let p = crate::db::policy(self.lms_conn()?, self.tenant()).map_err(unavailable)?;
        Ok(TenantPolicy {
            on_delete: if p.on_delete == "remove" {
                OnDelete::Remove
            } else {
                OnDelete::Suspend
            },
            drift: if p.drift == "report" {
                DriftPolicy::Report
            } else {
                DriftPolicy::Restore
            },
            plugin_denied_roles: p.plugin_denied_roles,
        })
    }

    fn mapping(&mut self) -> R<Option<String>> {
        crate::db::rules::in_force(self.lms_conn()?, self.tenant()).map_err(unavailable)
    }

    fn rename_grants(
        &mut self,
        kind: GrantKind,
        source: String,
        to: Option<String>,
        after: Option<String>,
        limit: u32,
    ) -> R<Vec<String>> {
        let (conn, tenant) = (self.lms_conn()?, self.tenant());
        let rows = crate::lms::rename_grants(
            conn,
            tenant,
            kind,
            &source,
            to.as_deref(),
            after.as_deref(),
            limit.min(crate::lms::MAX_LEARNERS_PER_CALL),
        )
        .map_err(unavailable)?;
        let ids: Vec<String> = rows.iter().map(|r| r.resource_id.clone()).collect();
        let n = ids.len() as u64;
        let (joined, left) = grant_effect_names(kind);
        *self.journal.effects.entry(left).or_default() += n;
        if to.is_some() {
            *self.journal.effects.entry(joined).or_default() += n;
        }
        self.journal.reserve(rows.len());
        for row in rows {
            self.journal.learner_event(row);
        }
        Ok(ids)
    }

    fn holders(&mut self, via: String, after: Option<String>, limit: u32) -> R<Vec<String>> {
        crate::lms::holders(
            self.lms_conn()?,
            self.tenant(),
            &via,
            after.as_deref(),
            limit.min(crate::lms::MAX_LEARNERS_PER_CALL),
        )
        .map_err(unavailable)
    }
}
