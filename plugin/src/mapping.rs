//! Which mapping applies to a tenant, and the two ways to look at one
//! without applying it: preview (every user's difference) and explain (one
//! user, step by step).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use crate::error::{ScimError, ScimResult, ScimType};
use crate::mapper::plugin::PluginMapper;
use crate::mapper::{DefaultMapper, Explanation, Facts, MapError, Mapper};
use crate::provision::changes::is_active;
use crate::provision::host::{Grant, GrantKind, LearnerState, LmsHost, MANUAL};
use crate::provision::sync::{by_id, group_facts, users_page};
use crate::rules::{self, Diagnostic};
use crate::schema::USER_TYPE;
use crate::store::{Page, Selection, Store};

/// The mapping a preview or explain runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Choice {
    /// What the tenant has installed (rules, else the default mapping).
    Installed,
    /// The default mapping, as if the rules were removed.
    Default,
    /// A candidate rules document.
    Document(String),
    /// The plugin the host supplies (a candidate under preview).
    Plugin,
}

/// Installed rules that no longer parse (an engine upgrade that reads them
/// differently): every user's mapping fails and is recorded, nothing is
/// taken away, and suspensions still happen.
struct Broken(String);

impl Mapper for Broken {
    fn desired(&self, _: &Facts) -> Result<Vec<Grant>, MapError> {
        Err(MapError {
            reason: "rules-invalid".into(),
            detail: format!(
                "The installed rules cannot be read ({}); fix them with `scim-host mapping check` and install them again",
                self.0
            ),
        })
    }

    fn name(&self) -> &'static str {
        "rules"
    }
}

/// The plugin the host runs for this call, as a mapper.
fn plugin(lms: &mut dyn LmsHost) -> ScimResult<Option<Box<dyn Mapper>>> {
    let Some((info, runner)) = lms.plugin() else {
        return Ok(None);
    };
    let denied = lms.policy()?.plugin_denied_roles;
    Ok(Some(Box::new(PluginMapper::new(info, runner, &denied))))
}

/// The tenant's mapper: its plugin (the host leaves out a disabled one),
/// else its installed rules, else the default mapping.
pub fn installed(lms: &mut dyn LmsHost) -> ScimResult<Box<dyn Mapper>> {
    if let Some(p) = plugin(lms)? {
        return Ok(p);
    }
    Ok(match lms.mapping()? {
        None => Box::new(DefaultMapper),
        Some(text) => match rules::parse_installed(&text) {
            Ok(r) => Box::new(r),
            Err(d) => Box::new(Broken(
                d.first().map(ToString::to_string).unwrap_or_default(),
            )),
        },
    })
}

/// The mapper a choice names; a candidate that does not parse is a 400
/// listing its problems.
pub fn chosen(choice: &Choice, lms: &mut dyn LmsHost) -> ScimResult<Box<dyn Mapper>> {
    match choice {
        Choice::Installed => installed(lms),
        Choice::Default => Ok(Box::new(DefaultMapper)),
        Choice::Document(text) => rules::parse(text)
            .map(|r| Box::new(r) as Box<dyn Mapper>)
            .map_err(|d| invalid_rules(&d)),
        Choice::Plugin => plugin(lms)?.ok_or_else(|| {
            ScimError::new(
                400,
                Some(ScimType::InvalidValue),
                "No plugin was supplied to run".to_string(),
            )
        }),
    }
}

fn invalid_rules(d: &[Diagnostic]) -> ScimError {
    let lines: Vec<String> = d.iter().map(ToString::to_string).collect();
    ScimError::new(
        400,
        Some(ScimType::InvalidValue),
        format!("The rules document has problems: {}", lines.join("; ")),
    )
}

/// A role, team or learning path, whatever its source.
pub type Item = (GrantKind, String);

/// One user's difference under a candidate mapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserPreview {
    pub scim_id: String,
    pub user_name: String,
    /// Items the learner would hold and does not now.
    pub gains: Vec<Item>,
    /// Items the learner holds now and would not.
    pub losses: Vec<Item>,
    /// Gains the LMS catalogue lacks: they would be skipped.
    pub skipped: Vec<Item>,
    /// The mapping failed for this user (reason: detail).
    pub failure: Option<String>,
}

