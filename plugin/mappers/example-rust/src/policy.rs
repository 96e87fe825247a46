//! The policy, in plain Rust (no WIT types), driven by the settings JSON:
//!
//! - every active user gets the role `learner` (reason `active`);
//! - a member of a group whose display name is in `manager_groups` (any
//!   case) gets the role `manager` (reason `group:<display name>`);
//! - the enterprise `department`, looked up in `departments` (any case),
//!   gives that department's teams and learning paths (reason
//!   `department:<name as in the settings>`);
//! - the office, the `locality` of the user's `work` address (else of its
//!   first address), looked up in `offices` (any case), gives the team
//!   `Office <city>` (reason `office:<city>`) and the learning path of the
//!   office's region from `region_paths` (reason `region:<region>`). An
//!   office missing from the table is refused with `unknown-office` when
//!   `strict_offices` is true, and gives nothing otherwise. A user with no
//!   locality gets no office grants (never an error).
//!
//! Settings that are not valid JSON, or do not have this shape, are refused
//! with `bad-settings`:
//!
//! ```json
//! {
//!   "departments": { "Engineering": { "teams": ["Engineering"], "learning_paths": ["Secure Coding"] } },
//!   "offices": { "Berlin": "EMEA" },
//!   "region_paths": { "EMEA": "EMEA Data Protection" },
//!   "manager_groups": ["People Managers"],
//!   "strict_offices": true
//! }
//! ```
//!
//! Every key is optional; `{}` (no settings installed) makes every active
//! user a learner and nothing more.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The SCIM enterprise User extension, which carries `department`.
pub const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
/// The role of every active user.
pub const LEARNER_ROLE: &str = "learner";
/// The role of members of the manager groups.
pub const MANAGER_ROLE: &str = "manager";
/// The host's limit on a grant's name and reason, in characters.
pub const MAX_TEXT: usize = 200;

/// What a grant gives (the WIT `grant-kind`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Role,
    Team,
    LearningPath,
}

impl Kind {
    /// The WIT case name: `role`, `team`, `learning-path`.
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Role => "role",
            Kind::Team => "team",
            Kind::LearningPath => "learning-path",
        }
    }
}

/// One item the user should hold (the WIT `grant`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub kind: Kind,
    pub name: String,
    pub reason: String,
}

/// Why a user is not mapped (the WIT `mapping-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

/// A group the user is a direct member of.
#[derive(Debug, Clone)]
pub struct GroupInput<'a> {
    pub id: &'a str,
    pub display_name: Option<&'a str>,
}

/// What the policy reads of a user (the WIT `user`, borrowed).
#[derive(Debug, Clone)]
pub struct UserInput<'a> {
    pub id: &'a str,
    pub user_name: &'a str,
    pub active: bool,
    pub groups: Vec<GroupInput<'a>>,
    /// The SCIM User resource as JSON text.
    pub scim_json: &'a str,
}

/// The settings document.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// Department (as the identity provider sends it, any case) → grants.
    pub departments: BTreeMap<String, Department>,
    /// Office city (any case) → region.
    pub offices: BTreeMap<String, String>,
    /// Region → its learning path.
    pub region_paths: BTreeMap<String, String>,
    /// Display names (any case) of the groups whose members are managers.
    pub manager_groups: Vec<String>,
    /// Refuse users whose office is not in `offices`.
    pub strict_offices: bool,
}

/// What one department gives.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Department {
    pub teams: Vec<String>,
    pub learning_paths: Vec<String>,
}

const SHAPE: &str = r#"expected {"departments": {"<department>": {"teams": [...], "learning_paths": [...]}}, "offices": {"<city>": "<region>"}, "region_paths": {"<region>": "<learning path>"}, "manager_groups": [...], "strict_offices": true|false}, every key optional"#;

fn bad_settings(message: String) -> Refusal {
    Refusal {
        code: "bad-settings",
        message,
    }
}

