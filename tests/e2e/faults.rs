//! A panic anywhere in a request or a background batch is contained: the
//! request answers 500 (in the SCIM Error shape on SCIM paths, naming its
//! request id), nothing of it is saved, the failure is recorded, and the
//! server goes on serving every tenant. The panics are injected with
//! `SCIM_FAULT=point@tenant` (debug builds only, see `scim_host::fault`)
//! for tenant A (`default`); tenant B shares the server and its database.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::{GROUP_SCHEMA, LmsServer, Resp, USER_SCHEMA, grants, item, learner};

const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";
/// Tenant A, the server's own, where the faults are armed.
const A: &str = "default";

/// A server with the fault `point` armed for tenant A, and tenant B.
struct Two {
    s: LmsServer,
    b_scim: String,
    b_admin: String,
}

impl Two {
    fn start(point: &str) -> Self {
        let fault = format!("{point}@{A}");
        let s = LmsServer::start_env(&[], &[("SCIM_FAULT", &fault)]);
        let b = s.cli_json(&["tenant", "add", "b", "--json"]);
        let token = |k: &str| b[k].as_str().expect(k).to_string();
        Two {
            b_scim: token("scimToken"),
            b_admin: token("adminToken"),
            s,
        }
    }

    /// A SCIM request as tenant B.
    fn b(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.s
            .send_as(Some(&self.b_scim), method, &self.s.url(path), body)
    }

    /// An admin API request as tenant B.
    fn b_admin(&self, method: &str, path: &str, body: Option<&Value>) -> Resp {
        self.s
            .send_as(Some(&self.b_admin), method, &self.s.admin_url(path), body)
    }

    /// The server goes on: B creates a user and reads it back, A reads its
    /// configuration (which a poisoned connection refused with a 503).
    #[track_caller]
    fn assert_serving(&self, b_user: &str) {
        for i in 0..3 {
            let r = self
                .b("POST", "/Users", Some(&user(&format!("{b_user}-{i}"))))
                .expect(201);
            let id = r.json["id"].as_str().expect("id");
            self.b("GET", &format!("/Users/{id}"), None).expect(200);
        }
        self.s.get("/ServiceProviderConfig").expect(200);
    }
}

fn user(name: &str) -> Value {
    json!({"schemas": [USER_SCHEMA], "userName": name})
}

fn rename(name: &str) -> Value {
    json!({"schemas": [PATCH_OP],
           "Operations": [{"op": "replace", "path": "displayName", "value": name}]})
}

/// Asserts the 500 of a request that panicked: a SCIM Error whose detail
/// names the request id of its `x-request-id` header; returns that id.
#[track_caller]
fn assert_panicked(r: Resp) -> String {
    let r = r.expect_error(500, None);
    let id = r
        .header("x-request-id")
        .expect("x-request-id header")
        .to_string();
    let detail = r.json["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(&id),
        "detail without the request id: {detail}"
    );
    assert!(detail.contains("nothing was changed"), "{detail}");
    id
}

/// A's sync-log events, newest first.
#[track_caller]
fn events(s: &LmsServer, query: &str) -> Vec<Value> {
    let r = s
        .admin_get(&format!("/admin/v1/events?{query}"))
        .expect(200);
    r.json["events"].as_array().expect("events").clone()
}

/// Asserts A's sync log has the failure of request `request_id`, a panic.
#[track_caller]
fn assert_failure_logged(s: &LmsServer, request_id: &str, action: &str) {
    let failed = events(s, "failed=true&limit=100");
    let e = failed
        .iter()
        .find(|e| e["requestId"] == request_id)
        .unwrap_or_else(|| panic!("no failed event of {request_id} in {failed:?}"));
    assert_eq!(e["status"], "failure", "{e}");
    assert_eq!(e["reason"], "panic", "{e}");
    assert_eq!(e["action"], action, "{e}");
    assert!(
        e["detail"]
            .as_str()
            .is_some_and(|d| d.contains("injected fault")),
        "{e}"
    );
}