/// One page of a preview.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviewPage {
    /// Users visited in this page.
    pub scanned: u32,
    /// Users with a difference or a failure.
    pub users: Vec<UserPreview>,
    /// Where the next page starts; `None` after the last user.
    pub next: Option<String>,
}

/// Runs `mapper` over one page of the tenant's users, applying nothing.
pub fn preview(
    mapper: &dyn Mapper,
    after: Option<&str>,
    limit: u32,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
) -> ScimResult<PreviewPage> {
    let limit = limit.clamp(1, 5000);
    let after = after
        .map(|c| {
            c.parse::<u64>().map_err(|_| {
                ScimError::new(
                    400,
                    Some(ScimType::InvalidValue),
                    format!("'{c}' is not a preview cursor"),
                )
            })
        })
        .transpose()?;
    let (users, next) = users_page(store, after, limit)?;
    let ids: Vec<String> = users.iter().map(|(id, _)| id.clone()).collect();
    let groups = group_facts(&ids, store, mapper)?;
    let states = by_id(lms.learners(&ids)?);
    let empty = Vec::new();
    let mut out = Vec::new();
    for (id, user) in &users {
        let facts = Facts {
            id,
            active: is_active(user),
            resource: user,
            groups: groups.get(id).unwrap_or(&empty),
        };
        let user_name = user
            .get("userName")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        let mut p = UserPreview {
            scim_id: id.clone(),
            user_name,
            gains: Vec::new(),
            losses: Vec::new(),
            skipped: Vec::new(),
            failure: None,
        };
        match mapper.desired(&facts) {
            Err(e) => p.failure = Some(e.to_string()),
            Ok(want) => {
                let (gains, losses) = difference(states.get(id), &want);
                p.gains = gains;
                p.losses = losses;
            }
        }
        if p.failure.is_some() || !p.gains.is_empty() || !p.losses.is_empty() {
            out.push(p);
        }
    }
    mark_unknown(&mut out, lms)?;
    if let Some(who) = mapper.strict_catalogue() {
        for u in out.iter_mut().filter(|u| !u.skipped.is_empty()) {
            let names: Vec<&str> = u.skipped.iter().map(|(_, n)| n.as_str()).collect();
            u.failure = Some(format!(
                "plugin-unknown-item: not in the LMS catalogue: {}; nothing would be applied ({who})",
                names.join(", ")
            ));
            u.gains.clear();
            u.losses.clear();
        }
    }
    out.retain(|u| {
        u.failure.is_some() || !u.gains.is_empty() || !u.losses.is_empty() || !u.skipped.is_empty()
    });
    Ok(PreviewPage {
        scanned: users.len() as u32,
        users: out,
        next,
    })
}

/// Items gained and lost, whatever their source: a learner holding a team
/// by hand gains nothing when a rule grants it too.
fn difference(state: Option<&LearnerState>, want: &[Grant]) -> (Vec<Item>, Vec<Item>) {
    let item = |g: &Grant| (g.kind, g.name.clone());
    let now: BTreeSet<Item> = state
        .map(|s| s.grants.iter().map(item).collect())
        .unwrap_or_default();
    let manual = state
        .into_iter()
        .flat_map(|s| &s.grants)
        .filter(|g| g.source == MANUAL)
        .map(item);
    let after: BTreeSet<Item> = want.iter().map(item).chain(manual).collect();
    (
        after.difference(&now).cloned().collect(),
        now.difference(&after).cloned().collect(),
    )
}

