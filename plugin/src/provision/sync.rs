//! Provisioning: from what a request (or a background batch) changed to the
//! LMS effects that follow. Suspensions come first and never wait for
//! mapping; mapping then brings each learner's mapped grants to what the
//! mapper wants, never touching grants made by hand.

use std::collections::{BTreeSet, HashMap, HashSet};

use serde_json::Value;

use super::changes::{ChangeSet, is_active};
use super::host::{
    Change, Drift, Effect, Event, EventStatus, Grant, GrantKind, LearnerRef, LearnerState,
    LearnerStatus, LmsHost, MANUAL, OnDelete, Policy, Profile, Task, Work,
};
use crate::error::ScimResult;
use crate::mapper::{Facts, GroupFact, Mapper, group_source, group_team};
use crate::schema::ENTERPRISE_USER_SCHEMA;
use crate::schema::{GROUP_TYPE, USER_TYPE};
use crate::store::{Page, Selection, Store};

/// Users whose membership changed that one request re-maps itself; beyond
/// this the work goes to the outbox so the request stays fast.
pub const INLINE_USERS: usize = 1000;

/// Users per outbox task written for a large membership change.
pub const TASK_USERS: usize = 1000;

/// The largest batch a drain runs (and asks the LMS for at once); a larger
/// one counts as this.
pub const MAX_BATCH: u32 = 10_000;

/// Everything that follows a request's writes: the sync log, suspensions,
/// mapping, and the outbox for work too large for the request.
pub fn after_writes(
    set: &ChangeSet,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
    mapper: &dyn Mapper,
) -> ScimResult<()> {
    lms.append(set.events());

    let mut deleted = Vec::new();
    let mut rewritten: Vec<String> = Vec::new();
    let mut known: HashMap<String, &Value> = HashMap::new();
    let mut upsert: HashSet<String> = HashSet::new();
    for u in &set.users {
        match (&u.before, &u.after) {
            (Some(before), None) => deleted.push((u.id.clone(), before)),
            (before, Some(after)) => {
                rewritten.push(u.id.clone());
                known.insert(u.id.clone(), after);
                // The learner's profile is written only when it changes.
                let changed = before.as_ref().is_none_or(|b| {
                    profile(b) != profile(after)
                        || learner_ref(&u.id, b) != learner_ref(&u.id, after)
                });
                if changed {
                    upsert.insert(u.id.clone());
                }
            }
            (None, None) => {}
        }
    }
    let touched: HashSet<&str> = set.users.iter().map(|u| u.id.as_str()).collect();
    let moved: BTreeSet<&String> = set
        .members
        .iter()
        .flat_map(|(_, joined, left)| joined.iter().chain(left))
        .filter(|id| !touched.contains(id.as_str()))
        .collect();
    let mut inline = rewritten;
    if moved.len() + inline.len() <= INLINE_USERS {
        inline.extend(moved.into_iter().cloned());
    } else {
        let moved: Vec<String> = moved.into_iter().cloned().collect();
        enqueue_users(lms, &moved);
    }
    for g in &set.groups {
        let name = |d: &Option<Value>| {
            d.as_ref()
                .and_then(|d| d.get("displayName"))
                .and_then(Value::as_str)
                .map(str::to_string)
        };
        let renamed = g.before.is_some() && g.after.is_some() && name(&g.before) != name(&g.after);
        // A renamed group's members are re-mapped when the mapping reads
        // group names. Otherwise the name shows only in the team
        // `groups-as-teams` makes of the group, and the LMS renames that
        // team's grants as a set, in id order. A deleted group's former
        // members are among the users who moved.
        if renamed {
            let work = if mapper.reads_group_names() {
                Work::Members(g.id.clone())
            } else {
                Work::Renamed(g.id.clone())
            };
            lms.enqueue(Task { work, cursor: None });
        }
    }
    deprovision(&deleted, lms)?;
    provision(&inline, &known, &upsert, store, lms, mapper)
}