#[test]
fn a_panic_before_commit_saves_nothing_and_the_server_goes_on() {
    let t = Two::start("before-commit");
    let s = &t.s;
    // Twice: a connection left inside the first one's transaction would
    // have refused the second (and every write after it) with a 503.
    for name in ["ann", "bea"] {
        let id = assert_panicked(s.post("/Users", &user(name)));
        assert_eq!(s.count("/Users", &format!(r#"userName eq "{name}""#)), 0);
        assert_failure_logged(s, &id, "create");
        t.assert_serving(&format!("b-{name}"));
    }
    // Nothing of A's requests but their failures is in its sync log.
    let all = events(s, "limit=100");
    assert!(all.iter().all(|e| e["status"] == "failure"), "{all:?}");
    assert_eq!(all.len(), 2, "{all:?}");
    // A's writes that commit nothing reach no commit: a missing user is a
    // 404, and the admin API (its own transactions) still writes for A.
    s.delete("/Users/no-such-user").expect_error(404, None);
    s.admin(
        "POST",
        "/admin/v1/catalogue/teams",
        Some(&json!({"name": "Mentors"})),
    )
    .expect(201);
    // B's users are all there.
    let r = t.b("GET", "/Users", None).expect(200);
    assert_eq!(r.json["totalResults"], 6, "{}", r.text);
}

#[test]
fn a_panic_in_an_lms_effect_saves_nothing_and_the_server_goes_on() {
    let t = Two::start("lms-effect");
    let s = &t.s;
    // The panic is in a host import the engine called, half-way through
    // applying the learner's changes.
    let id = assert_panicked(s.post("/Users", &user("ann")));
    assert_eq!(s.count("/Users", r#"userName eq "ann""#), 0);
    assert_failure_logged(s, &id, "create");
    let all = events(s, "limit=100");
    assert_eq!(all.len(), 1, "only the failure: {all:?}");
    t.assert_serving("b");
    // Again, once the server went on serving others.
    let id = assert_panicked(s.post("/Users", &user("ann")));
    assert_failure_logged(s, &id, "create");
    // A's writes that apply no LMS change succeed: a group without members.
    s.post(
        "/Groups",
        &json!({"schemas": [GROUP_SCHEMA], "displayName": "Empty"}),
    )
    .expect(201);
    t.assert_serving("b-again");
    let r = s.get("/Users").expect(200);
    assert_eq!(r.json["totalResults"], 0, "{}", r.text);
}

/// A group of `n` members with its id and theirs, created by `post`.
fn group(post: impl Fn(&str, &Value) -> Resp, prefix: &str, n: usize) -> (String, Vec<String>) {
    let ids: Vec<String> = (0..n)
        .map(|i| {
            let r = post("/Users", &user(&format!("{prefix}{i}"))).expect(201);
            r.json["id"].as_str().expect("id").to_string()
        })
        .collect();
    let members: Vec<Value> = ids.iter().map(|id| json!({"value": id})).collect();
    let r = post(
        "/Groups",
        &json!({"schemas": [GROUP_SCHEMA], "displayName": "Old Cohort", "members": members}),
    )
    .expect(201);
    (r.json["id"].as_str().expect("id").to_string(), ids)
}

/// The teams of a learner, by name.
fn team_names(l: &Value) -> Vec<String> {
    grants(l, "teams").into_iter().map(|(n, _)| n).collect()
}

/// Polls until `done` holds (90 s at most, a hang guard).
#[track_caller]
fn wait_for(what: &str, s: &LmsServer, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(90);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within 90 s; server log:\n{}",
            s.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_panic_in_a_background_batch_fails_the_task_and_the_others_go_on() {
    let t = Two::start("drain-batch");
    let s = &t.s;
    let (a_group, a_members) = group(|p, b| s.post(p, b), "a", 3);
    let (b_group, b_members) = group(|p, b| t.b("POST", p, Some(b)), "b", 3);
    let team = |l: &Value| team_names(l);
    assert_eq!(team(&learner(s, &a_members[0])), ["Old Cohort"]);

    // The renames commit; their re-mappings run in the background, A's
    // first.
    s.patch(&format!("/Groups/{a_group}"), &rename("New Cohort"))
        .expect(204);
    t.b(
        "PATCH",
        &format!("/Groups/{b_group}"),
        Some(&rename("New Cohort")),
    )
    .expect(204);

    let a_task = || {
        let r = s.admin_get("/admin/v1/sync").expect(200);
        let tasks = r.json["tasks"].as_array().expect("tasks").clone();
        assert_eq!(tasks.len(), 1, "{}", r.text);
        tasks[0].clone()
    };
    // B's re-mapping completes while A's task is still being retried: the
    // failing task backs off behind it instead of holding it up until it
    // stalls.
    let b_learner = |id: &str| {
        t.b_admin("GET", &format!("/admin/v1/learners/{id}"), None)
            .expect(200)
            .json
    };
    wait_for("B's re-mapping", s, || {
        b_members
            .iter()
            .all(|id| team(&b_learner(id)) == ["New Cohort"])
    });
    let task = a_task();
    assert_eq!(
        task["stalled"], false,
        "A's task stalled before B's ran: {task}"
    );
    let r = t.b_admin("GET", "/admin/v1/sync", None).expect(200);
    assert_eq!(r.json["pending"], 0, "{}", r.text);

    // A's task fails at every attempt, each recorded with the panic, until
    // it is set aside.
    wait_for("A's task to stall", s, || a_task()["stalled"] == true);
    let task = a_task();
    assert_eq!(
        task["work"],
        json!({"remap": "renamed", "group": a_group}),
        "{task}"
    );
    assert_eq!(task["attempts"], 10, "{task}");
    assert!(
        task["lastError"]
            .as_str()
            .is_some_and(|e| e.contains("panicked: injected fault at drain-batch")),
        "{task}"
    );
    // Nothing of A's batches was saved: its learners keep the old team.
    for id in &a_members {
        assert_eq!(team(&learner(s, id)), ["Old Cohort"], "{id}");
        assert_eq!(
            grants(&learner(s, id), "teams")[0],
            item(
                "Old Cohort",
                &[&format!("default:groups-as-teams@group:{a_group}")]
            ),
        );
    }
    // The server goes on, for A's requests too.
    s.post("/Users", &user("a-later")).expect(201);
    t.assert_serving("b-later");
}

#[test]
fn a_panic_in_an_admin_handler_is_a_500_and_the_server_goes_on() {
    let t = Two::start("admin");
    let s = &t.s;
    let a_user = s.create_user("ann");
    let grant = format!("/admin/v1/learners/{a_user}/teams");
    for _ in 0..2 {
        let r = s
            .admin("POST", &grant, Some(&json!({"name": "Sneaky"})))
            .expect(500);
        assert_eq!(r.json["status"], 500, "{}", r.text);
        assert!(
            r.json["detail"]
                .as_str()
                .is_some_and(|d| d.contains("nothing was changed")),
            "{}",
            r.text
        );
        // Nothing of the grant was saved, and A's admin reads go on.
        assert_eq!(team_names(&learner(s, &a_user)), Vec::<String>::new());
    }
    // B's admin writes and everyone's SCIM requests go on.
    let b_user = t.b("POST", "/Users", Some(&user("bob"))).expect(201);
    let b_user = b_user.json["id"].as_str().expect("id");
    let r = t
        .b_admin(
            "POST",
            &format!("/admin/v1/learners/{b_user}/teams"),
            Some(&json!({"name": "Mentors"})),
        )
        .expect(201);
    assert_eq!(team_names(&r.json), ["Mentors"]);
    s.create_user("a-later");
    t.assert_serving("b");
}
