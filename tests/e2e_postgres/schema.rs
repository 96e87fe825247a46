//! A PostgreSQL database created by an older scim-host is migrated in
//! place: `db status` names the gap and `db migrate` closes it, keeping the
//! data.

use std::process::Command;

use crate::support::postgres;

fn scim_host(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(args)
        .output()
        .expect("scim-host runs");
    assert!(
        out.status.success(),
        "scim-host {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints JSON")
}

/// Tables that migrations after 6 brought: 7 the console's sessions, alert
/// webhooks and their deliveries (it also indexed the events by request and
/// change), 8 the admin jobs.
const AFTER_SIX: [&str; 4] = ["admin_sessions", "alert_hooks", "alert_deliveries", "jobs"];

#[test]
fn a_version_6_database_migrates_to_the_latest_and_keeps_its_tenants() {
    let url = postgres::shared().create_database();
    let created = scim_host(&["db", "migrate", "--json", "--db", &url]);
    let latest = created["after"]["latest"].as_u64().expect("latest");
    assert!(latest >= 7, "{created}");
    assert_eq!(created["after"]["version"], latest, "{created}");
    let out = Command::new(env!("CARGO_BIN_EXE_scim-host"))
        .args(["tenant", "add", "kept", "--db", &url])
        .output()
        .expect("scim-host runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Back to what a version-6 build created.
    let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).expect("connect");
    for table in AFTER_SIX {
        client
            .batch_execute(&format!("DROP TABLE {table}"))
            .expect("drop");
    }
    client
        .batch_execute(
            "DROP INDEX events_by_request; DROP INDEX events_by_change;
             UPDATE scim_schema SET version = 6",
        )
        .expect("set version");

    let status = scim_host(&["db", "status", "--json", "--db", &url]);
    assert_eq!(status["version"], 6, "{status}");
    assert_eq!(status["latest"], latest, "{status}");

    let migrated = scim_host(&["db", "migrate", "--json", "--db", &url]);
    assert_eq!(migrated["before"]["version"], 6, "{migrated}");
    assert_eq!(migrated["after"]["version"], latest, "{migrated}");
    for table in AFTER_SIX {
        let n: i64 = client
            .query_one(&format!("SELECT count(*) FROM {table}"), &[])
            .expect("the table is back")
            .get(0);
        assert_eq!(n, 0, "{table}");
    }
    let tenants: i64 = client
        .query_one("SELECT count(*) FROM tenants WHERE name = 'kept'", &[])
        .expect("tenants")
        .get(0);
    assert_eq!(tenants, 1);
}
