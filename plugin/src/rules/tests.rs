//! The rules language, table by table: conditions, attributes, combinators,
//! templates, role conflicts, sources, parse errors and explain.

use serde_json::{Value, json};

use super::{Diagnostic, Rules, Severity, parse};
use crate::mapper::{Facts, GroupFact, Mapper, RuleOutcome, Trace};
use crate::mapper::{Grant, GrantKind};
use crate::provision::memlms::MemLms;

const ENTERPRISE: &str = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User";
const ACME: &str = "urn:example:params:scim:schemas:extension:acme:2.0:User";

/// A user with one of everything rules read.
fn ada() -> Value {
    json!({
        "userName": "ada@example.com",
        "title": "Senior Engineer",
        "userType": "Employee",
        "name": {"givenName": "Ada", "familyName": "Lovelace"},
        "emails": [
            {"value": "ada@Example.COM", "primary": true},
            {"value": "ada@personal.org"}
        ],
        "addresses": [
            {"country": "DE", "locality": "Berlin"},
            {"country": "FR", "locality": "Paris"}
        ],
        ENTERPRISE: {
            "department": "Sales",
            "division": "EMEA",
            "costCenter": "CC-42",
            "organization": "Acme",
            "employeeNumber": 1234,
            "manager": {"value": "boss-1", "displayName": "The Boss"}
        },
        ACME: {"badge": "gold", "clearance": {"level": 3}}
    })
}

/// A user with nothing but a name.
fn bare() -> Value {
    json!({"userName": "bare"})
}

fn group(id: &str, name: &str, external: Option<&str>) -> GroupFact {
    GroupFact {
        id: id.into(),
        display_name: Some(name.into()),
        external_id: external.map(str::to_string),
    }
}

/// Ada's groups: g1 has an external id, g2 none.
fn ada_groups() -> Vec<GroupFact> {
    vec![
        group("g1", "Sales Team", Some("ext-sales")),
        group("g2", "Managers", None),
    ]
}

#[track_caller]
fn rules(text: &str) -> Rules {
    match parse(text) {
        Ok(r) => r,
        Err(d) => panic!("rules do not parse: {d:?}\n{text}"),
    }
}

fn facts<'a>(resource: &'a Value, groups: &'a [GroupFact], active: bool) -> Facts<'a> {
    Facts {
        id: "u1",
        active,
        resource,
        groups,
    }
}

/// `kind name <- source`, for readable comparisons.
fn show(g: &Grant) -> String {
    format!("{} {} <- {}", g.kind.as_str(), g.name, g.source)
}

/// The grants `text` gives, as [`show`] writes them, sorted. Explain and the
/// hot path must agree on every grant, sources included.
#[track_caller]
fn grants_of(text: &str, resource: &Value, groups: &[GroupFact], active: bool) -> Vec<String> {
    let r = rules(text);
    let f = facts(resource, groups, active);
    let plain = r.evaluate(&f, false);
    let traced = r.evaluate(&f, true);
    assert_eq!(
        plain.grants, traced.grants,
        "explain disagrees with mapping for\n{text}"
    );
    assert_eq!(r.desired(&f).unwrap(), plain.grants);
    let mut out: Vec<String> = plain.grants.iter().map(show).collect();
    out.sort();
    out
}

fn sorted(list: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}

/// One rule `r` with `when`, granting the team `hit` and nothing else.
fn when_doc(when: &str) -> String {
    format!(
        "default_role = \"\"\n\n[[rule]]\nname = \"r\"\nwhen = {when}\ngrant = {{ teams = [\"hit\"] }}\n"
    )
}

/// Whether `when` holds for the user.
#[track_caller]
fn holds(when: &str, resource: &Value, groups: &[GroupFact]) -> bool {
    let got = grants_of(&when_doc(when), resource, groups, true);
    match got.as_slice() {
        [] => false,
        [one] if one.starts_with("team hit <- rules:r@") => true,
        other => panic!("unexpected grants for {when}: {other:?}"),
    }
}

