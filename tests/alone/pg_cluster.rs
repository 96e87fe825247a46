//! The tests' PostgreSQL cluster (tests/support/postgres.rs), on its own:
//! what the end-to-end tests with `SCIM_TEST_BACKEND=postgres` and the
//! outage test rely on.

use crate::support::postgres::Cluster;

/// A cluster starts, serves a database of its own, refuses connections once
/// stopped, and serves the same database again once started again.
#[test]
fn postgres_cluster_starts_serves_and_restarts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(dir.path());
    let url = cluster.create_database();
    assert!(
        url.starts_with(&format!(
            "postgres://postgres@127.0.0.1:{}/",
            cluster.port()
        )),
        "{url}"
    );
    assert_ne!(url, cluster.create_database(), "each database is new");
    let select_one = |url: &str| -> Result<i32, postgres::Error> {
        let mut client = postgres::Client::connect(url, postgres::NoTls)?;
        client.batch_execute("CREATE TABLE IF NOT EXISTS kept (v INTEGER)")?;
        Ok(client.query_one("SELECT 1", &[])?.get(0))
    };
    assert_eq!(select_one(&url).expect("SELECT 1"), 1);

    cluster.stop();
    let refused = postgres::Client::connect(&url, postgres::NoTls);
    assert!(refused.is_err(), "a stopped cluster accepted a connection");

    cluster.start_again();
    assert_eq!(select_one(&url).expect("SELECT 1 after the restart"), 1);
    let mut client = postgres::Client::connect(&url, postgres::NoTls).expect("connect");
    let kept: i64 = client
        .query_one(
            "SELECT count(*) FROM pg_tables WHERE tablename = 'kept'",
            &[],
        )
        .expect("query")
        .get(0);
    assert_eq!(kept, 1, "the database survived the restart");
}
