//! Folding a request's recorded writes into what changed per user and per
//! group, and describing those changes for the sync log.

use std::collections::{BTreeSet, HashMap};

use serde_json::Value;

use super::host::{AttributeChange, Event, EventStatus};
use super::record::Write;
use crate::schema::{GROUP_TYPE, USER_TYPE};

/// A user or group document before and after the request.
#[derive(Debug, Clone, PartialEq)]
pub struct DocChange {
    pub id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
}

impl DocChange {
    fn active(doc: &Option<Value>) -> Option<bool> {
        doc.as_ref().map(is_active)
    }

    /// The sync-log action for this change.
    pub fn action(&self) -> &'static str {
        match (&self.before, &self.after) {
            (None, _) => "create",
            (_, None) => "delete",
            _ => match (Self::active(&self.before), Self::active(&self.after)) {
                (Some(true), Some(false)) => "disable",
                (Some(false), Some(true)) => "enable",
                _ => "update",
            },
        }
    }
}

/// Whether a SCIM user is active; a user without `active` is.
pub fn is_active(user: &Value) -> bool {
    user.get("active").and_then(Value::as_bool).unwrap_or(true)
}

/// What one request changed.
#[derive(Debug, Default)]
pub struct ChangeSet {
    pub users: Vec<DocChange>,
    pub groups: Vec<DocChange>,
    /// Per group: members who joined and who left (net of each other).
    pub members: Vec<(String, BTreeSet<String>, BTreeSet<String>)>,
}

impl ChangeSet {
    /// Folds writes in order: the first body before and the last after.
    pub fn fold(writes: Vec<Write>) -> ChangeSet {
        let mut set = ChangeSet::default();
        let mut users: HashMap<String, usize> = HashMap::new();
        let mut groups: HashMap<String, usize> = HashMap::new();
        let mut members: HashMap<String, usize> = HashMap::new();
        let parse = |b: Option<String>| b.and_then(|b| serde_json::from_str::<Value>(&b).ok());
        for w in writes {
            match w {
                Write::Doc {
                    kind,
                    id,
                    before,
                    after,
                } => {
                    let (list, index) = if kind == USER_TYPE.name {
                        (&mut set.users, &mut users)
                    } else if kind == GROUP_TYPE.name {
                        (&mut set.groups, &mut groups)
                    } else {
                        continue;
                    };
                    match index.get(&id) {
                        Some(&i) => list[i].after = parse(after),
                        None => {
                            index.insert(id.clone(), list.len());
                            list.push(DocChange {
                                id,
                                before: parse(before),
                                after: parse(after),
                            });
                        }
                    }
                }
                Write::Members {
                    group,
                    joined,
                    left,
                } => {
                    let i = *members.entry(group.clone()).or_insert_with(|| {
                        set.members.push((group, BTreeSet::new(), BTreeSet::new()));
                        set.members.len() - 1
                    });
                    let (_, j, l) = &mut set.members[i];
                    for id in joined {
                        if !l.remove(&id) {
                            j.insert(id);
                        }
                    }
                    for id in left {
                        if !j.remove(&id) {
                            l.insert(id);
                        }
                    }
                }
            }
        }
        set
    }

    /// Sync-log events for the SCIM resources the request changed. Groups
    /// whose only change is `meta` (a member's deletion touched them) and
    /// whose membership did not change are left out.
    pub fn events(&self) -> Vec<Event> {
        let mut out = Vec::new();
        for u in &self.users {
            out.push(doc_event(USER_TYPE.name, u, "userName", Vec::new()));
        }
        let membership = |id: &str| {
            self.members
                .iter()
                .find(|(g, _, _)| g == id)
                .map(|(_, j, l)| (j, l))
        };
        for g in &self.groups {
            let mut extra = Vec::new();
            if let Some((joined, left)) = membership(&g.id) {
                extra.push(members_change(joined, left));
            }
            let e = doc_event(GROUP_TYPE.name, g, "displayName", extra);
            if !e.changes.is_empty() || e.action != "update" {
                out.push(e);
            }
        }
        // Membership changes to groups whose document was not rewritten.
        for (group, joined, left) in &self.members {
            if !self.groups.iter().any(|g| &g.id == group) {
                out.push(Event {
                    action: "update".into(),
                    resource_type: GROUP_TYPE.name.into(),
                    resource_id: group.clone(),
                    resource_name: None,
                    status: EventStatus::Success,
                    reason: None,
                    detail: None,
                    changes: vec![members_change(joined, left)],
                });
            }
        }
        out
    }
}

/// Member ids listed per event, at most; the counts are always complete.
const LISTED_MEMBERS: usize = 50;

