//! The rules document as admins write it, checked while it is read: every
//! value that can be wrong (an attribute name, a pattern, a condition's
//! shape, a template) is checked by its own type, so the parser reports it
//! at its line and column.

use serde::Deserialize;
use serde_json::Value;

use super::attr::{AttrRef, scalar_text};

/// A whole rules document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Document {
    /// Format version; only 1 exists.
    #[serde(default = "version_one")]
    pub version: u32,
    /// Keep the default mapping's teams: every group a team of its name.
    #[serde(default)]
    pub groups_as_teams: bool,
    /// The role of an active user no rule gives one; `""` for none.
    #[serde(default = "learner")]
    pub default_role: String,
    #[serde(default, rename = "rule", alias = "rules")]
    pub rules: Vec<Rule>,
}

fn version_one() -> u32 {
    1
}

fn learner() -> String {
    crate::mapper::LEARNER_ROLE.to_string()
}

/// One rule: when its condition holds, it grants.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Unique; part of every grant's source (`rules:<name>@<via>`).
    pub name: RuleName,
    /// Decides between rules that each grant a role: the highest wins,
    /// then the earliest in the document.
    #[serde(default)]
    pub priority: i64,
    /// Omitted: the rule applies to every active user.
    #[serde(default)]
    pub when: Option<Condition>,
    pub grant: Grants,
    /// For people reading the rules; shown by explain.
    #[serde(default)]
    pub description: Option<String>,
}

/// A rule name: letters, digits, `-`, `_`, `.` and spaces, so it reads well
/// in a source and never breaks one (`@`, `:`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct RuleName(pub String);

impl TryFrom<String> for RuleName {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let t = s.trim();
        if t.is_empty() || t.len() > 100 {
            return Err("a rule name must have 1 to 100 characters".into());
        }
        if let Some(c) = t
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | ' ')))
        {
            return Err(format!(
                "rule name '{t}' contains '{c}'; use letters, digits, '-', '_', '.' and spaces"
            ));
        }
        Ok(RuleName(t.to_string()))
    }
}

/// What a rule grants. Each name may use `{attribute}` placeholders.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    #[serde(default)]
    pub role: Option<Template>,
    #[serde(default)]
    pub teams: Vec<Template>,
    #[serde(default, alias = "learningPaths")]
    pub learning_paths: Vec<Template>,
}

impl Grants {
    pub fn is_empty(&self) -> bool {
        self.role.is_none() && self.teams.is_empty() && self.learning_paths.is_empty()
    }
}

/// A name, literal or with `{attribute}` placeholders (`"Dept {department}"`);
/// `{{` and `}}` stand for braces.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Template {
    pub written: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Text(String),
    Attr(AttrRef),
}

impl TryFrom<String> for Template {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.trim().is_empty() {
            return Err("a granted name is empty".into());
        }
        let mut parts = Vec::new();
        let mut text = String::new();
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '{' if chars.peek() == Some(&'{') => {
                    chars.next();
                    text.push('{');
                }
                '}' if chars.peek() == Some(&'}') => {
                    chars.next();
                    text.push('}');
                }
                '{' => {
                    let mut name = String::new();
                    let mut closed = false;
                    for c in chars.by_ref() {
                        if c == '}' {
                            closed = true;
                            break;
                        }
                        name.push(c);
                    }
                    if !closed {
                        return Err(format!(
                            "in the name '{s}': unmatched '{{' (write '{{{{' for a brace)"
                        ));
                    }
                    let attr = AttrRef::parse(&name)
                        .map_err(|e| format!("in the name '{s}': placeholder {{{name}}}: {e}"))?;
                    if !text.is_empty() {
                        parts.push(Part::Text(std::mem::take(&mut text)));
                    }
                    parts.push(Part::Attr(attr));
                }
                '}' => {
                    return Err(format!(
                        "in the name '{s}': unmatched '}}' (write '}}}}' for a brace)"
                    ));
                }
                c => text.push(c),
            }
        }
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok(Template { written: s, parts })
    }
}