/// One batch of a background task; the cursor to continue from, or `None`
/// when the task is finished.
pub fn drain(
    task: &Task,
    batch: u32,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
    mapper: &dyn Mapper,
) -> ScimResult<Option<String>> {
    let batch = batch.clamp(1, MAX_BATCH);
    match &task.work {
        Work::Source(source) => {
            let ids = lms.holders(source, task.cursor.as_deref(), batch)?;
            provision(&ids, &HashMap::new(), &HashSet::new(), store, lms, mapper)?;
            Ok(resume_after(&ids, batch))
        }
        Work::Renamed(group) => {
            let to = group_name(store, group)?;
            let ids = lms.rename_grants(
                GrantKind::Team,
                &group_source(group),
                to.as_deref(),
                task.cursor.as_deref(),
                batch,
            )?;
            Ok(resume_after(&ids, batch))
        }
        Work::Everyone if task.cursor.is_none() => {
            enqueue_in_id_order(store, lms)?;
            Ok(None)
        }
        Work::Everyone => {
            // A task queued, and started, before it was split up.
            let (users, next) = users_page(store, seq_cursor(task)?, batch)?;
            let ids: Vec<String> = users.iter().map(|(id, _)| id.clone()).collect();
            let known: HashMap<String, &Value> =
                users.iter().map(|(id, v)| (id.clone(), v)).collect();
            provision(&ids, &known, &HashSet::new(), store, lms, mapper)?;
            Ok(next)
        }
        Work::Members(group) => {
            let after = seq_cursor(task)?;
            let rows = store.members_list(GROUP_TYPE.name, group, after, batch)?;
            let next = (rows.len() >= batch as usize)
                .then(|| rows.last().map(|r| r.seq.to_string()))
                .flatten();
            let ids: Vec<String> = rows
                .into_iter()
                .filter(|r| r.kind == USER_TYPE.name)
                .map(|r| r.id)
                .collect();
            provision(&ids, &HashMap::new(), &HashSet::new(), store, lms, mapper)?;
            Ok(next)
        }
        Work::Users(users) => {
            let start = task
                .cursor
                .as_deref()
                .and_then(|c| c.parse::<usize>().ok())
                .unwrap_or(0)
                .min(users.len());
            let end = (start + batch as usize).min(users.len());
            provision(
                &users[start..end],
                &HashMap::new(),
                &HashSet::new(),
                store,
                lms,
                mapper,
            )?;
            Ok((end < users.len()).then(|| end.to_string()))
        }
    }
}

/// Keys read per store call while listing every user.
const KEYS_PAGE: u32 = 10_000;

/// Queues every user of the tenant as tasks of [`TASK_USERS`] users in id
/// order. The LMS keeps learners, their assignments and the sync log's
/// per-user index by user id; walked in creation order, each user of a
/// batch lands on pages of its own, and a batch of 500 rewrites thousands of
/// pages. In id order, neighbours share pages. A user created meanwhile is
/// mapped by its own request, under the rules already in force; one deleted
/// meanwhile is found gone when its turn comes.
fn enqueue_in_id_order(store: &mut dyn Store, lms: &mut dyn LmsHost) -> ScimResult<()> {
    let mut ids = Vec::new();
    let mut after = None;
    loop {
        let keys = store.scan_keys(
            USER_TYPE.name,
            &Selection::All,
            Page::after(after, KEYS_PAGE),
        )?;
        let done = keys.len() < KEYS_PAGE as usize;
        after = keys.last().map(|(_, seq)| *seq).or(after);
        ids.extend(keys.into_iter().map(|(id, _)| id));
        if done {
            break;
        }
    }
    ids.sort_unstable();
    enqueue_users(lms, &ids);
    Ok(())
}

/// Queues `ids` for re-mapping, [`TASK_USERS`] to a task.
fn enqueue_users(lms: &mut dyn LmsHost, ids: &[String]) {
    for chunk in ids.chunks(TASK_USERS) {
        lms.enqueue(Task {
            work: Work::Users(chunk.to_vec()),
            cursor: None,
        });
    }
}

/// Where the next batch starts after a full batch of learners in id order;
/// `None` after a short one, which means the LMS has no more.
fn resume_after(ids: &[String], batch: u32) -> Option<String> {
    (ids.len() >= batch as usize)
        .then(|| ids.last().cloned())
        .flatten()
}

