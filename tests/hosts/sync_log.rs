//! The sync log through `/test/v1/events`: what each write did to the user
//! and its learner, oldest first, one change id per request; failures too.

use serde_json::{Value, json};

use crate::support::{Host, USER_SCHEMA, unique};

/// The events about resource `id` (its User and Learner events), in log
/// order.
pub fn events_of(h: &Host, id: &str) -> Vec<Value> {
    h.events()
        .into_iter()
        .filter(|e| e["resourceId"] == id)
        .collect()
}

/// The position of the first event of this type, action and status.
#[track_caller]
fn position(evs: &[Value], resource_type: &str, action: &str, status: &str) -> usize {
    evs.iter()
        .position(|e| {
            e["resourceType"] == resource_type && e["action"] == action && e["status"] == status
        })
        .unwrap_or_else(|| {
            panic!(
                "no {status} {resource_type} {action} event among {}",
                serde_json::to_string_pretty(evs).unwrap()
            )
        })
}

/// Create, update, disable: a User event for each, with the learner's
/// events under the same change id, oldest first.
pub fn writes_are_logged_in_order(h: &Host) {
    let name = unique("log.user");
    let id = h.create_user(&name);
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "replace", "path": "title", "value": "Logged"}]),
    )
    .expect(200);
    h.patch(
        &format!("/Users/{id}"),
        json!([{"op": "Replace", "path": "active", "value": "False"}]),
    )
    .expect(200);

    let evs = events_of(h, &id);
    let create = position(&evs, "User", "create", "success");
    let update = position(&evs, "User", "update", "success");
    let disable = position(&evs, "User", "disable", "success");
    assert!(
        create < update && update < disable,
        "not oldest first: {}",
        serde_json::to_string_pretty(&evs).unwrap()
    );
    let learner_create = position(&evs, "Learner", "create", "success");
    let suspend = position(&evs, "Learner", "suspend", "success");
    for e in &evs {
        for key in ["requestId", "changeId"] {
            assert!(
                e[key].as_str().is_some_and(|s| !s.is_empty()),
                "no {key}: {e}"
            );
        }
        assert!(e["reason"].is_null(), "a success with a reason: {e}");
    }
    assert_eq!(
        evs[create]["resourceName"],
        name.as_str(),
        "{}",
        evs[create]
    );
    assert_eq!(
        evs[create]["changeId"], evs[learner_create]["changeId"],
        "one request, one change id"
    );
    assert_eq!(evs[disable]["changeId"], evs[suspend]["changeId"]);
    assert_ne!(evs[create]["changeId"], evs[disable]["changeId"]);
    // Within a request the order is the host's; across requests it is
    // the order of the requests.
    assert!(
        learner_create < update && update < suspend,
        "{}",
        serde_json::to_string_pretty(&evs).unwrap()
    );
}

/// A refused write is logged as a failure with a reason, about the
/// resource it named.
pub fn failures_are_logged(h: &Host) {
    let taken = unique("log.taken");
    h.create_user(&taken);
    let id = h.create_user(&unique("log.failing"));
    h.put(
        &format!("/Users/{id}"),
        &json!({"schemas": [USER_SCHEMA], "userName": taken}),
    )
    .expect_error(409, Some("uniqueness"));
    let evs = events_of(h, &id);
    let failed = &evs[position(&evs, "User", "replace", "failure")];
    assert!(
        failed["reason"].as_str().is_some_and(|r| !r.is_empty()),
        "a failure without a reason: {failed}"
    );
    // Nothing of it succeeded.
    assert!(
        !evs.iter()
            .any(|e| e["status"] == "success" && e["action"] != "create"),
        "{}",
        serde_json::to_string_pretty(&evs).unwrap()
    );
}
