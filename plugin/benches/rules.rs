//! Mapping rules, natively: parsing a realistic document, and evaluating it
//! for one user (the cost every mapped user pays), next to the default
//! mapping.
//!
//! Run: `cargo bench -p scim-engine --bench rules`

use criterion::{Criterion, criterion_group, criterion_main};
use scim_engine::DefaultMapper;
use scim_engine::mapper::{Facts, GroupFact, Mapper};
use serde_json::json;

const RULES: &str = r#"
version = 1
groups_as_teams = true
default_role = "learner"

[[rule]]
name = "sales-onboarding"
when = { group = "Sales" }
grant.learning_paths = ["Sales Onboarding"]

[[rule]]
name = "team-leads"
priority = 10
when.any = [{ group = "Team Leads" }, { attribute = "title", glob = "*manager*" }]
grant.role = "team-lead"

[[rule]]
name = "contractors"
priority = 20
when = { attribute = "userType", equals_ignore_case = "contractor" }
grant.role = "contractor"

[[rule]]
name = "germany-compliance"
when.all = [
  { attribute = "country", in = ["DE", "AT"] },
  { not = { attribute = "userType", equals_ignore_case = "contractor" } },
]
grant.learning_paths = ["DSGVO Basics"]

[[rule]]
name = "department-teams"
when = { attribute = "department", present = true }
grant.teams = ["Dept {department}"]

[[rule]]
name = "engineering"
when = { attribute = "department", regex = "(?i)eng.*|r&d" }
grant.learning_paths = ["Secure Coding"]

[[rule]]
name = "acme-staff"
when = { attribute = "email_domain", equals = "acme.example" }
grant.learning_paths = ["Code of Conduct"]

[[rule]]
name = "finance-cost-centres"
when = { attribute = "costCenter", glob = "FIN-*" }
grant.teams = ["Finance"]
"#;

fn bench(c: &mut Criterion) {
    let user = json!({
        "userName": "ada@acme.example",
        "title": "Engineering Manager",
        "userType": "Employee",
        "emails": [{"value": "ada@acme.example", "primary": true}],
        "addresses": [{"country": "DE", "locality": "Berlin"}],
        "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User": {
            "department": "Engineering", "costCenter": "ENG-42",
            "manager": {"value": "m1"}
        }
    });
    let groups = vec![
        GroupFact {
            id: "g1".into(),
            display_name: Some("Sales".into()),
            external_id: None,
        },
        GroupFact {
            id: "g2".into(),
            display_name: Some("Berlin Office".into()),
            external_id: None,
        },
        GroupFact {
            id: "g3".into(),
            display_name: Some("All Staff".into()),
            external_id: None,
        },
    ];
    let facts = Facts {
        id: "u1",
        active: true,
        resource: &user,
        groups: &groups,
    };
    let rules = scim_engine::rules::parse(RULES).expect("valid rules");
    assert!(rules.desired(&facts).unwrap().len() >= 6);

    c.bench_function("rules: parse 8 rules", |b| {
        b.iter(|| scim_engine::rules::parse(std::hint::black_box(RULES)).unwrap())
    });
    let installed = scim_engine::rules::normalized(RULES).unwrap();
    c.bench_function("rules: read installed rules (normalized JSON)", |b| {
        b.iter(|| scim_engine::rules::parse_installed(std::hint::black_box(&installed)).unwrap())
    });
    c.bench_function("rules: map one user (8 rules)", |b| {
        b.iter(|| rules.desired(std::hint::black_box(&facts)).unwrap())
    });
    c.bench_function("rules: explain one user (8 rules)", |b| {
        b.iter(|| rules.explain(std::hint::black_box(&facts)).unwrap())
    });
    c.bench_function("default mapping: map one user", |b| {
        b.iter(|| DefaultMapper.desired(std::hint::black_box(&facts)).unwrap())
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