/// Moves gains the catalogue lacks to `skipped` (teams are made on demand).
fn mark_unknown(users: &mut [UserPreview], lms: &mut dyn LmsHost) -> ScimResult<()> {
    for kind in [GrantKind::Role, GrantKind::LearningPath] {
        let names: BTreeSet<&String> = users
            .iter()
            .flat_map(|u| &u.gains)
            .filter(|(k, _)| *k == kind)
            .map(|(_, n)| n)
            .collect();
        if names.is_empty() {
            continue;
        }
        let names: Vec<String> = names.into_iter().cloned().collect();
        let known: BTreeSet<String> = lms.known(kind, &names)?.into_iter().collect();
        for u in users.iter_mut() {
            let (keep, skip): (Vec<_>, Vec<_>) = std::mem::take(&mut u.gains)
                .into_iter()
                .partition(|(k, n)| *k != kind || known.contains(n));
            // As in provisioning: a skipped role keeps the current one.
            if kind == GrantKind::Role && !skip.is_empty() {
                u.losses.retain(|(k, _)| *k != GrantKind::Role);
            }
            u.gains = keep;
            u.skipped.extend(skip);
        }
    }
    Ok(())
}

/// Friendly attributes shown among a user's facts.
const SHOWN: &[&str] = &[
    "userName",
    "externalId",
    "title",
    "userType",
    "department",
    "division",
    "costCenter",
    "organization",
    "manager",
    "locale",
    "country",
    "locality",
    "email_domain",
];

/// Everything about one user's mapping, applying nothing: the facts the
/// mapper saw, each rule's outcome and why, the desired and current state,
/// and the effects mapping would apply.
pub fn explain(
    mapper: &dyn Mapper,
    user_id: &str,
    store: &mut dyn Store,
    lms: &mut dyn LmsHost,
) -> ScimResult<Value> {
    let doc = match store.get(USER_TYPE.name, user_id)? {
        Some(d) => d,
        None => by_user_name(store, user_id)?.ok_or_else(|| {
            ScimError::new(
                404,
                None,
                format!("No user has the id or userName '{user_id}'"),
            )
        })?,
    };
    let user_id = doc.id.as_str();
    let user: Value = serde_json::from_str(&doc.body)
        .map_err(|e| ScimError::new(500, None, format!("unreadable stored user: {e}")))?;
    let ids = [user_id.to_string()];
    let groups = group_facts(&ids, store, mapper)?;
    let empty = Vec::new();
    let facts = Facts {
        id: user_id,
        active: is_active(&user),
        resource: &user,
        groups: groups.get(user_id).unwrap_or(&empty),
    };
    let state = by_id(lms.learners(&ids)?).remove(user_id);
    let mut attributes = BTreeMap::new();
    for name in SHOWN {
        if let Ok(a) = rules::attr::AttrRef::parse(name) {
            let values: Vec<String> = a
                .values(&facts)
                .into_iter()
                .map(|(v, _)| v.into_owned())
                .collect();
            if !values.is_empty() {
                attributes.insert(*name, values);
            }
        }
    }
    let facts_json = json!({
        "active": facts.active,
        "groups": facts.groups.iter().map(|g| json!({
            "id": g.id, "displayName": g.display_name, "externalId": g.external_id,
        })).collect::<Vec<_>>(),
        "attributes": attributes,
    });
    let explanation = mapper.explain(&facts);
    let current = state.as_ref().map(|s| {
        json!({
            "status": match s.status {
                crate::provision::host::LearnerStatus::Active => "active",
                crate::provision::host::LearnerStatus::Suspended => "suspended",
                crate::provision::host::LearnerStatus::Removed => "removed",
            },
            "grants": s.grants.iter().map(grant_json).collect::<Vec<_>>(),
            "withdrawn": s.withdrawn.iter().map(grant_json).collect::<Vec<_>>(),
        })
    });
    let mut out = json!({
        "user": {
            "id": user_id,
            "userName": user.get("userName"),
            "active": facts.active,
        },
        "mapper": mapper.name(),
        "facts": facts_json,
        "current": current,
    });
    match explanation {
        Err(e) => {
            out["failure"] = json!({"reason": e.reason, "detail": e.detail});
            out["effects"] = json!([]);
        }
        Ok(Explanation {
            rules,
            notes,
            grants,
        }) => {
            out["rules"] = serde_json::to_value(&rules).unwrap_or(Value::Null);
            out["notes"] = json!(notes);
            out["desired"] = json!(grants.iter().map(grant_json).collect::<Vec<_>>());
            out["effects"] = json!(effects(state.as_ref(), &grants, &facts, lms)?);
        }
    }
    if state.is_none() {
        out["notes"]
            .as_array_mut()
            .get_or_insert(&mut Vec::new())
            .push(json!(
                "the LMS has no learner for this user yet: the next change to it creates one"
            ));
    }
    Ok(out)
}

