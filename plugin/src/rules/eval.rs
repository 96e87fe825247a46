//! Evaluating rules for one user: which rules match and through what, the
//! role conflict, the names templates produce, and a trace of every step
//! for explain.

use super::Rules;
use super::model::{Condition, Op, Part, Template, Test};
use crate::mapper::{Explanation, Facts, RuleOutcome, Trace, group_key, group_source, group_team};
use crate::mapper::{Grant, GrantKind};

/// The most names one template may expand to (one per attribute value).
const MAX_EXPANSION: usize = 100;

/// A condition's result and the group or attribute it held through.
type Hit = (bool, Option<String>);

impl Rules {
    /// The grants for `facts`, with an account of how they came about when
    /// `explain` is set (the hot path builds no text).
    pub fn evaluate(&self, facts: &Facts, explain: bool) -> Explanation {
        let mut out = Explanation::default();
        if !facts.active {
            out.notes
                .push("the user is inactive: it holds nothing mapped".into());
            return out;
        }
        // (priority, position, role, source) of every matched rule's role.
        let mut roles: Vec<(i64, usize, String, String)> = Vec::new();
        for (i, rule) in self.doc.rules.iter().enumerate() {
            let mut trace = explain.then(Vec::new);
            let (matched, via) = match &rule.when {
                Some(c) => eval(c, facts, trace.as_mut()),
                None => (true, None),
            };
            if !matched && !explain {
                continue;
            }
            let mut outcome = RuleOutcome {
                rule: rule.name.0.clone(),
                priority: rule.priority,
                matched,
                via: via.clone(),
                condition: trace.and_then(|mut t| t.pop()),
                notes: Vec::new(),
            };
            if matched {
                let source = format!(
                    "rules:{}@{}",
                    rule.name.0,
                    via.as_deref().unwrap_or("always")
                );
                let names = |t: &Template, kind: GrantKind, outcome: &mut RuleOutcome| {
                    let names = render(t, facts);
                    if names.is_empty() && explain {
                        outcome.notes.push(format!(
                            "'{}' names nothing for this user (an attribute it uses has no value)",
                            t.written
                        ));
                    }
                    names
                        .into_iter()
                        .map(|name| Grant {
                            kind,
                            name,
                            source: source.clone(),
                        })
                        .collect::<Vec<_>>()
                };
                if let Some(t) = &rule.grant.role {
                    for g in names(t, GrantKind::Role, &mut outcome).into_iter().take(1) {
                        roles.push((rule.priority, i, g.name, g.source));
                    }
                }
                for t in &rule.grant.teams {
                    out.grants.extend(names(t, GrantKind::Team, &mut outcome));
                }
                for t in &rule.grant.learning_paths {
                    out.grants
                        .extend(names(t, GrantKind::LearningPath, &mut outcome));
                }
            }
            if explain || matched {
                out.rules.push(outcome);
            }
        }
        // The role admits one value: highest priority, then earliest rule.
        roles.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        match roles.first() {
            Some((_, wi, role, source)) => {
                out.grants.push(Grant {
                    kind: GrantKind::Role,
                    name: role.clone(),
                    source: source.clone(),
                });
                if explain {
                    let winner = self.doc.rules[*wi].name.0.clone();
                    for (p, i, r, _) in &roles[1..] {
                        if let Some(o) = out
                            .rules
                            .iter_mut()
                            .find(|o| o.rule == self.doc.rules[*i].name.0)
                        {
                            o.notes.push(format!(
                                "its role '{r}' (priority {p}) lost to '{role}' from rule '{winner}': a learner has one mapped role"
                            ));
                        }
                    }
                }
            }
            None if !self.doc.default_role.is_empty() => {
                out.grants.push(Grant {
                    kind: GrantKind::Role,
                    name: self.doc.default_role.clone(),
                    source: DEFAULT_ROLE_SOURCE.into(),
                });
                if explain {
                    out.notes.push(format!(
                        "no matching rule grants a role: the default role '{}' applies",
                        self.doc.default_role
                    ));
                }
            }
            None => {}
        }
        if self.doc.groups_as_teams {
            for g in facts.groups {
                if let Some(name) = group_team(g.display_name.as_deref()) {
                    out.grants.push(Grant {
                        kind: GrantKind::Team,
                        name: name.to_string(),
                        source: group_source(&g.id),
                    });
                }
            }
            if explain && !facts.groups.is_empty() {
                out.notes
                    .push("groups_as_teams: each group is a team of its name".into());
            }
        }
        out.grants.sort();
        out.grants.dedup();
        out
    }
}