/// A condition over a user's attributes and groups.
#[derive(Debug, Clone, Deserialize)]
#[serde(try_from = "RawCondition")]
pub enum Condition {
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
    Test(Test),
}

/// One comparison of an attribute's values.
#[derive(Debug, Clone)]
pub struct Test {
    pub attr: AttrRef,
    pub op: Op,
}

/// How values are compared. A multi-valued attribute matches when any of its
/// values does; a missing attribute matches no comparison (so `not` of one
/// holds: "not a contractor" includes users with no `userType`; add
/// `present = true` to require a value).
#[derive(Debug, Clone)]
pub enum Op {
    /// Exact, case-sensitive.
    Equals(String),
    /// Exact, ignoring case: as written, and lower-cased.
    EqualsIgnoreCase(String, String),
    /// Exact, case-sensitive, any of these.
    In(Vec<String>),
    /// `*` and `?` wildcards, ignoring case.
    Glob(Glob),
    /// A regular expression that must match the whole value.
    Regex(Pattern),
    /// Whether the attribute has a value.
    Present(bool),
}

/// A checked glob.
#[derive(Debug, Clone)]
pub struct Glob {
    pub written: String,
    pub pattern: wildmatch::WildMatch,
}

impl TryFrom<String> for Glob {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.is_empty() {
            return Err("a glob is empty".into());
        }
        Ok(Glob {
            pattern: wildmatch::WildMatch::new_case_insensitive(&s),
            written: s,
        })
    }
}

/// A checked regular expression, anchored at both ends.
#[derive(Debug, Clone)]
pub struct Pattern {
    pub written: String,
    /// Compiled while a document is checked; when installed rules are read
    /// for mapping, on first use (compiling costs more than the rest of
    /// reading the document, and most requests never reach a given test).
    compiled: std::sync::OnceLock<Option<regex_lite::Regex>>,
}

/// Longest pattern accepted: patterns are admin input, compiled per request.
const MAX_PATTERN: usize = 1000;

