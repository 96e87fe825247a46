//! The attributes a rule can test or put in a name: friendly aliases for
//! what organisations map on (department, country, email domain, groups…)
//! and any SCIM attribute path, core or extension. Every lookup yields the
//! attribute's values as text; a missing attribute yields none, so it never
//! matches and never produces a name.

use std::borrow::Cow;
use std::fmt;

use serde_json::Value;

use crate::mapper::Facts;
use crate::schema::{ENTERPRISE_USER_SCHEMA, USER_TYPE, looks_like_urn};

/// What an attribute reference reads.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// Display names of the user's groups.
    GroupNames,
    GroupIds,
    GroupExternalIds,
    /// The part after `@` of each email address, lower-cased.
    EmailDomain,
    /// A path in the SCIM resource: the object it starts in (`None` for the
    /// top level, else a schema URN) and the attribute names below it.
    Path {
        schema: Option<String>,
        names: Vec<String>,
    },
}

/// A checked attribute reference, as written in the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttrRef {
    written: String,
    source: Source,
}

impl fmt::Display for AttrRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.written)
    }
}

/// Friendly names and what they read. Enterprise attributes are listed so
/// they can be written without their URN.
const ALIASES: &[(&str, &str)] = &[
    ("department", "enterprise:department"),
    ("division", "enterprise:division"),
    ("costCenter", "enterprise:costCenter"),
    ("organization", "enterprise:organization"),
    ("employeeNumber", "enterprise:employeeNumber"),
    ("manager", "enterprise:manager.value"),
    ("country", "addresses.country"),
    ("locality", "addresses.locality"),
    ("region", "addresses.region"),
    ("email", "emails.value"),
];

/// Names accepted besides SCIM paths, for error messages.
pub const FRIENDLY: &str = "groups, group_ids, group_external_ids, email_domain, department, division, costCenter, organization, employeeNumber, manager, country, locality, region, email";

impl AttrRef {
    /// Parses and checks a reference: a friendly name, a core attribute path
    /// (`title`, `name.familyName`, `addresses.country`) or a URN-qualified
    /// extension path (`urn:…:User:badge`, any extension, including ones
    /// this engine does not define).
    pub fn parse(written: &str) -> Result<AttrRef, String> {
        let w = written.trim();
        if w.is_empty() {
            return Err("an attribute name is empty".into());
        }
        let source = match w.to_ascii_lowercase().as_str() {
            "groups" | "group" => Source::GroupNames,
            "group_ids" | "group_id" => Source::GroupIds,
            "group_external_ids" | "group_external_id" => Source::GroupExternalIds,
            "email_domain" => Source::EmailDomain,
            lower => match ALIASES.iter().find(|(a, _)| a.eq_ignore_ascii_case(lower)) {
                Some((_, target)) => match target.strip_prefix("enterprise:") {
                    Some(rest) => path(Some(ENTERPRISE_USER_SCHEMA), rest, w)?,
                    None => path(None, target, w)?,
                },
                None if looks_like_urn(w) => {
                    match USER_TYPE.split_urn(w) {
                        Some((schema, rest)) if !rest.is_empty() => {
                            let top = (schema.id != USER_TYPE.schema.id).then_some(schema.id);
                            path(top, rest, w)?
                        }
                        Some(_) => return Err(format!("'{w}' names a schema, not an attribute")),
                        // An extension this engine does not define: the
                        // attribute follows the last ':'.
                        None => match w.rsplit_once(':') {
                            Some((urn, rest)) if !rest.is_empty() => path(Some(urn), rest, w)?,
                            _ => return Err(format!("'{w}' has no attribute after its URN")),
                        },
                    }
                }
                None => {
                    let top = w.split('.').next().unwrap_or(w);
                    if USER_TYPE.core_attribute(top).is_none() {
                        return Err(format!(
                            "unknown attribute '{w}': use a User attribute (e.g. title, userType, name.familyName, addresses.country), a URN-qualified extension attribute, or one of: {FRIENDLY}"
                        ));
                    }
                    path(None, w, w)?
                }
            },
        };
        Ok(AttrRef {
            written: w.to_string(),
            source,
        })
    }

    /// Whether this reads a group's external id (the engine fetches those
    /// only when some rule needs them).
    pub fn needs_group_external_ids(&self) -> bool {
        self.source == Source::GroupExternalIds
    }