impl Settings {
    /// Parses and checks the settings document.
    pub fn parse(text: &str) -> Result<Settings, Refusal> {
        let invalid = |e: &dyn std::fmt::Display| {
            bad_settings(format!("the plugin settings are not valid: {e}; {SHAPE}"))
        };
        let value: Value = serde_json::from_str(text).map_err(|e| invalid(&e))?;
        if !value.is_object() {
            return Err(invalid(&"not a JSON object"));
        }
        let settings = Settings::deserialize(value).map_err(|e| invalid(&e))?;
        settings.check()?;
        Ok(settings)
    }

    fn check(&self) -> Result<(), Refusal> {
        let name = |what: &str, value: &str| {
            if value.trim().is_empty()
                || value.chars().count() > MAX_TEXT
                || value.chars().any(char::is_control)
            {
                Err(bad_settings(format!(
                    "{what} {value:?} must be 1 to {MAX_TEXT} printable characters"
                )))
            } else {
                Ok(())
            }
        };
        for (dept, d) in &self.departments {
            // The reason `department:<name>` must fit too.
            name("department", &format!("department:{dept}"))?;
            for item in d.teams.iter().chain(&d.learning_paths) {
                name(&format!("a grant of department {dept:?}:"), item)?;
            }
        }
        for (city, region) in &self.offices {
            name("office", &format!("Office {city}"))?;
            if !self.region_paths.contains_key(region) {
                return Err(bad_settings(format!(
                    "office {city:?} is in region {region:?}, which \"region_paths\" does not list (it lists {:?})",
                    self.region_paths.keys().collect::<Vec<_>>()
                )));
            }
        }
        for (region, path) in &self.region_paths {
            name("region", &format!("region:{region}"))?;
            name(&format!("the learning path of region {region:?}:"), path)?;
        }
        duplicates("departments", self.departments.keys())?;
        duplicates("offices", self.offices.keys())
    }
}

/// Keys that differ only in case would make a lookup ambiguous.
fn duplicates<'a>(what: &str, keys: impl Iterator<Item = &'a String>) -> Result<(), Refusal> {
    let mut seen = BTreeMap::new();
    for k in keys {
        if let Some(other) = seen.insert(fold(k), k) {
            return Err(bad_settings(format!(
                "\"{what}\" has {other:?} and {k:?}, which differ only in case"
            )));
        }
    }
    Ok(())
}

/// How names compare: trimmed, any case.
fn fold(s: &str) -> String {
    s.trim().to_lowercase()
}

fn same(a: &str, b: &str) -> bool {
    fold(a) == fold(b)
}

/// What the policy reads of the SCIM User resource. The engine stores
/// attribute names in the schema's spelling and extension attributes under
/// their schema URN, so the names are exact; values are as the identity
/// provider sent them. Deserialising only these fields (serde skips the rest
/// without building it) costs far less fuel than a whole `serde_json::Value`
/// on a large resource.
#[derive(Debug, Default, Deserialize)]
pub struct ScimView {
    #[serde(default)]
    pub addresses: Vec<Address>,
    #[serde(
        rename = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User",
        default
    )]
    pub enterprise: Option<Enterprise>,
}

/// One of the user's `addresses`.
#[derive(Debug, Default, Deserialize)]
pub struct Address {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub locality: Option<String>,
}

/// The enterprise User extension, the part the policy reads.
#[derive(Debug, Default, Deserialize)]
pub struct Enterprise {
    pub department: Option<String>,
}

/// The grants `user` should hold under `settings` (the settings JSON text).
pub fn assign(user: &UserInput, settings: &str) -> Result<Vec<Assignment>, Refusal> {
    assign_with(user, &Settings::parse(settings)?)
}

/// [`assign`] with the settings already parsed (the component keeps them
/// between the calls one instance serves).
pub fn assign_with(user: &UserInput, settings: &Settings) -> Result<Vec<Assignment>, Refusal> {
    let scim: ScimView = serde_json::from_str(user.scim_json).map_err(|e| Refusal {
        code: "bad-user",
        message: format!(
            "the SCIM resource of user {} could not be read: {e}",
            user.user_name
        ),
    })?;
    plan(user, &scim, settings)
}