/// Source of the default role under rules: the default mapping's, so that
/// installing rules that keep the role `learner` rewrites nothing for the
/// learners no rule gives another role.
pub const DEFAULT_ROLE_SOURCE: &str = crate::mapper::LEARNER_SOURCE;

fn eval(c: &Condition, facts: &Facts, trace: Option<&mut Vec<Trace>>) -> Hit {
    match c {
        Condition::Test(t) => test(t, facts, trace),
        Condition::Not(inner) => {
            let mut children = trace.as_ref().map(|_| Vec::new());
            let (r, _) = eval(inner, facts, children.as_mut());
            if let Some(t) = trace {
                t.push(Trace {
                    test: "not".into(),
                    result: !r,
                    values: None,
                    children: children.unwrap_or_default(),
                });
            }
            (!r, None)
        }
        Condition::All(list) | Condition::Any(list) => {
            let all = matches!(c, Condition::All(_));
            let mut children = trace.as_ref().map(|_| Vec::new());
            let mut result = all;
            let mut via: Option<String> = None;
            for child in list {
                let (r, v) = eval(child, facts, children.as_mut());
                // `any` holds through its first condition that holds (where
                // it stops when not tracing, so explain gives the same
                // source); `all` through all of them.
                if r && (all || !result) {
                    // A group beats an attribute as the reason: a group's
                    // grants are found again when it is renamed or deleted.
                    let better = match (&via, &v) {
                        (None, Some(_)) => true,
                        (Some(cur), Some(new)) => {
                            !cur.starts_with("group:") && new.starts_with("group:")
                        }
                        _ => false,
                    };
                    if better {
                        via = v;
                    }
                }
                if all && !r {
                    result = false;
                    if children.is_none() {
                        break;
                    }
                }
                if !all && r {
                    result = true;
                    if children.is_none() {
                        break;
                    }
                }
            }
            if let Some(t) = trace {
                t.push(Trace {
                    test: if all { "all" } else { "any" }.into(),
                    result,
                    values: None,
                    children: children.unwrap_or_default(),
                });
            }
            (result, if result { via } else { None })
        }
    }
}

fn test(t: &Test, facts: &Facts, trace: Option<&mut Vec<Trace>>) -> Hit {
    let values = t.attr.values(facts);
    let mut hit: Option<Option<&str>> = None;
    let result = match &t.op {
        Op::Present(want) => values.is_empty() != *want,
        op => {
            hit = values
                .iter()
                .find(|(v, _)| compare(op, v))
                .map(|(_, group)| *group);
            hit.is_some()
        }
    };
    let via = result.then(|| match hit.flatten() {
        Some(group) => group_key(group),
        None => format!("attr:{}", t.attr),
    });
    if let Some(tr) = trace {
        tr.push(Trace {
            test: describe(t),
            result,
            values: Some(values.into_iter().map(|(v, _)| v.into_owned()).collect()),
            children: Vec::new(),
        });
    }
    (result, via)
}

fn compare(op: &Op, v: &str) -> bool {
    match op {
        Op::Equals(x) => v == x,
        Op::EqualsIgnoreCase(x, lower) => {
            v.eq_ignore_ascii_case(x) || v.chars().flat_map(char::to_lowercase).eq(lower.chars())
        }
        Op::In(list) => list.iter().any(|x| x == v),
        Op::Glob(g) => g.pattern.matches(v),
        Op::Regex(p) => p.is_match(v),
        Op::Present(_) => true,
    }
}

fn describe(t: &Test) -> String {
    let a = &t.attr;
    match &t.op {
        Op::Equals(x) => format!("{a} equals {x:?}"),
        Op::EqualsIgnoreCase(x, _) => format!("{a} equals {x:?} ignoring case"),
        Op::In(list) => format!("{a} in {list:?}"),
        Op::Glob(g) => format!("{a} glob {:?}", g.written),
        Op::Regex(p) => format!("{a} regex {:?}", p.written),
        Op::Present(true) => format!("{a} present"),
        Op::Present(false) => format!("{a} absent"),
    }
}

/// The names a template produces for a user: one per combination of its
/// attributes' values, none when one has no value.
fn render(t: &Template, facts: &Facts) -> Vec<String> {
    let mut names = vec![String::new()];
    for part in &t.parts {
        match part {
            Part::Text(s) => names.iter_mut().for_each(|n| n.push_str(s)),
            Part::Attr(a) => {
                // Blank values are left out: they would make partial names.
                let values = a.values(facts);
                let mut next = Vec::new();
                for n in &names {
                    for (v, _) in &values {
                        if next.len() < MAX_EXPANSION {
                            next.push(format!("{n}{v}"));
                        }
                    }
                }
                names = next;
            }
        }
    }
    let mut out: Vec<String> = names
        .into_iter()
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    out.dedup();
    out
}