    /// Whether this reads group display names.
    pub fn reads_group_names(&self) -> bool {
        self.source == Source::GroupNames
    }

    /// Whether this reads group memberships.
    pub fn is_group(&self) -> bool {
        matches!(
            self.source,
            Source::GroupNames | Source::GroupIds | Source::GroupExternalIds
        )
    }

    /// The attribute's values for one user, with the id of the group each
    /// came from for group references. Blank values count as missing, as
    /// RFC 7643 treats empty and unassigned alike. Values are borrowed from
    /// the facts where they can be: this runs for every test of every user.
    pub fn values<'f>(&self, facts: &'f Facts) -> Vec<(Cow<'f, str>, Option<&'f str>)> {
        let mut out: Vec<(Cow<'f, str>, Option<&'f str>)> = Vec::new();
        let mut push = |v: Cow<'f, str>, group: Option<&'f str>| {
            if !v.trim().is_empty() {
                out.push((v, group));
            }
        };
        match &self.source {
            Source::GroupNames => {
                for g in facts.groups {
                    if let Some(n) = &g.display_name {
                        push(Cow::Borrowed(n), Some(&g.id));
                    }
                }
            }
            Source::GroupIds => {
                for g in facts.groups {
                    push(Cow::Borrowed(&g.id), Some(&g.id));
                }
            }
            Source::GroupExternalIds => {
                for g in facts.groups {
                    if let Some(x) = &g.external_id {
                        push(Cow::Borrowed(x), Some(&g.id));
                    }
                }
            }
            Source::EmailDomain => {
                let mut emails = Vec::new();
                collect(facts.resource, &EMAIL_VALUE, &mut emails);
                for e in emails {
                    if let Some((_, d)) = e.rsplit_once('@') {
                        push(Cow::Owned(d.to_ascii_lowercase()), None);
                    }
                }
            }
            Source::Path { schema, names } => {
                let start = match schema {
                    None => Some(facts.resource),
                    Some(urn) => get_ci(facts.resource, urn),
                };
                if let Some(start) = start {
                    let mut found = Vec::new();
                    collect(start, names, &mut found);
                    for v in found {
                        push(v, None);
                    }
                }
            }
        }
        out
    }
}

/// `emails.value`, for the email domain.
static EMAIL_VALUE: [Cow<'static, str>; 2] = [Cow::Borrowed("emails"), Cow::Borrowed("value")];

fn path(schema: Option<&str>, rest: &str, written: &str) -> Result<Source, String> {
    let names: Vec<String> = rest.split('.').map(str::to_string).collect();
    let valid = |n: &String| {
        let mut c = n.chars();
        c.next()
            .is_some_and(|f| f.is_ascii_alphabetic() || f == '_')
            && c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '$'))
    };
    if names.is_empty() || !names.iter().all(valid) {
        return Err(format!(
            "'{written}' is not an attribute path (names separated by '.')"
        ));
    }
    Ok(Source::Path {
        schema: schema.map(str::to_string),
        names,
    })
}

/// A member of an object by name, ignoring case as SCIM does.
fn get_ci<'v>(v: &'v Value, name: &str) -> Option<&'v Value> {
    let obj = v.as_object()?;
    obj.get(name).or_else(|| {
        obj.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    })
}

/// Every scalar at `names` below `v`, through multi-valued attributes.
fn collect<'v, N: AsRef<str>>(v: &'v Value, names: &[N], out: &mut Vec<Cow<'v, str>>) {
    match v {
        Value::Array(items) => items.iter().for_each(|i| collect(i, names, out)),
        _ => match names.split_first() {
            Some((first, rest)) => {
                if let Some(next) = get_ci(v, first.as_ref()) {
                    collect(next, rest, out);
                }
            }
            None => {
                if let Some(s) = scalar_text(v) {
                    out.push(s);
                }
            }
        },
    }
}

/// A scalar as the text rules compare; objects, arrays and null are not
/// scalars.
pub fn scalar_text(v: &Value) -> Option<Cow<'_, str>> {
    match v {
        Value::String(s) => Some(Cow::Borrowed(s)),
        Value::Bool(b) => Some(Cow::Owned(b.to_string())),
        Value::Number(n) => Some(Cow::Owned(n.to_string())),
        _ => None,
    }
}