/// The user whose `userName` is `name` (compared as SCIM does, ignoring
/// case), so admins can explain a user by the name they know.
fn by_user_name(store: &mut dyn Store, name: &str) -> ScimResult<Option<crate::store::Document>> {
    let Some(attr) = USER_TYPE.core_attribute("userName") else {
        return Ok(None);
    };
    let selection = Selection::Term(crate::store::TermQuery {
        name: "userName".into(),
        matches: crate::store::TermMatch::Exact(crate::resource::terms::fold(attr, name)),
    });
    Ok(store
        .scan(USER_TYPE.name, &selection, Page::after(None, 1))?
        .into_iter()
        .next())
}

fn grant_json(g: &Grant) -> Value {
    json!({"kind": g.kind.as_str(), "name": g.name, "source": g.source})
}

/// The effects mapping would apply to bring the learner to `want`.
fn effects(
    state: Option<&LearnerState>,
    want: &[Grant],
    facts: &Facts,
    lms: &mut dyn LmsHost,
) -> ScimResult<Vec<Value>> {
    let mut out = Vec::new();
    if let Some(s) = state {
        let active = s.status == crate::provision::host::LearnerStatus::Active;
        if active && !facts.active {
            out.push(json!({"effect": "suspend"}));
        } else if !active && facts.active {
            out.push(json!({"effect": "reactivate"}));
        }
    }
    let held: BTreeSet<&Grant> = state
        .into_iter()
        .flat_map(|s| s.grants.iter().filter(|g| g.source != MANUAL))
        .collect();
    let withdrawn: BTreeSet<&Grant> = state.into_iter().flat_map(|s| &s.withdrawn).collect();
    let want_set: BTreeSet<&Grant> = want.iter().collect();
    let mut known: HashMap<GrantKind, BTreeSet<String>> = HashMap::new();
    for kind in [GrantKind::Role, GrantKind::LearningPath] {
        let names: Vec<String> = want
            .iter()
            .filter(|g| g.kind == kind)
            .map(|g| g.name.clone())
            .collect();
        if !names.is_empty() {
            known.insert(kind, lms.known(kind, &names)?.into_iter().collect());
        }
    }
    let unknown = |g: &Grant| known.get(&g.kind).is_some_and(|k| !k.contains(&g.name));
    // As in provisioning: a role the catalogue lacks keeps the current one.
    let role_skipped = want
        .iter()
        .any(|g| g.kind == GrantKind::Role && !held.contains(g) && unknown(g));
    for g in held.iter().chain(&withdrawn) {
        let keep_role = role_skipped && g.kind == GrantKind::Role;
        if !want_set.contains(*g) && !keep_role {
            out.push(json!({"effect": "revoke", "kind": g.kind.as_str(), "name": g.name, "source": g.source}));
        }
    }
    for g in want.iter().filter(|g| !held.contains(g)) {
        let mut e =
            json!({"effect": "grant", "kind": g.kind.as_str(), "name": g.name, "source": g.source});
        if withdrawn.contains(g) {
            e["note"] = json!(
                "removed by hand earlier (drift): restored or reported as the tenant's drift policy says"
            );
        }
        if unknown(g) {
            e["note"] = json!(if g.kind == GrantKind::Role {
                "not in the LMS catalogue: it would be skipped and recorded, and the current role kept"
            } else {
                "not in the LMS catalogue: it would be skipped and recorded"
            });
        }
        out.push(e);
    }
    Ok(out)
}