/// A group's current team ([`group_team`]); `None` when the group is gone
/// (its team goes with it).
fn group_name(store: &mut dyn Store, id: &str) -> ScimResult<Option<String>> {
    #[derive(serde::Deserialize)]
    struct Name {
        #[serde(rename = "displayName")]
        display_name: Option<String>,
    }
    Ok(store
        .get(GROUP_TYPE.name, id)?
        .and_then(|d| serde_json::from_str::<Name>(&d.body).ok())
        .and_then(|n| group_team(n.display_name.as_deref()).map(str::to_string)))
}

/// Users by id with their parsed resources.
pub(crate) type Users = Vec<(String, Value)>;

/// One page of every user, in store order, parsed; and where the next page
/// starts (`None` after the last).
pub(crate) fn users_page(
    store: &mut dyn Store,
    after: Option<u64>,
    limit: u32,
) -> ScimResult<(Users, Option<String>)> {
    let docs = store.scan(USER_TYPE.name, &Selection::All, Page::after(after, limit))?;
    let next = (docs.len() >= limit as usize)
        .then(|| docs.last().map(|d| d.seq.to_string()))
        .flatten();
    let users = docs
        .into_iter()
        .filter_map(|d| Some((d.id, serde_json::from_str(&d.body).ok()?)))
        .collect();
    Ok((users, next))
}

/// A task's cursor as a store sequence number.
fn seq_cursor(task: &Task) -> ScimResult<Option<u64>> {
    task.cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>().map_err(|_| {
                crate::ScimError::new(500, None, format!("unreadable task cursor '{c}'"))
            })
        })
        .transpose()
}

/// A user as provisioning reads it: the whole resource, or only what a
/// learner's ids and status need.
enum User<'a> {
    Full(&'a Value),
    Head(Head),
}

/// The attributes of a user that a mapper reading no attributes still
/// needs; the rest of the document is skipped unparsed.
#[derive(serde::Deserialize)]
struct Head {
    #[serde(rename = "userName")]
    user_name: Option<String>,
    #[serde(rename = "externalId")]
    external_id: Option<String>,
    /// As [`is_active`] reads it from the whole resource.
    #[serde(default = "active_by_default")]
    active: bool,
}

fn active_by_default() -> bool {
    true
}

impl Head {
    /// As [`learner_ref`] reads it from the whole resource.
    fn into_learner_ref(self, id: &str) -> LearnerRef {
        LearnerRef {
            scim_id: id.to_string(),
            user_name: self.user_name.unwrap_or_default(),
            external_id: self.external_id,
        }
    }
}

/// The ids a learner is known by, from its SCIM user.
fn learner_ref(id: &str, user: &Value) -> LearnerRef {
    let s = |k: &str| user.get(k).and_then(Value::as_str).map(str::to_string);
    LearnerRef {
        scim_id: id.to_string(),
        user_name: s("userName").unwrap_or_default(),
        external_id: s("externalId"),
    }
}

/// The learner's profile from its SCIM user.
pub fn profile(user: &Value) -> Profile {
    let s = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_string);
    let emails = user.get("emails").and_then(Value::as_array);
    let email = emails.and_then(|list| {
        list.iter()
            .find(|e| e.get("primary").and_then(Value::as_bool) == Some(true))
            .or_else(|| list.first())
            .and_then(|e| s(e.get("value")))
    });
    let ext = user.get(ENTERPRISE_USER_SCHEMA);
    Profile {
        display_name: s(user.get("displayName")),
        given_name: s(user.pointer("/name/givenName")),
        family_name: s(user.pointer("/name/familyName")),
        email,
        locale: s(user.get("locale")).or_else(|| s(user.get("preferredLanguage"))),
        title: s(user.get("title")),
        department: s(ext.and_then(|e| e.get("department"))),
        manager: s(ext.and_then(|e| e.pointer("/manager/value"))),
    }
}

/// Deleted users: suspended (their mapped grants revoked, learning records
/// kept) or removed, as the tenant's policy says.
fn deprovision(deleted: &[(String, &Value)], lms: &mut dyn LmsHost) -> ScimResult<()> {
    if deleted.is_empty() {
        return Ok(());
    }
    let policy = lms.policy()?;
    let ids: Vec<String> = deleted.iter().map(|(id, _)| id.clone()).collect();
    let states = by_id(lms.learners(&ids)?);
    let mut changes = Vec::new();
    for (id, before) in deleted {
        let Some(state) = states.get(id) else {
            continue;
        };
        let mut effects = Vec::new();
        match policy.on_delete {
            OnDelete::Remove if state.status != LearnerStatus::Removed => {
                effects.push(Effect::Remove)
            }
            OnDelete::Remove => {}
            OnDelete::Suspend => {
                if state.status == LearnerStatus::Active {
                    effects.push(Effect::Suspend);
                }
                effects.extend(mapped(state).map(|g| Effect::Revoke(g.clone())));
            }
        }
        if !effects.is_empty() {
            changes.push(Change {
                learner: learner_ref(id, before),
                effects,
            });
        }
    }
    apply(lms, changes)
}