thread_local! {
    /// Set while reading rules that were checked when installed.
    static TRUSTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` with pattern compilation deferred to first use: for documents
/// already checked at install time.
pub fn trusted<T>(f: impl FnOnce() -> T) -> T {
    TRUSTED.with(|t| t.set(true));
    let out = f();
    TRUSTED.with(|t| t.set(false));
    out
}

fn compile(s: &str) -> Result<regex_lite::Regex, String> {
    regex_lite::RegexBuilder::new(&format!("^(?:{s})$"))
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("invalid regular expression '{s}': {e}"))
}

impl Pattern {
    /// Whether the whole value matches; a pattern that no longer compiles
    /// (installed under another engine) matches nothing.
    pub fn is_match(&self, v: &str) -> bool {
        self.compiled
            .get_or_init(|| compile(&self.written).ok())
            .as_ref()
            .is_some_and(|r| r.is_match(v))
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        if s.len() > MAX_PATTERN {
            return Err(format!(
                "a regular expression is longer than {MAX_PATTERN} characters"
            ));
        }
        let compiled = std::sync::OnceLock::new();
        if !TRUSTED.with(|t| t.get()) {
            let _ = compiled.set(Some(compile(&s)?));
        }
        Ok(Pattern {
            written: s,
            compiled,
        })
    }
}

/// A condition as written: exactly one of its shapes.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawCondition {
    all: Option<Vec<Condition>>,
    any: Option<Vec<Condition>>,
    not: Option<Box<Condition>>,
    /// Shorthand: member of a group with this display name (any case).
    group: Option<String>,
    /// Shorthand: member of the group with this SCIM id.
    group_id: Option<String>,
    /// Shorthand: member of a group with this external id.
    group_external_id: Option<String>,
    attribute: Option<String>,
    equals: Option<Scalar>,
    equals_ignore_case: Option<Scalar>,
    #[serde(rename = "in")]
    in_: Option<Vec<Scalar>>,
    glob: Option<String>,
    regex: Option<String>,
    present: Option<bool>,
}

/// A value to compare with: text, a number or a boolean, compared as text.
#[derive(Deserialize)]
#[serde(try_from = "Value")]
struct Scalar(String);

impl TryFrom<Value> for Scalar {
    type Error = String;
    fn try_from(v: Value) -> Result<Self, String> {
        scalar_text(&v)
            .map(|s| Scalar(s.into_owned()))
            .ok_or_else(|| format!("expected text, a number or a boolean, found {v}"))
    }
}

const SHAPES: &str = "all = [...], any = [...], not = {...}, group = \"name\", group_id = \"id\", group_external_id = \"id\", or attribute = \"name\" with one of equals, equals_ignore_case, in, glob, regex, present";

impl TryFrom<RawCondition> for Condition {
    type Error = String;
    fn try_from(r: RawCondition) -> Result<Self, String> {
        let ops = [
            r.equals.is_some(),
            r.equals_ignore_case.is_some(),
            r.in_.is_some(),
            r.glob.is_some(),
            r.regex.is_some(),
            r.present.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        let shapes = [
            r.all.is_some(),
            r.any.is_some(),
            r.not.is_some(),
            r.group.is_some(),
            r.group_id.is_some(),
            r.group_external_id.is_some(),
            r.attribute.is_some(),
        ]
        .iter()
        .filter(|b| **b)
        .count();
        if shapes != 1 {
            return Err(format!(
                "a condition needs exactly one of: {SHAPES}; this one has {shapes}"
            ));
        }
        let group = |name: &str, op: Op| -> Result<Condition, String> {
            if ops > 0 {
                return Err(format!(
                    "'{name}' takes no comparison; to match group names by pattern write attribute = \"groups\" with glob or regex"
                ));
            }
            Ok(Condition::Test(Test {
                attr: AttrRef::parse(name)?,
                op,
            }))
        };
        let list = |v: Vec<Condition>, what: &str| {
            if v.is_empty() {
                Err(format!("'{what}' needs at least one condition"))
            } else if ops > 0 {
                Err(format!("'{what}' takes no comparison of its own"))
            } else {
                Ok(v)
            }
        };
        if let Some(v) = r.all {
            return Ok(Condition::All(list(v, "all")?));
        }
        if let Some(v) = r.any {
            return Ok(Condition::Any(list(v, "any")?));
        }
        if let Some(c) = r.not {
            if ops > 0 {
                return Err("'not' takes no comparison of its own".into());
            }
            return Ok(Condition::Not(c));
        }
        if let Some(g) = r.group {
            let lower = g.to_lowercase();
            return group("groups", Op::EqualsIgnoreCase(g, lower));
        }
        if let Some(g) = r.group_id {
            return group("group_ids", Op::Equals(g));
        }
        if let Some(g) = r.group_external_id {
            return group("group_external_ids", Op::Equals(g));
        }
        let attr = AttrRef::parse(r.attribute.as_deref().unwrap_or_default())?;
        if ops != 1 {
            return Err(format!(
                "attribute '{attr}' needs exactly one comparison (equals, equals_ignore_case, in, glob, regex, present); it has {ops}"
            ));
        }
        let op = if let Some(Scalar(v)) = r.equals {
            Op::Equals(v)
        } else if let Some(Scalar(v)) = r.equals_ignore_case {
            let lower = v.to_lowercase();
            Op::EqualsIgnoreCase(v, lower)
        } else if let Some(v) = r.in_ {
            if v.is_empty() {
                return Err(format!("'in' for '{attr}' lists no value"));
            }
            Op::In(v.into_iter().map(|Scalar(s)| s).collect())
        } else if let Some(g) = r.glob {
            Op::Glob(Glob::try_from(g)?)
        } else if let Some(p) = r.regex {
            Op::Regex(Pattern::try_from(p)?)
        } else {
            Op::Present(r.present.unwrap_or(true))
        };
        Ok(Condition::Test(Test { attr, op }))
    }
}