/// [`assign`] with the settings and the SCIM resource already parsed.
pub fn plan(
    user: &UserInput,
    scim: &ScimView,
    settings: &Settings,
) -> Result<Vec<Assignment>, Refusal> {
    let mut out = Grants::default();
    if !user.active {
        // The host suspends inactive users whatever a plugin says; hold nothing.
        return Ok(out.0);
    }
    out.add(Kind::Role, LEARNER_ROLE, "active");

    // Groups come ordered by id, so the reason is stable.
    if let Some(group) = user.groups.iter().find_map(|g| {
        g.display_name
            .filter(|n| settings.manager_groups.iter().any(|m| same(m, n)))
    }) {
        out.add(Kind::Role, MANAGER_ROLE, &format!("group:{group}"));
    }

    if let Some(dept) = department(scim)
        && let Some((key, d)) = settings.departments.iter().find(|(k, _)| same(k, dept))
    {
        let reason = format!("department:{key}");
        for team in &d.teams {
            out.add(Kind::Team, team, &reason);
        }
        for path in &d.learning_paths {
            out.add(Kind::LearningPath, path, &reason);
        }
    }

    if let Some(city) = office(scim) {
        match settings.offices.iter().find(|(k, _)| same(k, city)) {
            Some((key, region)) => {
                out.add(
                    Kind::Team,
                    &format!("Office {key}"),
                    &format!("office:{key}"),
                );
                if let Some(path) = settings.region_paths.get(region) {
                    out.add(Kind::LearningPath, path, &format!("region:{region}"));
                }
            }
            None if settings.strict_offices => {
                return Err(Refusal {
                    code: "unknown-office",
                    message: format!(
                        "user {}: office {:?} (the locality of the work address) is not in the plugin settings' \"offices\" ({}); add it there, or correct the address in the identity provider",
                        user.user_name,
                        clip(city.trim(), 100),
                        settings
                            .offices
                            .keys()
                            .cloned()
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                });
            }
            None => {}
        }
    }
    Ok(out.0)
}

/// Grants in order, without exact repeats. An item granted for two reasons
/// is returned twice, so the LMS records both as its sources. A reason is
/// made acceptable to the host, which refuses a whole output over one bad
/// item: control characters (possible in a group's display name) become
/// spaces, and it is trimmed and clipped to [`MAX_TEXT`] characters.
#[derive(Default)]
struct Grants(Vec<Assignment>);

impl Grants {
    fn add(&mut self, kind: Kind, name: &str, reason: &str) {
        let reason: String = reason
            .trim()
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .take(MAX_TEXT)
            .collect();
        let reason = reason.trim_end().to_string();
        if self
            .0
            .iter()
            .any(|g| g.kind == kind && g.name == name && g.reason == reason)
        {
            return;
        }
        self.0.push(Assignment {
            kind,
            name: name.to_string(),
            reason,
        });
    }
}

/// At most `max` characters of `s`.
fn clip(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A value that is not blank.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|s| !s.trim().is_empty())
}

/// The enterprise extension's `department`, when it has a value.
pub fn department(scim: &ScimView) -> Option<&str> {
    present(&scim.enterprise.as_ref()?.department)
}