pub(crate) fn by_id(states: Vec<LearnerState>) -> HashMap<String, LearnerState> {
    states.into_iter().map(|s| (s.scim_id.clone(), s)).collect()
}

/// Grants mapping made (everything but manual grants).
fn mapped(state: &LearnerState) -> impl Iterator<Item = &Grant> {
    state.grants.iter().filter(|g| g.source != MANUAL)
}

fn apply(lms: &mut dyn LmsHost, changes: Vec<Change>) -> ScimResult<()> {
    if !changes.is_empty() {
        lms.apply(changes)?;
    }
    Ok(())
}

/// Brings the learners of `ids` to their users' state: profile (for users in
/// `upsert` and learners that do not exist yet), status first, then the
/// mapped grants. Users in `known` are not read again.
pub fn provision(
    ids: &[String],
    known: &HashMap<String, &Value>,
    upsert: &HashSet<String>,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
    mapper: &dyn Mapper,
) -> ScimResult<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let unread: Vec<String> = ids
        .iter()
        .filter(|id| !known.contains_key(*id))
        .cloned()
        .collect();
    let bodies: HashMap<String, String> = if unread.is_empty() {
        HashMap::new()
    } else {
        store
            .get_many(USER_TYPE.name, &unread)?
            .into_iter()
            .map(|d| (d.id, d.body))
            .collect()
    };
    let groups = group_facts(ids, store, mapper)?;
    let states = by_id(lms.learners(ids)?);
    let mut policy: Option<Policy> = None;
    // What a mapper that reads no attributes is shown of a user.
    let no_attributes = Value::Object(serde_json::Map::new());

    let mut status_changes = Vec::new();
    let mut grant_changes = Vec::new();
    let mut events = Vec::new();
    let mut asked: Vec<(usize, Grant)> = Vec::new();
    for id in ids {
        let state = states.get(id);
        // A learner whose profile is not rewritten needs only the user's
        // ids and `active` when the mapper reads no attributes: the rest of
        // the document is skipped, not built.
        let head_only = !mapper.reads_attributes() && state.is_some() && !upsert.contains(id);
        let parsed: Option<Value>;
        let user = match (known.get(id), bodies.get(id)) {
            (Some(user), _) => Some(User::Full(user)),
            (None, Some(body)) => match head_only
                .then(|| serde_json::from_str::<Head>(body).ok())
                .flatten()
            {
                Some(head) => Some(User::Head(head)),
                None => {
                    parsed = serde_json::from_str(body).ok();
                    parsed.as_ref().map(User::Full)
                }
            },
            (None, None) => None,
        };
        let Some(user) = user else {
            // The user is gone (deleted earlier): nothing is mapped to it.
            if let Some(state) = state {
                let effects: Vec<Effect> =
                    mapped(state).map(|g| Effect::Revoke(g.clone())).collect();
                if !effects.is_empty() {
                    grant_changes.push(Change {
                        learner: LearnerRef {
                            scim_id: id.clone(),
                            user_name: String::new(),
                            external_id: None,
                        },
                        effects,
                    });
                }
            }
            continue;
        };
        let (learner, active, resource) = match user {
            User::Full(user) => (learner_ref(id, user), is_active(user), user),
            User::Head(head) => {
                let active = head.active;
                (head.into_learner_ref(id), active, &no_attributes)
            }
        };
        let mut effects = Vec::new();
        if state.is_none() || upsert.contains(id) {
            effects.push(Effect::Upsert(profile(resource)));
        }
        match (state.map(|s| s.status), active) {
            (None | Some(LearnerStatus::Active), false) => effects.push(Effect::Suspend),
            (Some(LearnerStatus::Suspended | LearnerStatus::Removed), true) => {
                effects.push(Effect::Reactivate)
            }
            _ => {}
        }
        if !effects.is_empty() {
            status_changes.push(Change {
                learner: learner.clone(),
                effects,
            });
        }

        let empty = Vec::new();
        let facts = Facts {
            id,
            active,
            resource,
            groups: groups.get(id).unwrap_or(&empty),
        };
        let want: BTreeSet<Grant> = match mapper.desired(&facts) {
            Ok(w) => w.into_iter().collect(),
            Err(e) => {
                events.push(Event {
                    action: "map".into(),
                    resource_type: "Learner".into(),
                    resource_id: id.clone(),
                    resource_name: Some(learner.user_name.clone()),
                    status: EventStatus::Failure,
                    reason: Some(e.reason),
                    detail: Some(e.detail),
                    changes: Vec::new(),
                });
                continue;
            }
        };
        let held: BTreeSet<&Grant> = state.map(|s| mapped(s).collect()).unwrap_or_default();
        let withdrawn: BTreeSet<&Grant> = state
            .map(|s| s.withdrawn.iter().collect())
            .unwrap_or_default();
        if mapper.exclusive_role()
            && let Some(state) = state
        {
            events.extend(manual_role_mismatch(state, &want, &learner));
        }
        // A withdrawn grant no longer wanted is forgotten.
        let mut effects: Vec<Effect> = held
            .iter()
            .chain(&withdrawn)
            .filter(|g| !want.contains(**g))
            .map(|g| Effect::Revoke((*g).clone()))
            .collect();
        let index = grant_changes.len();
        for g in want.into_iter().filter(|g| !held.contains(g)) {
            if withdrawn.contains(&g) {
                let p = match &policy {
                    Some(p) => p,
                    None => policy.insert(lms.policy()?),
                };
                let restore = p.drift == Drift::Restore;
                events.push(drift_event(&learner, &g, restore));
                if !restore {
                    continue;
                }
            }
            if g.kind == GrantKind::Team {
                effects.push(Effect::Grant(g));
            } else {
                asked.push((index, g));
            }
        }
        grant_changes.push(Change { learner, effects });
    }

    // Suspensions and reactivations first: nothing below can hold them up.
    apply(lms, status_changes)?;

    // Roles and learning paths must exist in the catalogue. A strict
    // mapper's user with an unknown item keeps its state whole.
    let strict = mapper.strict_catalogue();
    let mut refused: HashSet<usize> = HashSet::new();
    for kind in [GrantKind::Role, GrantKind::LearningPath] {
        let names: BTreeSet<&String> = asked
            .iter()
            .filter(|(_, g)| g.kind == kind)
            .map(|(_, g)| &g.name)
            .collect();
        if names.is_empty() {
            continue;
        }
        let names: Vec<String> = names.into_iter().cloned().collect();
        let known: HashSet<String> = lms.known(kind, &names)?.into_iter().collect();
        for (i, g) in asked.iter().filter(|(_, g)| g.kind == kind) {
            let change = &mut grant_changes[*i];
            if known.contains(&g.name) {
                change.effects.push(Effect::Grant(g.clone()));
            } else if let Some(who) = &strict {
                refused.insert(*i);
                events.push(Event {
                    action: "map".into(),
                    resource_type: "Learner".into(),
                    resource_id: change.learner.scim_id.clone(),
                    resource_name: Some(change.learner.user_name.clone()),
                    status: EventStatus::Failure,
                    reason: Some("plugin-unknown-item".into()),
                    detail: Some(format!(
                        "The {} '{}' (from {}) is not in the LMS catalogue, so nothing the plugin returned for this learner was applied ({who}); add it to the catalogue or fix the plugin",
                        kind.as_str(),
                        g.name,
                        g.source
                    )),
                    changes: Vec::new(),
                });
            } else {
                // A role the catalogue lacks never takes the learner's
                // current role away: it keeps it until the new one exists.
                if kind == GrantKind::Role {
                    change
                        .effects
                        .retain(|e| !matches!(e, Effect::Revoke(r) if r.kind == GrantKind::Role));
                }
                events.push(Event {
                    action: "skip".into(),
                    resource_type: "Learner".into(),
                    resource_id: change.learner.scim_id.clone(),
                    resource_name: Some(change.learner.user_name.clone()),
                    status: EventStatus::Skipped,
                    reason: Some(format!("unknown-{}", kind_slug(kind))),
                    detail: Some(format!(
                        "The {} '{}' (from {}) is not in the LMS catalogue; it was not granted (add it to the catalogue; the next mapping grants it)",
                        kind.as_str(),
                        g.name,
                        g.source
                    )),
                    changes: Vec::new(),
                });
            }
        }
    }
    for i in refused {
        grant_changes[i].effects.clear();
    }
    grant_changes.retain(|c| !c.effects.is_empty());
    apply(lms, grant_changes)?;
    if !events.is_empty() {
        lms.append(events);
    }
    Ok(())
}

