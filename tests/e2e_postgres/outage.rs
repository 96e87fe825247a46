//! PostgreSQL stopped under a running server: requests are answered 503
//! with a detail while it is down, the server stays up, and service returns
//! by itself when the database does, without a restart.

use std::time::{Duration, Instant};

use crate::support::postgres::Cluster;
use crate::support::{Server, USER_SCHEMA};

#[test]
fn postgres_down_for_10_s_gives_503s_and_service_returns_without_a_restart() {
    let pg_dir = tempfile::tempdir().expect("temp dir");
    let cluster = Cluster::start(pg_dir.path());
    let db = cluster.create_database();
    let server = Server::launch(
        tempfile::tempdir().expect("temp dir"),
        db,
        "outage-token".into(),
        &[],
        &[],
    );
    server.create_user("before");

    cluster.stop();
    let stopped = Instant::now();
    let mut refused = 0;
    while stopped.elapsed() < Duration::from_secs(10) {
        for r in [
            server.get("/Users?count=1"),
            server.post(
                "/Users",
                &serde_json::json!({"schemas": [USER_SCHEMA], "userName": "during"}),
            ),
        ] {
            assert_eq!(r.status, 503, "{}", r.text);
            assert!(
                r.json["detail"].as_str().is_some_and(|d| !d.is_empty()),
                "{}",
                r.text
            );
            refused += 1;
        }
        // Alive, but not ready: a load balancer sends its traffic elsewhere.
        let ready = server.send_as(None, "GET", &format!("{}/readyz", server.origin()), None);
        assert_eq!(ready.status, 503, "{}", ready.text);
        assert_eq!(ready.json["ready"], false, "{}", ready.text);
        assert!(
            ready.json["reason"].as_str().is_some_and(|d| !d.is_empty()),
            "{}",
            ready.text
        );
        let healthz = format!("{}/healthz", server.origin());
        server.send_as(None, "GET", &healthz, None).expect(200);
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(refused >= 2);

    cluster.start_again();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let r = server.get("/Users?count=1");
        if r.status == 200 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.text);
        assert!(
            Instant::now() < deadline,
            "no service 30 s after PostgreSQL returned: {}",
            r.text
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let ready = format!("{}/readyz", server.origin());
    server.send_as(None, "GET", &ready, None).expect(200);
    server.create_user("after");
    let list = server.get("/Users").expect(200).json;
    assert_eq!(list["totalResults"], 2, "only acknowledged writes: {list}");
}