/// The office city: the `locality` of the `work` address (`type` in any
/// case), else of the first address.
pub fn office(scim: &ScimView) -> Option<&str> {
    let work = scim.addresses.iter().find(|a| {
        present(&a.kind).is_some_and(|t| t.trim().eq_ignore_ascii_case("work"))
            && present(&a.locality).is_some()
    });
    present(&work.or(scim.addresses.first())?.locality)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SETTINGS: &str = include_str!("../samples/settings.json");
    const EXPECTED: &str = include_str!("../samples/expected.json");
    const SAMPLES: [(&str, &str); 4] = [
        ("bjensen.json", include_str!("../samples/bjensen.json")),
        ("mchen.json", include_str!("../samples/mchen.json")),
        (
            "contractor.json",
            include_str!("../samples/contractor.json"),
        ),
        ("rdiaz.json", include_str!("../samples/rdiaz.json")),
    ];

    /// Runs the policy on a sample file (the WIT `user` as JSON, with
    /// `scim-json` as an object), the way the component glue does.
    fn run(sample: &str, settings: &str) -> Result<Vec<Assignment>, Refusal> {
        let v: Value = serde_json::from_str(sample).unwrap();
        let scim = v["scim-json"].to_string();
        let groups = v["groups"]
            .as_array()
            .unwrap()
            .iter()
            .map(|g| GroupInput {
                id: g["id"].as_str().unwrap(),
                display_name: g["display-name"].as_str(),
            })
            .collect();
        let user = UserInput {
            id: v["id"].as_str().unwrap(),
            user_name: v["user-name"].as_str().unwrap(),
            active: v["active"].as_bool().unwrap(),
            groups,
            scim_json: &scim,
        };
        assign(&user, settings)
    }

    fn sample(name: &str) -> &'static str {
        SAMPLES.iter().find(|(n, _)| *n == name).unwrap().1
    }

    fn triples(grants: &[Assignment]) -> Vec<(&str, &str, &str)> {
        grants
            .iter()
            .map(|g| (g.kind.as_str(), g.name.as_str(), g.reason.as_str()))
            .collect()
    }

    /// Edits a sample's JSON and returns it as text.
    fn edited(name: &str, edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(sample(name)).unwrap();
        edit(&mut v);
        v.to_string()
    }

    fn settings_with(edit: impl FnOnce(&mut Value)) -> String {
        let mut v: Value = serde_json::from_str(SETTINGS).unwrap();
        edit(&mut v);
        v.to_string()
    }

    #[test]
    fn samples_give_the_expected_grants() {
        let expected: Value = serde_json::from_str(EXPECTED).unwrap();
        for (name, text) in SAMPLES {
            let want = &expected[name];
            match run(text, SETTINGS) {
                Ok(grants) => {
                    let want: Vec<(&str, &str, &str)> = want["grants"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{name}: expected {want}, got grants"))
                        .iter()
                        .map(|t| {
                            (
                                t[0].as_str().unwrap(),
                                t[1].as_str().unwrap(),
                                t[2].as_str().unwrap(),
                            )
                        })
                        .collect();
                    assert_eq!(triples(&grants), want, "{name}");
                }
                Err(e) => assert_eq!(
                    Some(e.code),
                    want["error"].as_str(),
                    "{name}: {}",
                    e.message
                ),
            }
        }
    }

    #[test]
    fn unknown_office_is_refused_only_when_strict() {
        let err = run(sample("contractor.json"), SETTINGS).unwrap_err();
        assert_eq!(err.code, "unknown-office");
        assert!(err.message.contains("\"Lisbon\""), "{}", err.message);
        assert!(
            err.message.contains("Berlin, Boston, London, Toronto"),
            "{}",
            err.message
        );

        let lenient = settings_with(|s| s["strict_offices"] = false.into());
        let grants = run(sample("contractor.json"), &lenient).unwrap();
        assert_eq!(triples(&grants), [("role", "learner", "active")]);
    }

    #[test]
    fn no_address_is_no_office_even_when_strict() {
        // rdiaz has no addresses at all.
        let grants = run(sample("rdiaz.json"), SETTINGS).unwrap();
        assert!(grants.iter().all(|g| !g.name.starts_with("Office ")));
    }

    #[test]
    fn the_work_address_wins_over_the_first() {
        // bjensen's first address is at home, in Potsdam.
        let grants = run(sample("bjensen.json"), SETTINGS).unwrap();
        assert!(triples(&grants).contains(&("team", "Office Berlin", "office:Berlin")));
        // Without a work address, the first address counts: Potsdam is unknown.
        let home_only = edited("bjensen.json", |v| {
            v["scim-json"]["addresses"]
                .as_array_mut()
                .unwrap()
                .truncate(1)
        });
        assert_eq!(
            run(&home_only, SETTINGS).unwrap_err().code,
            "unknown-office"
        );
    }

    #[test]
    fn no_settings_makes_every_active_user_a_learner() {
        for (name, text) in SAMPLES {
            let grants = run(text, "{}").unwrap();
            assert_eq!(triples(&grants), [("role", "learner", "active")], "{name}");
        }
    }

    #[test]
    fn inactive_users_hold_nothing() {
        let inactive = edited("bjensen.json", |v| v["active"] = false.into());
        assert_eq!(run(&inactive, SETTINGS).unwrap(), []);
    }

    #[test]
    fn bad_settings_are_refused() {
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"departments": []}"#,
            r#"{"manager_group": ["typo"]}"#,
            r#"{"offices": {"Berlin": "EMEA"}}"#,
            r#"{"offices": {"Berlin": "EMEA", "berlin": "EMEA"}, "region_paths": {"EMEA": "P"}}"#,
            r#"{"departments": {"Sales": {"teams": [""]}}}"#,
        ] {
            let err = run(sample("mchen.json"), bad).unwrap_err();
            assert_eq!(err.code, "bad-settings", "{bad}: {}", err.message);
        }
        let err = run(sample("mchen.json"), r#"{"offices": {"Paris": "Europe"}}"#).unwrap_err();
        assert!(err.message.contains("\"Europe\""), "{}", err.message);
    }

    #[test]
    fn names_and_reasons_fit_the_limits() {
        let long = "M".repeat(500);
        let settings = settings_with(|s| s["manager_groups"] = serde_json::json!([long]));
        let user = edited("mchen.json", |v| {
            v["groups"][0]["display-name"] = long.clone().into()
        });
        let grants = run(&user, &settings).unwrap();
        let manager = grants.iter().find(|g| g.name == MANAGER_ROLE).unwrap();
        assert_eq!(manager.reason.chars().count(), MAX_TEXT);
        assert!(grants.iter().all(|g| g.name.chars().count() <= MAX_TEXT));

        let too_long = settings_with(|s| s["region_paths"]["EMEA"] = long.clone().into());
        assert_eq!(
            run(sample("mchen.json"), &too_long).unwrap_err().code,
            "bad-settings"
        );
    }

    #[test]
    fn values_match_in_any_case() {
        // mchen's department is "sales" and office "boston " in the sample.
        let user = edited("bjensen.json", |v| {
            v["scim-json"][ENTERPRISE]["department"] = " ENGINEERING".into();
            v["scim-json"]["addresses"][1]["type"] = "Work".into();
            v["scim-json"]["addresses"][1]["locality"] = "BERLIN".into();
        });
        let grants = run(&user, SETTINGS).unwrap();
        assert!(triples(&grants).contains(&("team", "Engineering", "department:Engineering")));
        assert!(triples(&grants).contains(&("team", "Office Berlin", "office:Berlin")));
    }

    #[test]
    fn blank_values_count_as_missing() {
        let user = edited("bjensen.json", |v| {
            v["scim-json"][ENTERPRISE]["department"] = "  ".into();
            v["scim-json"]["addresses"][1]["locality"] = "".into();
        });
        // No department; the work address has no locality, so the first
        // address (Potsdam, unknown) counts.
        assert_eq!(run(&user, SETTINGS).unwrap_err().code, "unknown-office");
    }

    #[test]
    fn an_item_keeps_each_of_its_reasons_once() {
        let settings = settings_with(|s| {
            s["departments"]["Engineering"]["teams"] =
                serde_json::json!(["Office Berlin", "Engineering", "Office Berlin"])
        });
        let grants = run(sample("bjensen.json"), &settings).unwrap();
        let berlin: Vec<_> = grants
            .iter()
            .filter(|g| g.name == "Office Berlin")
            .map(|g| g.reason.as_str())
            .collect();
        assert_eq!(berlin, ["department:Engineering", "office:Berlin"]);
    }

    #[test]
    fn control_characters_never_reach_a_reason() {
        let settings = settings_with(|s| s["manager_groups"] = serde_json::json!(["Leads\nEMEA"]));
        let user = edited("mchen.json", |v| {
            v["groups"][0]["display-name"] = "Leads\nEMEA".into()
        });
        let grants = run(&user, &settings).unwrap();
        assert!(triples(&grants).contains(&("role", "manager", "group:Leads EMEA")));
        let bad =
            settings_with(|s| s["departments"]["Sales"]["teams"] = serde_json::json!(["a\tb"]));
        assert_eq!(
            run(sample("mchen.json"), &bad).unwrap_err().code,
            "bad-settings"
        );
    }

    #[test]
    fn bad_scim_json_is_refused() {
        let user = UserInput {
            id: "x",
            user_name: "x@example.com",
            active: true,
            groups: vec![],
            scim_json: "{",
        };
        assert_eq!(assign(&user, "{}").unwrap_err().code, "bad-user");
    }
}