/// The facts' groups of each user, in id order (so a rule matching through
/// several groups always names the same one), with external ids when the
/// mapper reads them.
pub(crate) fn group_facts(
    ids: &[String],
    store: &mut dyn Store,
    mapper: &dyn Mapper,
) -> ScimResult<HashMap<String, Vec<GroupFact>>> {
    let mut groups: HashMap<String, Vec<GroupFact>> = HashMap::new();
    for (member, g) in store.groups_of(GROUP_TYPE.name, ids)? {
        groups.entry(member).or_default().push(GroupFact {
            id: g.id,
            display_name: g.label,
            external_id: None,
        });
    }
    if mapper.needs_group_external_ids() {
        let unique: BTreeSet<&String> = groups.values().flatten().map(|g| &g.id).collect();
        let unique: Vec<String> = unique.into_iter().cloned().collect();
        let external: HashMap<String, String> = store
            .get_many(GROUP_TYPE.name, &unique)?
            .into_iter()
            .filter_map(|d| {
                let v: Value = serde_json::from_str(&d.body).ok()?;
                Some((d.id, v.get("externalId")?.as_str()?.to_string()))
            })
            .collect();
        for g in groups.values_mut().flatten() {
            g.external_id = external.get(&g.id).cloned();
        }
    }
    for list in groups.values_mut() {
        list.sort_by(|a, b| a.id.cmp(&b.id));
    }
    Ok(groups)
}