#[track_caller]
fn run_table(table: &[(&str, &str, Value, Vec<GroupFact>, bool)]) {
    let mut failures = Vec::new();
    for (desc, when, user, groups, want) in table {
        let got = holds(when, user, groups);
        if got != *want {
            failures.push(format!("{desc}: `{when}` gave {got}, expected {want}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn every_condition_shape_and_comparison() {
    let g = ada_groups;
    let table: Vec<(&str, &str, Value, Vec<GroupFact>, bool)> = vec![
        (
            "group, same case",
            r#"{ group = "Sales Team" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "group ignores case",
            r#"{ group = "sALES tEAM" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "group is whole-name",
            r#"{ group = "Sales" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group not joined",
            r#"{ group = "Support" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group with no groups",
            r#"{ group = "Sales Team" }"#,
            ada(),
            vec![],
            false,
        ),
        ("group_id", r#"{ group_id = "g2" }"#, ada(), g(), true),
        (
            "group_id is exact",
            r#"{ group_id = "G2" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group_id not joined",
            r#"{ group_id = "g3" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group_id is not a name",
            r#"{ group_id = "Managers" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group_external_id",
            r#"{ group_external_id = "ext-sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "group_external_id other",
            r#"{ group_external_id = "ext-ops" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group_external_id is not an id",
            r#"{ group_external_id = "g1" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "group_external_id without facts' external ids",
            r#"{ group_external_id = "ext-sales" }"#,
            ada(),
            vec![group("g1", "Sales Team", None)],
            false,
        ),
        (
            "equals",
            r#"{ attribute = "department", equals = "Sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "equals is case-sensitive",
            r#"{ attribute = "department", equals = "sales" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "equals is whole-value",
            r#"{ attribute = "department", equals = "Sale" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "equals a number as text",
            r#"{ attribute = "employeeNumber", equals = "1234" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "equals a TOML number",
            r#"{ attribute = "employeeNumber", equals = 1234 }"#,
            ada(),
            g(),
            true,
        ),
        (
            "equals a boolean",
            r#"{ attribute = "active", equals = true }"#,
            json!({"active": true}),
            vec![],
            true,
        ),
        (
            "equals_ignore_case",
            r#"{ attribute = "department", equals_ignore_case = "sALES" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "equals_ignore_case is whole-value",
            r#"{ attribute = "department", equals_ignore_case = "sale" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "in",
            r#"{ attribute = "department", in = ["Marketing", "Sales"] }"#,
            ada(),
            g(),
            true,
        ),
        (
            "in is case-sensitive",
            r#"{ attribute = "department", in = ["marketing", "sales"] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "in none listed",
            r#"{ attribute = "department", in = ["Ops"] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "glob *",
            r#"{ attribute = "department", glob = "Sa*" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "glob ignores case",
            r#"{ attribute = "department", glob = "sA*" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "glob ?",
            r#"{ attribute = "department", glob = "S?les" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "glob ? is one character",
            r#"{ attribute = "department", glob = "S?es" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "glob * inside",
            r#"{ attribute = "title", glob = "*ENGINEER" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "glob is whole-value",
            r#"{ attribute = "department", glob = "Sal" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "regex",
            r#"{ attribute = "department", regex = "S[a-z]+s" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "regex is anchored at the end",
            r#"{ attribute = "department", regex = "Sal" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "regex is anchored at the start",
            r#"{ attribute = "department", regex = "ales" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "regex alternation is anchored as a whole",
            r#"{ attribute = "department", regex = "Sa|les" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "regex alternation",
            r#"{ attribute = "department", regex = "Ops|Sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "regex is case-sensitive",
            r#"{ attribute = "department", regex = "sales" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "regex inline flag",
            r#"{ attribute = "department", regex = "(?i)sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "present = true, present",
            r#"{ attribute = "department", present = true }"#,
            ada(),
            g(),
            true,
        ),
        (
            "present = false, present",
            r#"{ attribute = "department", present = false }"#,
            ada(),
            g(),
            false,
        ),
        (
            "present = true, missing",
            r#"{ attribute = "department", present = true }"#,
            bare(),
            vec![],
            false,
        ),
        (
            "present = false, missing",
            r#"{ attribute = "department", present = false }"#,
            bare(),
            vec![],
            true,
        ),
        (
            "groups attribute, glob",
            r#"{ attribute = "groups", glob = "*team" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "groups attribute, present",
            r#"{ attribute = "groups", present = true }"#,
            ada(),
            vec![],
            false,
        ),
    ];
    run_table(&table);
}

#[test]
fn combinators_and_nesting() {
    let g = ada_groups;
    let table: Vec<(&str, &str, Value, Vec<GroupFact>, bool)> = vec![
        (
            "all, both hold",
            r#"{ all = [{ group = "sales team" }, { attribute = "department", equals = "Sales" }] }"#,
            ada(),
            g(),
            true,
        ),
        (
            "all, one fails",
            r#"{ all = [{ group = "sales team" }, { attribute = "department", equals = "Ops" }] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "all, first fails",
            r#"{ all = [{ group = "nope" }, { attribute = "department", equals = "Sales" }] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "any, second holds",
            r#"{ any = [{ attribute = "department", equals = "Ops" }, { group = "managers" }] }"#,
            ada(),
            g(),
            true,
        ),
        (
            "any, none holds",
            r#"{ any = [{ attribute = "department", equals = "Ops" }, { group = "nope" }] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "not of false",
            r#"{ not = { attribute = "department", equals = "Ops" } }"#,
            ada(),
            g(),
            true,
        ),
        (
            "not of true",
            r#"{ not = { attribute = "department", equals = "Sales" } }"#,
            ada(),
            g(),
            false,
        ),
        (
            "not not",
            r#"{ not = { not = { group = "managers" } } }"#,
            ada(),
            g(),
            true,
        ),
        (
            "not of a group, not a member",
            r#"{ not = { group = "managers" } }"#,
            ada(),
            vec![],
            true,
        ),
        (
            "all of any and not",
            r#"{ all = [{ any = [{ attribute = "country", equals = "US" }, { attribute = "country", equals = "FR" }] }, { not = { attribute = "userType", equals = "Contractor" } }] }"#,
            ada(),
            g(),
            true,
        ),
        (
            "all of any and not, the not fails",
            r#"{ all = [{ any = [{ attribute = "country", equals = "US" }, { attribute = "country", equals = "FR" }] }, { not = { attribute = "userType", equals = "Employee" } }] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "any of all (failing) and not",
            r#"{ any = [{ all = [{ group = "managers" }, { attribute = "title", glob = "*junior*" }] }, { not = { group = "managers" } }] }"#,
            ada(),
            g(),
            false,
        ),
        (
            "any of all (holding) and not",
            r#"{ any = [{ all = [{ group = "managers" }, { attribute = "title", glob = "*senior*" }] }, { not = { group = "managers" } }] }"#,
            ada(),
            g(),
            true,
        ),
        (
            "not of all",
            r#"{ not = { all = [{ group = "managers" }, { attribute = "department", equals = "Ops" }] } }"#,
            ada(),
            g(),
            true,
        ),
        (
            "not of any",
            r#"{ not = { any = [{ group = "nope" }, { attribute = "department", equals = "Sales" }] } }"#,
            ada(),
            g(),
            false,
        ),
        (
            "single-item all",
            r#"{ all = [{ group = "managers" }] }"#,
            ada(),
            g(),
            true,
        ),
        (
            "single-item any",
            r#"{ any = [{ group = "nope" }] }"#,
            ada(),
            g(),
            false,
        ),
    ];
    run_table(&table);
}

#[test]
fn a_condition_in_its_own_table() {
    let text = r#"
default_role = ""

[[rule]]
name = "r"
grant = { teams = ["hit"] }

[rule.when]
all = [
  { group = "managers" },
  { attribute = "department", in = ["Sales", "Ops"] },
]
"#;
    assert_eq!(
        grants_of(text, &ada(), &ada_groups(), true),
        ["team hit <- rules:r@group:g2"]
    );
    assert!(grants_of(text, &bare(), &ada_groups(), true).is_empty());
}

#[test]
fn attribute_aliases_and_paths_read_where_scim_keeps_them() {
    let g = ada_groups;
    let table: Vec<(&str, &str, Value, Vec<GroupFact>, bool)> = vec![
        (
            "department",
            r#"{ attribute = "department", equals = "Sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "aliases ignore case",
            r#"{ attribute = "Department", equals = "Sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "division",
            r#"{ attribute = "division", equals = "EMEA" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "costCenter",
            r#"{ attribute = "costCenter", equals = "CC-42" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "organization",
            r#"{ attribute = "organization", equals = "Acme" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "employeeNumber",
            r#"{ attribute = "employeeNumber", equals = "1234" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "manager is manager.value",
            r#"{ attribute = "manager", equals = "boss-1" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "manager is not its displayName",
            r#"{ attribute = "manager", equals = "The Boss" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "country, first address",
            r#"{ attribute = "country", equals = "DE" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "country, second address",
            r#"{ attribute = "country", equals = "FR" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "country, no address",
            r#"{ attribute = "country", equals = "US" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "locality, any address",
            r#"{ attribute = "locality", equals = "Paris" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "locality is not country",
            r#"{ attribute = "locality", equals = "FR" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "email_domain is lower-cased",
            r#"{ attribute = "email_domain", equals = "example.com" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "email_domain, as written, does not match",
            r#"{ attribute = "email_domain", equals = "Example.COM" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "email_domain of any email",
            r#"{ attribute = "email_domain", equals = "personal.org" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "email_domain is the domain only",
            r#"{ attribute = "email_domain", equals = "ada@personal.org" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "email_domain ignores an address without '@'",
            r#"{ attribute = "email_domain", present = true }"#,
            json!({"emails": [{"value": "nobody"}, {"value": "x@"}]}),
            vec![],
            false,
        ),
        (
            "email",
            r#"{ attribute = "email", equals = "ada@personal.org" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "userType",
            r#"{ attribute = "userType", equals = "Employee" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "title",
            r#"{ attribute = "title", equals = "Senior Engineer" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "name.familyName",
            r#"{ attribute = "name.familyName", equals = "Lovelace" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "name.givenName is not familyName",
            r#"{ attribute = "name.givenName", equals = "Lovelace" }"#,
            ada(),
            g(),
            false,
        ),
        (
            "core attribute names ignore case",
            r#"{ attribute = "NAME.FAMILYNAME", equals = "Lovelace" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "URN-qualified core attribute",
            r#"{ attribute = "urn:ietf:params:scim:schemas:core:2.0:User:title", equals = "Senior Engineer" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "URN-qualified enterprise attribute",
            r#"{ attribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", equals = "Sales" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "URN-qualified enterprise sub-attribute",
            r#"{ attribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:manager.value", equals = "boss-1" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "enterprise attributes are not read at the top level",
            r#"{ attribute = "department", equals = "Sales" }"#,
            json!({"department": "Sales"}),
            vec![],
            false,
        ),
        (
            "custom extension attribute",
            r#"{ attribute = "urn:example:params:scim:schemas:extension:acme:2.0:User:badge", equals = "gold" }"#,
            ada(),
            g(),
            true,
        ),
        (
            "custom extension sub-attribute",
            r#"{ attribute = "urn:example:params:scim:schemas:extension:acme:2.0:User:clearance.level", equals = 3 }"#,
            ada(),
            g(),
            true,
        ),
        (
            "custom extension attribute under another URN",
            r#"{ attribute = "urn:example:params:scim:schemas:extension:other:2.0:User:badge", present = true }"#,
            ada(),
            g(),
            false,
        ),
    ];
    run_table(&table);
}

#[test]
fn a_missing_attribute_never_matches_but_its_negation_holds() {
    // Every comparison against an attribute Ada lacks (`region`) and one
    // that is null, and against a user with no enterprise data at all.
    let null_division = json!({ENTERPRISE: {"division": null}, "addresses": [{"country": null}]});
    let mut table: Vec<(&str, String, Value, Vec<GroupFact>, bool)> = Vec::new();
    let ops = [
        ("equals", r#"equals = """#),
        ("equals_ignore_case", r#"equals_ignore_case = """#),
        ("in", r#"in = ["", "x"]"#),
        ("glob", r#"glob = "*""#),
        ("regex", r#"regex = ".*""#),
        ("present = true", "present = true"),
    ];
    for (attr, user) in [
        ("region", ada()),
        ("division", null_division.clone()),
        ("country", null_division.clone()),
        ("department", bare()),
        ("manager", bare()),
        ("email_domain", bare()),
        (
            "urn:example:params:scim:schemas:extension:acme:2.0:User:badge",
            bare(),
        ),
    ] {
        for (name, op) in ops {
            table.push((
                name,
                format!(r#"{{ attribute = "{attr}", {op} }}"#),
                user.clone(),
                vec![],
                false,
            ));
            table.push((
                name,
                format!(r#"{{ not = {{ attribute = "{attr}", {op} }} }}"#),
                user.clone(),
                vec![],
                true,
            ));
        }
        table.push((
            "present = false",
            format!(r#"{{ attribute = "{attr}", present = false }}"#),
            user.clone(),
            vec![],
            true,
        ));
    }
    for (name, shape) in [
        ("group", r#"group = "x""#),
        ("group_id", r#"group_id = "g1""#),
        ("group_external_id", r#"group_external_id = "e""#),
    ] {
        table.push((name, format!("{{ {shape} }}"), bare(), vec![], false));
        table.push((
            name,
            format!("{{ not = {{ {shape} }} }}"),
            bare(),
            vec![],
            true,
        ));
    }
    let table: Vec<(&str, &str, Value, Vec<GroupFact>, bool)> = table
        .iter()
        .map(|(d, w, u, g, b)| (*d, w.as_str(), u.clone(), g.clone(), *b))
        .collect();
    run_table(&table);
}

#[test]
fn templates_expand_attributes_and_escape_braces() {
    let blank = json!({ENTERPRISE: {"department": ""}});
    let spaces = json!({ENTERPRISE: {"department": "   "}});
    // (description, template, user, groups, names)
    type Case<'a> = (&'a str, &'a str, Value, Vec<GroupFact>, Vec<&'a str>);
    let table: Vec<Case> = vec![
        ("literal", "Everyone", ada(), vec![], vec!["Everyone"]),
        (
            "one attribute",
            "Dept {department}",
            ada(),
            vec![],
            vec!["Dept Sales"],
        ),
        (
            "attribute only",
            "{department}",
            ada(),
            vec![],
            vec!["Sales"],
        ),
        (
            "multi-valued: one name per value",
            "{country} learners",
            ada(),
            vec![],
            vec!["DE learners", "FR learners"],
        ),
        (
            "two attributes: every combination",
            "{division}/{country}",
            ada(),
            vec![],
            vec!["EMEA/DE", "EMEA/FR"],
        ),
        (
            "a number",
            "Employee {employeeNumber}",
            ada(),
            vec![],
            vec!["Employee 1234"],
        ),
        (
            "escaped braces",
            "{{literal}}",
            ada(),
            vec![],
            vec!["{literal}"],
        ),
        (
            "escape around a placeholder",
            "{{{department}}}",
            ada(),
            vec![],
            vec!["{Sales}"],
        ),
        (
            "a lone escaped brace",
            "a }} b {{",
            ada(),
            vec![],
            vec!["a } b {"],
        ),
        (
            "group names",
            "Team {groups}",
            ada(),
            ada_groups(),
            vec!["Team Managers", "Team Sales Team"],
        ),
        (
            "URN path",
            "Badge {urn:example:params:scim:schemas:extension:acme:2.0:User:badge}",
            ada(),
            vec![],
            vec!["Badge gold"],
        ),
        (
            "missing attribute: no name",
            "Dept {department}",
            bare(),
            vec![],
            vec![],
        ),
        (
            "missing attribute alone: no name",
            "{department}",
            bare(),
            vec![],
            vec![],
        ),
        (
            "one of two attributes missing: no name",
            "{division}/{region}",
            ada(),
            vec![],
            vec![],
        ),
        (
            "blank attribute: no partial name",
            "Dept {department}",
            blank.clone(),
            vec![],
            vec![],
        ),
        (
            "blank attribute alone: no empty name",
            "{department}",
            blank,
            vec![],
            vec![],
        ),
        (
            "whitespace attribute: no partial name",
            "Dept {department}",
            spaces,
            vec![],
            vec![],
        ),
        ("no groups: no name", "Team {groups}", ada(), vec![], vec![]),
    ];
    let mut failures = Vec::new();
    for (desc, template, user, groups, want) in table {
        let text = format!(
            "default_role = \"\"\n[[rule]]\nname = \"t\"\ngrant = {{ teams = [{template:?}] }}\n"
        );
        let got: Vec<String> = grants_of(&text, &user, &groups, true)
            .iter()
            .map(|g| {
                g.strip_prefix("team ")
                    .and_then(|g| g.strip_suffix(" <- rules:t@always"))
                    .unwrap_or_else(|| panic!("{desc}: unexpected grant {g}"))
                    .to_string()
            })
            .collect();
        if got != sorted(&want) {
            failures.push(format!(
                "{desc}: '{template}' gave {got:?}, expected {want:?}"
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn templates_name_roles_and_learning_paths_too() {
    let text = r#"
[[rule]]
name = "by country"
grant = { role = "learner-{country}", learning_paths = ["Compliance {country}"] }
"#;
    // A role admits one value: the first; learning paths take every value.
    assert_eq!(
        grants_of(text, &ada(), &[], true),
        sorted(&[
            "role learner-DE <- rules:by country@always",
            "learningPath Compliance DE <- rules:by country@always",
            "learningPath Compliance FR <- rules:by country@always",
        ])
    );
    // A role template naming nothing leaves the default role.
    assert_eq!(
        grants_of(text, &bare(), &[], true),
        ["role learner <- default:learner-role@active"]
    );
}

#[test]
fn the_highest_priority_role_wins_then_the_earliest_rule() {
    let rule = |name: &str, priority: i64, when: &str, role: Option<&str>| {
        let when = if when.is_empty() {
            String::new()
        } else {
            format!("when = {when}\n")
        };
        let grant = match role {
            Some(r) => format!("role = \"{r}\""),
            None => "teams = [\"t\"]".into(),
        };
        format!(
            "[[rule]]\nname = \"{name}\"\npriority = {priority}\n{when}grant = {{ {grant} }}\n\n"
        )
    };
    let sales = r#"{ attribute = "department", equals = "Sales" }"#;
    let ops = r#"{ attribute = "department", equals = "Ops" }"#;
    let table: Vec<(&str, String, Option<&str>)> = vec![
        (
            "higher priority later in the document",
            rule("low", 1, sales, Some("a")) + &rule("high", 5, sales, Some("b")),
            Some("role b <- rules:high@attr:department"),
        ),
        (
            "higher priority earlier in the document",
            rule("high", 5, sales, Some("b")) + &rule("low", 1, sales, Some("a")),
            Some("role b <- rules:high@attr:department"),
        ),
        (
            "a tie goes to the earliest rule",
            rule("first", 3, sales, Some("a")) + &rule("second", 3, "", Some("b")),
            Some("role a <- rules:first@attr:department"),
        ),
        (
            "a tie goes to the earliest rule, reversed",
            rule("first", 3, "", Some("b")) + &rule("second", 3, sales, Some("a")),
            Some("role b <- rules:first@always"),
        ),
        (
            "negative priority loses to the default priority",
            rule("neg", -1, sales, Some("a")) + &rule("zero", 0, "", Some("b")),
            Some("role b <- rules:zero@always"),
        ),
        (
            "a higher rule that does not match does not take part",
            rule("ops", 9, ops, Some("a")) + &rule("sales", 1, sales, Some("b")),
            Some("role b <- rules:sales@attr:department"),
        ),
        (
            "a matched rule without a role leaves the default role",
            rule("teams", 9, sales, None),
            Some("role learner <- default:learner-role@active"),
        ),
        (
            "no rule matches: the default role",
            rule("ops", 0, ops, Some("a")),
            Some("role learner <- default:learner-role@active"),
        ),
        (
            "a chosen default role",
            "default_role = \"guest\"\n".to_string() + &rule("ops", 0, ops, Some("a")),
            Some("role guest <- default:learner-role@active"),
        ),
        (
            "the default role does not join a rule's role",
            "default_role = \"guest\"\n".to_string() + &rule("sales", 0, sales, Some("a")),
            Some("role a <- rules:sales@attr:department"),
        ),
        (
            "default_role = \"\": no role",
            "default_role = \"\"\n".to_string() + &rule("ops", 0, ops, Some("a")),
            None,
        ),
    ];
    let mut failures = Vec::new();
    for (desc, text, want) in &table {
        let roles: Vec<String> = grants_of(text, &ada(), &[], true)
            .into_iter()
            .filter(|g| g.starts_with("role "))
            .collect();
        let want: Vec<String> = want.iter().map(|s| s.to_string()).collect();
        if roles != want {
            failures.push(format!("{desc}: {roles:?}, expected {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn groups_as_teams_and_inactive_users() {
    let rule = "[[rule]]\nname = \"sales\"\nwhen = { group = \"sales team\" }\ngrant = { learning_paths = [\"Onboarding\"] }\n";
    let on = format!("groups_as_teams = true\n{rule}");
    let off = format!("groups_as_teams = false\n{rule}");
    let unnamed = vec![
        group("g1", "Sales Team", None),
        GroupFact {
            id: "g3".into(),
            display_name: None,
            external_id: None,
        },
        group("g4", "  ", None),
    ];
    // (description, rules, groups, active, grants)
    type Case<'a> = (&'a str, &'a str, Vec<GroupFact>, bool, Vec<&'a str>);
    let table: Vec<Case> = vec![
        (
            "groups_as_teams keeps a team per group",
            &on,
            ada_groups(),
            true,
            vec![
                "role learner <- default:learner-role@active",
                "team Sales Team <- default:groups-as-teams@group:g1",
                "team Managers <- default:groups-as-teams@group:g2",
                "learningPath Onboarding <- rules:sales@group:g1",
            ],
        ),
        (
            "groups without a name make no team",
            &on,
            unnamed,
            true,
            vec![
                "role learner <- default:learner-role@active",
                "team Sales Team <- default:groups-as-teams@group:g1",
                "learningPath Onboarding <- rules:sales@group:g1",
            ],
        ),
        (
            "without groups_as_teams groups are no teams",
            &off,
            ada_groups(),
            true,
            vec![
                "role learner <- default:learner-role@active",
                "learningPath Onboarding <- rules:sales@group:g1",
            ],
        ),
        (
            "groups_as_teams is off by default",
            rule,
            ada_groups(),
            true,
            vec![
                "role learner <- default:learner-role@active",
                "learningPath Onboarding <- rules:sales@group:g1",
            ],
        ),
        (
            "an inactive user holds nothing",
            &on,
            ada_groups(),
            false,
            vec![],
        ),
        (
            "an inactive user holds nothing, even from rules for everyone",
            "[[rule]]\nname = \"all\"\ngrant = { role = \"x\", teams = [\"t\"] }\n",
            ada_groups(),
            false,
            vec![],
        ),
    ];
    for (desc, text, groups, active, want) in table {
        assert_eq!(
            grants_of(text, &ada(), &groups, active),
            sorted(&want),
            "{desc}"
        );
    }
    let explained = rules(&on).evaluate(&facts(&ada(), &ada_groups(), false), true);
    assert!(explained.grants.is_empty());
    assert!(explained.rules.is_empty(), "inactive: no rule runs");
    assert!(
        explained.notes[0].contains("inactive"),
        "{:?}",
        explained.notes
    );
}

#[test]
fn sources_name_the_rule_and_what_it_matched_through() {
    let table: Vec<(&str, &str, &str)> = vec![
        ("a group", r#"{ group = "managers" }"#, "rules:r@group:g2"),
        ("a group id", r#"{ group_id = "g1" }"#, "rules:r@group:g1"),
        (
            "a group external id",
            r#"{ group_external_id = "ext-sales" }"#,
            "rules:r@group:g1",
        ),
        (
            "group names by pattern",
            r#"{ attribute = "groups", glob = "man*" }"#,
            "rules:r@group:g2",
        ),
        (
            "the first matching group",
            r#"{ attribute = "groups", present = true }"#,
            "rules:r@attr:groups",
        ),
        (
            "an attribute",
            r#"{ attribute = "department", equals = "Sales" }"#,
            "rules:r@attr:department",
        ),
        (
            "an attribute as written",
            r#"{ attribute = "costCenter", glob = "CC-*" }"#,
            "rules:r@attr:costCenter",
        ),
        (
            "a URN attribute",
            r#"{ attribute = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department", equals = "Sales" }"#,
            "rules:r@attr:urn:ietf:params:scim:schemas:extension:enterprise:2.0:User:department",
        ),
        (
            "present = false",
            r#"{ attribute = "region", present = false }"#,
            "rules:r@attr:region",
        ),
        (
            "all: a group beats an attribute before it",
            r#"{ all = [{ attribute = "department", equals = "Sales" }, { group = "managers" }] }"#,
            "rules:r@group:g2",
        ),
        (
            "all: a group beats an attribute after it",
            r#"{ all = [{ group = "managers" }, { attribute = "department", equals = "Sales" }] }"#,
            "rules:r@group:g2",
        ),
        (
            "all: the first group",
            r#"{ all = [{ attribute = "title", present = true }, { group = "managers" }, { group = "sales team" }] }"#,
            "rules:r@group:g2",
        ),
        (
            "all: the first attribute when no group",
            r#"{ all = [{ attribute = "title", present = true }, { attribute = "department", present = true }] }"#,
            "rules:r@attr:title",
        ),
        (
            "any: the first condition that holds, an attribute",
            r#"{ any = [{ attribute = "department", equals = "Sales" }, { group = "managers" }] }"#,
            "rules:r@attr:department",
        ),
        (
            "any: the first condition that holds, a group",
            r#"{ any = [{ group = "nope" }, { group = "managers" }, { attribute = "department", equals = "Sales" }] }"#,
            "rules:r@group:g2",
        ),
        (
            "nested: a group inside all inside any",
            r#"{ any = [{ all = [{ attribute = "title", present = true }, { group = "sales team" }] }, { group = "managers" }] }"#,
            "rules:r@group:g1",
        ),
        (
            "all with a not keeps the positive reason",
            r#"{ all = [{ not = { group = "nope" } }, { attribute = "department", equals = "Sales" }] }"#,
            "rules:r@attr:department",
        ),
    ];
    for (desc, when, want) in table {
        assert_eq!(
            grants_of(&when_doc(when), &ada(), &ada_groups(), true),
            [format!("team hit <- {want}")],
            "{desc}"
        );
    }
    // No `when`: always; the default role's own source.
    let text = "[[rule]]\nname = \"everyone\"\ngrant = { teams = [\"All\"] }\n";
    assert_eq!(
        grants_of(text, &bare(), &[], true),
        sorted(&[
            "role learner <- default:learner-role@active",
            "team All <- rules:everyone@always",
        ])
    );
    assert_eq!(super::DEFAULT_ROLE_SOURCE, "default:learner-role@active");
}

#[test]
fn the_same_name_from_two_rules_is_two_grants() {
    let text = r#"
[[rule]]
name = "a"
when = { group = "managers" }
grant = { teams = ["Leads"] }

[[rule]]
name = "b"
grant = { teams = ["Leads"] }
"#;
    assert_eq!(
        grants_of(text, &ada(), &ada_groups(), true),
        sorted(&[
            "role learner <- default:learner-role@active",
            "team Leads <- rules:a@group:g2",
            "team Leads <- rules:b@always",
        ])
    );
}

#[test]
fn external_ids_are_asked_for_only_when_a_rule_reads_them() {
    let cases = [
        (r#"{ group_external_id = "x" }"#, true),
        (
            r#"{ not = { any = [{ group = "a" }, { group_external_id = "x" }] } }"#,
            true,
        ),
        (r#"{ attribute = "group_external_ids", glob = "x*" }"#, true),
        (r#"{ group = "x" }"#, false),
        (r#"{ group_id = "x" }"#, false),
        (r#"{ attribute = "department", equals = "x" }"#, false),
    ];
    for (when, want) in cases {
        assert_eq!(
            rules(&when_doc(when)).needs_group_external_ids(),
            want,
            "{when}"
        );
    }
    let template = "[[rule]]\nname = \"r\"\ngrant = { teams = [\"{group_external_ids}\"] }\n";
    assert!(rules(template).needs_group_external_ids());
    let r = rules(&when_doc(r#"{ group = "x" }"#));
    assert!(r.exclusive_role());
    assert_eq!(r.name(), "rules");
    assert_eq!(r.len(), 1);
}

/// The diagnostics of a document that must not parse, as (line, message).
#[track_caller]
fn errors_of(text: &str) -> Vec<Diagnostic> {
    match parse(text) {
        Ok(_) => panic!("parsed, but should not:\n{text}"),
        Err(d) => d,
    }
}

#[test]
fn parse_errors_name_their_line() {
    // (description, document, [(line, part of the message)])
    type Case<'a> = (&'a str, &'a str, Vec<(u32, &'a str)>);
    let table: Vec<Case> = vec![
        (
            "TOML syntax error",
            "version = 1\n\n[[rule]]\nname = \"a\"\ngrant = { role = \"x\" \n",
            vec![(5, "unclosed inline table")],
        ),
        (
            "unknown key in a rule",
            "version = 1\n\n[[rule]]\nname = \"a\"\npriorty = 3\ngrant = { role = \"x\" }\n",
            vec![(5, "unknown field `priorty`")],
        ),
        (
            "unknown top-level key",
            "version = 1\ndefault_rol = \"x\"\n",
            vec![(2, "unknown field `default_rol`")],
        ),
        (
            "unknown key in a grant table",
            "[[rule]]\nname = \"a\"\n\n[rule.grant]\nrole = \"x\"\nteam = [\"t\"]\n",
            vec![(6, "unknown field `team`")],
        ),
        (
            "unknown key in a condition",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\", equal = \"x\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "unknown field `equal`")],
        ),
        (
            "unknown attribute",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"departmnt\", equals = \"x\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "unknown attribute 'departmnt'")],
        ),
        (
            "unknown core sub-attribute path",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"nickname.x-y z\", equals = \"x\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "is not an attribute path")],
        ),
        (
            "an enterprise schema without an attribute",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"urn:ietf:params:scim:schemas:extension:enterprise:2.0:User\", present = true }\ngrant = { role = \"x\" }\n",
            vec![(3, "names a schema, not an attribute")],
        ),
        (
            "invalid regex",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n\n[[rule]]\nname = \"b\"\nwhen = { attribute = \"title\", regex = \"(\" }\ngrant = { role = \"x\" }\n",
            vec![(7, "invalid regular expression '('")],
        ),
        (
            "a condition with two shapes",
            "[[rule]]\nname = \"a\"\nwhen = { group = \"x\", attribute = \"title\", equals = \"y\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "exactly one of")],
        ),
        (
            "a condition with no shape",
            "[[rule]]\nname = \"a\"\nwhen = { equals = \"y\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "this one has 0")],
        ),
        (
            "an attribute with two comparisons",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\", equals = \"y\", glob = \"z\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "attribute 'title' needs exactly one comparison")],
        ),
        (
            "an attribute with no comparison",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "it has 0")],
        ),
        (
            "a group with a comparison",
            "[[rule]]\nname = \"a\"\nwhen = { group = \"x\", glob = \"y*\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "'groups' takes no comparison")],
        ),
        (
            "not with a comparison",
            "[[rule]]\nname = \"a\"\nwhen = { not = { group = \"x\" }, equals = \"y\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "'not' takes no comparison")],
        ),
        (
            "an empty all",
            "[[rule]]\nname = \"a\"\nwhen = { all = [] }\ngrant = { role = \"x\" }\n",
            vec![(3, "'all' needs at least one condition")],
        ),
        (
            "an empty in",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\", in = [] }\ngrant = { role = \"x\" }\n",
            vec![(3, "'in' for 'title' lists no value")],
        ),
        (
            "an empty glob",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\", glob = \"\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "a glob is empty")],
        ),
        (
            "a comparison with a table",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\", equals = { x = 1 } }\ngrant = { role = \"x\" }\n",
            vec![(3, "expected text, a number or a boolean")],
        ),
        (
            "present with text",
            "[[rule]]\nname = \"a\"\nwhen = { attribute = \"title\", present = \"yes\" }\ngrant = { role = \"x\" }\n",
            vec![(3, "invalid type")],
        ),
        (
            "duplicate rule names, at the second",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n\n[[rule]]\nname = \"b\"\ngrant = { role = \"x\" }\n\n[[rule]]\nname = \"a\"\ngrant = { role = \"y\" }\n",
            vec![(10, "two rules are named 'a'")],
        ),
        (
            "duplicate rule names, the name also written as a value before",
            "[[rule]]\nname = \"Sales\"\nwhen = { group = \"Sales\" }\ngrant = { teams = [\"Sales\"] }\n\n[[rule]]\nname = \"Sales\"\ngrant = { role = \"x\" }\n",
            vec![(7, "two rules are named 'Sales'")],
        ),
        (
            "a rule that grants nothing",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n\n[[rule]]\nname = \"b\"\ngrant = {}\n",
            vec![(6, "rule 'b' grants nothing")],
        ),
        (
            "a rule that grants nothing, its name written as a value before",
            "[[rule]]\nname = \"a\"\ngrant = { teams = [\"b\"] }\n\n[[rule]]\nname = \"b\"\ngrant = { teams = [] }\n",
            vec![(6, "rule 'b' grants nothing")],
        ),
        (
            "a rule without a grant",
            "[[rule]]\nname = \"a\"\nwhen = { group = \"x\" }\n",
            vec![(1, "missing field `grant`")],
        ),
        (
            "every problem at once, in order",
            "[[rule]]\nname = \"a\"\ngrant = {}\n\n[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n",
            vec![
                (2, "rule 'a' grants nothing"),
                (6, "two rules are named 'a'"),
            ],
        ),
        (
            "version 2",
            "# rules\nversion = 2\n[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n",
            vec![(2, "version 2 is not supported")],
        ),
        (
            "a rule name that would break a source",
            "[[rule]]\nname = \"a@b\"\ngrant = { role = \"x\" }\n",
            vec![(2, "contains '@'")],
        ),
        (
            "an empty rule name",
            "[[rule]]\nname = \"  \"\ngrant = { role = \"x\" }\n",
            vec![(2, "1 to 100 characters")],
        ),
        (
            "an empty granted name",
            "[[rule]]\nname = \"a\"\ngrant = { role = \" \" }\n",
            vec![(3, "a granted name is empty")],
        ),
        (
            "an unknown placeholder",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"Dept {departmnt}\" }\n",
            vec![(3, "placeholder {departmnt}: unknown attribute 'departmnt'")],
        ),
        (
            "an empty placeholder",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"Dept {}\" }\n",
            vec![(3, "an attribute name is empty")],
        ),
        (
            "an unclosed placeholder",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"Dept {department\" }\n",
            vec![(3, "unmatched '{'")],
        ),
        (
            "an unmatched closing brace",
            "[[rule]]\nname = \"a\"\ngrant = { role = \"Dept }\" }\n",
            vec![(3, "unmatched '}'")],
        ),
        (
            "JSON type error",
            "{\n  \"version\": 1,\n  \"rule\": [\n    {\n      \"name\": \"a\",\n      \"priority\": \"high\",\n      \"grant\": {\"role\": \"x\"}\n    }\n  ]\n}\n",
            vec![(6, "invalid type: string \"high\", expected i64")],
        ),
        (
            "JSON syntax error",
            "{\n  \"version\": 1,\n  \"rule\": [\n    {\"name\": \"a\" \"grant\": {}}\n  ]\n}\n",
            vec![(4, "expected `,` or `}`")],
        ),
        (
            "JSON unknown attribute",
            "{\n  \"rule\": [\n    {\n      \"name\": \"a\",\n      \"when\": {\"attribute\": \"nope\", \"equals\": \"x\"},\n      \"grant\": {\"role\": \"x\"}\n    }\n  ]\n}\n",
            vec![(5, "unknown attribute 'nope'")],
        ),
        (
            "JSON unknown key",
            "{\n  \"rule\": [\n    {\n      \"name\": \"a\",\n      \"grants\": {\"role\": \"x\"}\n    }\n  ]\n}\n",
            vec![(5, "unknown field `grants`")],
        ),
        (
            "JSON version 2",
            "{\n  \"version\": 2,\n  \"rule\": [ {\"name\": \"a\", \"grant\": {\"role\": \"x\"}} ]\n}\n",
            vec![(2, "version 2 is not supported")],
        ),
        (
            "JSON duplicate names",
            "{\n  \"rules\": [\n    {\"name\": \"a\", \"grant\": {\"role\": \"x\"}},\n    {\"name\": \"a\", \"grant\": {\"role\": \"y\"}}\n  ]\n}\n",
            vec![(4, "two rules are named 'a'")],
        ),
    ];
    let mut failures = Vec::new();
    for (desc, text, want) in &table {
        let got = errors_of(text);
        let ok = got.len() == want.len()
            && got.iter().zip(want).all(|(d, (line, part))| {
                d.line == *line && d.message.contains(part) && d.severity == Severity::Error
            });
        if !ok {
            let got: Vec<(u32, &str)> = got.iter().map(|d| (d.line, d.message.as_str())).collect();
            failures.push(format!("{desc}: got {got:?}, expected {want:?}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn diagnostics_carry_columns_and_read_as_line_col() {
    let d = &errors_of(
        "[[rule]]\nname = \"a\"\nwhen = { attribute = \"departmnt\", equals = \"x\" }\ngrant = { role = \"x\" }\n",
    )[0];
    assert_eq!((d.line, d.column), (3, 8), "at the condition's brace");
    assert!(
        d.to_string()
            .starts_with("3:8: error: unknown attribute 'departmnt'"),
        "{d}"
    );
    let dup = &errors_of(
        "[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n[[rule]]\nname = \"a\"\ngrant = { role = \"x\" }\n",
    )[0];
    assert_eq!((dup.line, dup.column), (5, 9), "at the name itself");
    let json = &errors_of("{\n  \"version\": 3\n}\n")[0];
    assert_eq!((json.line, json.column), (2, 4));
    // A problem with no single place reads without one.
    let big = "#".repeat(super::MAX_DOCUMENT + 1);
    let d = &errors_of(&big)[0];
    assert_eq!((d.line, d.column), (0, 0));
    assert!(d.to_string().starts_with("error: the document has"), "{d}");
}

#[test]
fn json_documents_read_like_toml() {
    let json = r#"{
  "version": 1,
  "groups_as_teams": true,
  "default_role": "guest",
  "rules": [
    {
      "name": "sales",
      "priority": 2,
      "when": {"all": [{"group": "sales team"}, {"attribute": "employeeNumber", "in": [1234, "5"]}]},
      "grant": {"role": "seller", "learningPaths": ["Dept {department}"]}
    }
  ]
}"#;
    assert_eq!(
        grants_of(json, &ada(), &ada_groups(), true),
        sorted(&[
            "role seller <- rules:sales@group:g1",
            "team Sales Team <- default:groups-as-teams@group:g1",
            "team Managers <- default:groups-as-teams@group:g2",
            "learningPath Dept Sales <- rules:sales@group:g1",
        ])
    );
    assert_eq!(
        grants_of(json, &bare(), &[], true),
        ["role guest <- default:learner-role@active"]
    );
    // An empty document is the default mapping's role, without teams.
    assert_eq!(
        grants_of("", &ada(), &ada_groups(), true),
        ["role learner <- default:learner-role@active"]
    );
    assert_eq!(
        grants_of("{}", &ada(), &ada_groups(), true),
        ["role learner <- default:learner-role@active"]
    );
}

#[test]
fn check_warns_about_names_missing_from_the_catalogue() {
    let text = r#"default_role = "learner"

[[rule]]
name = "teachers"
when = { attribute = "title", glob = "*teacher*" }
grant = { role = "instructor" }

[[rule]]
name = "sales"
when = { attribute = "department", equals = "Sales" }
grant = { learning_paths = ["Known Path", "Sales 101"], teams = ["No Such Team"] }

[[rule]]
name = "titles"
grant = { role = "{title}", learning_paths = ["Path {title}"] }
"#;
    let mut lms = MemLms::new();
    lms.catalogue
        .insert((GrantKind::LearningPath, "Known Path".into()));
    let report = crate::check_mapping(text, Some(&mut lms)).unwrap();
    assert!(report.valid(), "{:?}", report.diagnostics);
    assert_eq!(report.rules, 3);
    let got: Vec<(Severity, u32, u32)> = report
        .diagnostics
        .iter()
        .map(|d| (d.severity, d.line, d.column))
        .collect();
    assert_eq!(
        got,
        [(Severity::Warning, 6, 19), (Severity::Warning, 11, 44)],
        "{:?}",
        report.diagnostics
    );
    assert!(
        report.diagnostics[0]
            .message
            .contains("rule 'teachers' names the role 'instructor'"),
        "{}",
        report.diagnostics[0]
    );
    assert!(
        report.diagnostics[1]
            .message
            .contains("the learningPath 'Sales 101'"),
        "{}",
        report.diagnostics[1]
    );
    assert!(
        report.diagnostics[0]
            .to_string()
            .starts_with("6:19: warning: ")
    );

    // Once the catalogue has them, nothing is left to say.
    lms.catalogue.insert((GrantKind::Role, "instructor".into()));
    lms.catalogue
        .insert((GrantKind::LearningPath, "Sales 101".into()));
    let report = crate::check_mapping(text, Some(&mut lms)).unwrap();
    assert!(report.diagnostics.is_empty(), "{:?}", report.diagnostics);

    // The default role is checked too, even when not written.
    let mut empty = MemLms::default();
    let report = crate::check_mapping(
        "[[rule]]\nname = \"a\"\ngrant = { teams = [\"t\"] }\n",
        Some(&mut empty),
    )
    .unwrap();
    assert!(report.valid());
    assert_eq!(report.diagnostics.len(), 1);
    assert!(
        report.diagnostics[0]
            .message
            .contains("default_role names the role 'learner'"),
        "{}",
        report.diagnostics[0]
    );

    // Without an LMS only the document is checked.
    let report = crate::check_mapping(text, None).unwrap();
    assert!(report.valid() && report.diagnostics.is_empty());

    // A document that does not parse is invalid and counts no rules.
    let report = crate::check_mapping("[[rule]]\nname = 3\n", Some(&mut lms)).unwrap();
    assert!(!report.valid());
    assert_eq!(report.rules, 0);
    assert_eq!(report.diagnostics[0].line, 2);
}

fn outcome<'e>(rules: &'e [RuleOutcome], name: &str) -> &'e RuleOutcome {
    rules
        .iter()
        .find(|o| o.rule == name)
        .unwrap_or_else(|| panic!("no outcome for {name}"))
}

#[test]
fn explain_traces_every_test_and_the_values_it_saw() {
    let text = r#"
[[rule]]
name = "sales managers"
priority = 1
description = "Managers in sales"
when = { all = [{ group = "managers" }, { attribute = "department", in = ["Sales", "Ops"] }, { not = { attribute = "region", present = true } }] }
grant = { role = "manager" }

[[rule]]
name = "support"
when = { any = [{ attribute = "department", equals = "Support" }, { attribute = "email_domain", glob = "*.org" }] }
grant = { role = "agent", teams = ["Support"] }

[[rule]]
name = "contractors"
when = { attribute = "userType", equals = "Contractor" }
grant = { role = "contractor" }

[[rule]]
name = "dept team"
grant = { teams = ["Dept {costCenter} {region}"] }
"#;
    let r = rules(text);
    let user = ada();
    let groups = ada_groups();
    let x = r.evaluate(&facts(&user, &groups, true), true);
    assert_eq!(x.rules.len(), 4, "explain lists every rule");

    let managers = outcome(&x.rules, "sales managers");
    assert!(managers.matched);
    assert_eq!(managers.priority, 1);
    assert_eq!(managers.via.as_deref(), Some("group:g2"));
    let c = managers.condition.as_ref().unwrap();
    assert_eq!((c.test.as_str(), c.result), ("all", true));
    let seen = |t: &Trace| (t.test.clone(), t.result, t.values.clone());
    assert_eq!(
        c.children.iter().map(seen).collect::<Vec<_>>(),
        [
            (
                "groups equals \"managers\" ignoring case".to_string(),
                true,
                Some(vec!["Sales Team".to_string(), "Managers".to_string()])
            ),
            (
                "department in [\"Sales\", \"Ops\"]".to_string(),
                true,
                Some(vec!["Sales".to_string()])
            ),
            ("not".to_string(), true, None),
        ]
    );
    let not = &c.children[2].children[0];
    assert_eq!(
        seen(not),
        ("region present".to_string(), false, Some(vec![]))
    );
    assert!(managers.notes.is_empty(), "{:?}", managers.notes);

    // The losing role says which rule won it.
    let support = outcome(&x.rules, "support");
    assert!(support.matched);
    assert_eq!(support.via.as_deref(), Some("attr:email_domain"));
    let any = support.condition.as_ref().unwrap();
    assert_eq!(
        any.children[1].values,
        Some(vec!["example.com".to_string(), "personal.org".to_string()])
    );
    assert_eq!(
        support.notes,
        [
            "its role 'agent' (priority 0) lost to 'manager' from rule 'sales managers': a learner has one mapped role"
        ]
    );

    // A rule that did not match is listed, with what it saw.
    let contractors = outcome(&x.rules, "contractors");
    assert!(!contractors.matched);
    assert_eq!(contractors.via, None);
    let t = contractors.condition.as_ref().unwrap();
    assert_eq!(
        seen(t),
        (
            "userType equals \"Contractor\"".to_string(),
            false,
            Some(vec!["Employee".to_string()])
        )
    );
    assert!(contractors.notes.is_empty());

    // A template naming nothing says so.
    let dept = outcome(&x.rules, "dept team");
    assert!(dept.matched && dept.condition.is_none());
    assert_eq!(
        dept.notes,
        [
            "'Dept {costCenter} {region}' names nothing for this user (an attribute it uses has no value)"
        ]
    );

    assert!(x.notes.is_empty(), "a rule gave the role: {:?}", x.notes);
    assert_eq!(
        x.grants.iter().map(show).collect::<Vec<_>>(),
        [
            "role manager <- rules:sales managers@group:g2",
            "team Support <- rules:support@attr:email_domain",
        ]
    );

    // Without explain, only matched rules are kept and nothing is traced.
    let plain = r.evaluate(&facts(&user, &groups, true), false);
    assert_eq!(plain.grants, x.grants);
    let names: Vec<&str> = plain.rules.iter().map(|o| o.rule.as_str()).collect();
    assert_eq!(names, ["sales managers", "support", "dept team"]);
    assert!(
        plain
            .rules
            .iter()
            .all(|o| o.condition.is_none() && o.notes.is_empty())
    );

    // The default role is a note of its own.
    let bare_user = bare();
    let x = r.evaluate(&facts(&bare_user, &[], true), true);
    assert_eq!(
        x.notes,
        ["no matching rule grants a role: the default role 'learner' applies"]
    );
    // Explain serialises for the admin API.
    let v = serde_json::to_value(&x.rules).unwrap();
    assert_eq!(v[0]["rule"], "sales managers");
    assert_eq!(v[0]["matched"], false);
    assert_eq!(v[0]["condition"]["children"][0]["values"], json!([]));
    assert!(v[3].get("via").is_none());
}

#[test]
fn explain_notes_every_losing_role() {
    let text = r#"
[[rule]]
name = "a"
grant = { role = "ra" }

[[rule]]
name = "b"
priority = 7
grant = { role = "rb" }

[[rule]]
name = "c"
priority = 7
grant = { role = "rc" }
"#;
    let x = rules(text).evaluate(&facts(&bare(), &[], true), true);
    assert!(outcome(&x.rules, "b").notes.is_empty());
    assert_eq!(
        outcome(&x.rules, "a").notes,
        ["its role 'ra' (priority 0) lost to 'rb' from rule 'b': a learner has one mapped role"]
    );
    assert_eq!(
        outcome(&x.rules, "c").notes,
        ["its role 'rc' (priority 7) lost to 'rb' from rule 'b': a learner has one mapped role"]
    );
    assert_eq!(
        x.grants.iter().map(show).collect::<Vec<_>>(),
        ["role rb <- rules:b@always"]
    );
}

#[test]
fn catalogue_names_are_the_literal_ones() {
    let r = rules(
        r#"
default_role = "guest"
[[rule]]
name = "a"
grant = { role = " spaced ", learning_paths = ["LP {department}", "{{braced}}"] }
"#,
    );
    assert_eq!(
        r.named(GrantKind::Role),
        [
            ("guest".to_string(), "default_role".to_string()),
            ("spaced".to_string(), "rule 'a'".to_string()),
        ]
    );
    assert_eq!(
        r.named(GrantKind::LearningPath),
        [("{braced}".to_string(), "rule 'a'".to_string())]
    );
    assert!(r.named(GrantKind::Team).is_empty());
}