fn members_change(joined: &BTreeSet<String>, left: &BTreeSet<String>) -> AttributeChange {
    let list = |s: &BTreeSet<String>| {
        let ids: Vec<&String> = s.iter().take(LISTED_MEMBERS).collect();
        serde_json::json!({"count": s.len(), "ids": ids}).to_string()
    };
    AttributeChange {
        name: "members".into(),
        old: (!left.is_empty()).then(|| list(left)),
        new: (!joined.is_empty()).then(|| list(joined)),
    }
}

fn doc_event(kind: &str, c: &DocChange, name_attr: &str, extra: Vec<AttributeChange>) -> Event {
    let doc = c.after.as_ref().or(c.before.as_ref());
    let mut changes = attribute_changes(c.before.as_ref(), c.after.as_ref());
    changes.extend(extra);
    Event {
        action: c.action().into(),
        resource_type: kind.into(),
        resource_id: c.id.clone(),
        resource_name: doc
            .and_then(|d| d.get(name_attr))
            .and_then(Value::as_str)
            .map(str::to_string),
        status: EventStatus::Success,
        reason: None,
        detail: None,
        changes,
    }
}

/// Attributes never written to the log.
const SECRET: &[&str] = &["password"];
/// Attributes that are not the client's data.
const SKIPPED: &[&str] = &["id", "meta", "schemas", "members"];

/// The client attributes that differ between two bodies, one level into
/// complex attributes and extensions (`name.givenName`), values as JSON.
pub fn attribute_changes(before: Option<&Value>, after: Option<&Value>) -> Vec<AttributeChange> {
    let empty = serde_json::Map::new();
    let b = before.and_then(Value::as_object).unwrap_or(&empty);
    let a = after.and_then(Value::as_object).unwrap_or(&empty);
    let mut out = Vec::new();
    let mut keys: Vec<&String> = b.keys().chain(a.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if SKIPPED.contains(&k.as_str()) {
            continue;
        }
        let (old, new) = (b.get(k), a.get(k));
        if old == new {
            continue;
        }
        let nested = |v: Option<&Value>| matches!(v, Some(Value::Object(_)) | None);
        if nested(old) && nested(new) {
            let sep = if k.starts_with("urn:") { ":" } else { "." };
            for mut c in attribute_changes(old, new) {
                c.name = format!("{k}{sep}{}", c.name);
                out.push(c);
            }
            continue;
        }
        let text = |v: Option<&Value>| {
            v.map(|v| {
                if SECRET.contains(&k.as_str()) {
                    "\"[redacted]\"".to_string()
                } else {
                    v.to_string()
                }
            })
        };
        out.push(AttributeChange {
            name: k.clone(),
            old: text(old),
            new: text(new),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc(kind: &str, id: &str, before: Option<Value>, after: Option<Value>) -> Write {
        Write::Doc {
            kind: kind.into(),
            id: id.into(),
            before: before.map(|v| v.to_string()),
            after: after.map(|v| v.to_string()),
        }
    }

    #[test]
    fn folds_first_before_and_last_after() {
        let set = ChangeSet::fold(vec![
            doc(
                "User",
                "u",
                Some(json!({"active": true})),
                Some(json!({"active": true, "title": "a"})),
            ),
            doc(
                "User",
                "u",
                Some(json!({"active": true, "title": "a"})),
                Some(json!({"active": false})),
            ),
        ]);
        assert_eq!(set.users.len(), 1);
        assert_eq!(set.users[0].action(), "disable");
        let ev = set.events();
        let names: Vec<&str> = ev[0].changes.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["active"]);
    }

    #[test]
    fn membership_changes_cancel_out() {
        let set = ChangeSet::fold(vec![
            Write::Members {
                group: "g".into(),
                joined: vec!["a".into(), "b".into()],
                left: vec![],
            },
            Write::Members {
                group: "g".into(),
                joined: vec![],
                left: vec!["a".into(), "c".into()],
            },
        ]);
        let (_, joined, left) = &set.members[0];
        assert_eq!(joined.iter().collect::<Vec<_>>(), ["b"]);
        assert_eq!(left.iter().collect::<Vec<_>>(), ["c"]);
    }

    #[test]
    fn nested_and_extension_changes_are_named_by_path() {
        let ext = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
        let before =
            json!({"name": {"givenName": "A"}, ext: {"department": "X"}, "meta": {"v": 1}});
        let after = json!({"name": {"givenName": "B"}, ext: {"department": "Y"}, "meta": {"v": 2}, "password": "p"});
        let c = attribute_changes(Some(&before), Some(&after));
        let names: Vec<&str> = c.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(
            names,
            ["name.givenName", "password", &format!("{ext}:department")]
        );
        assert_eq!(c[1].new.as_deref(), Some("\"[redacted]\""));
        assert_eq!(c[0].old.as_deref(), Some("\"A\""));
    }
}