/// A mapped grant someone removed by hand in the LMS, met again.
fn drift_event(learner: &LearnerRef, g: &Grant, restored: bool) -> Event {
    let (status, reason, outcome) = if restored {
        (EventStatus::Success, "restored", "mapping restored it")
    } else {
        (
            EventStatus::Skipped,
            "drift-reported",
            "the tenant's drift policy is 'report', so it stays removed",
        )
    };
    Event {
        action: "drift".into(),
        resource_type: "Learner".into(),
        resource_id: learner.scim_id.clone(),
        resource_name: Some(learner.user_name.clone()),
        status,
        reason: Some(reason.into()),
        detail: Some(format!(
            "The {} '{}' (from {}) was removed by hand in the LMS; {outcome}",
            g.kind.as_str(),
            g.name,
            g.source
        )),
        changes: Vec::new(),
    }
}

/// Manual roles beside a different mapped role: reported, never removed.
fn manual_role_mismatch(
    state: &LearnerState,
    want: &BTreeSet<Grant>,
    learner: &LearnerRef,
) -> Vec<Event> {
    let Some(mapped_role) = want.iter().find(|g| g.kind == GrantKind::Role) else {
        return Vec::new();
    };
    state
        .grants
        .iter()
        .filter(|g| g.source == MANUAL && g.kind == GrantKind::Role && g.name != mapped_role.name)
        .map(|g| Event {
            action: "mismatch".into(),
            resource_type: "Learner".into(),
            resource_id: learner.scim_id.clone(),
            resource_name: Some(learner.user_name.clone()),
            status: EventStatus::Skipped,
            reason: Some("manual-role-differs".into()),
            detail: Some(format!(
                "The learner holds the role '{}' by hand while mapping gives '{}' (from {}); manual grants are never removed by mapping",
                g.name, mapped_role.name, mapped_role.source
            )),
            changes: Vec::new(),
        })
        .collect()
}

fn kind_slug(kind: GrantKind) -> &'static str {
    match kind {
        GrantKind::Role => "role",
        GrantKind::Team => "team",
        GrantKind::LearningPath => "learning-path",
    }
}
