//! Two `scim-host` replicas on one PostgreSQL database serve the same
//! tenant with the guarantees of one process: concurrent member PATCHes
//! sent to different replicas lose nothing, an `If-Match` race has one
//! winner, and a replica killed in the middle of a group rename's drain
//! leaves the rest of it to the other, with nothing applied twice.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::lms::{
    assert_learner, bulk_users, events, from_group, granting_team, mapped_role, patch_ops,
    team_names, touches, user_events, wait_synced,
};
use crate::support::{LmsServer, item, learner};

fn member_ids(group: &Value) -> BTreeSet<String> {
    group["members"]
        .as_array()
        .map(|ms| {
            ms.iter()
                .filter_map(|m| m["value"].as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn member_patches_split_across_two_replicas_lose_nothing() {
    let a = LmsServer::start();
    let b = a.replica();
    const N: usize = 160;
    let ids = bulk_users(&a, N);
    let g = a.create_group("Cohort", &[]);
    // Eight clients at once, each adding its members one PATCH at a time
    // and alternating between the replicas.
    std::thread::scope(|scope| {
        for (t, chunk) in ids.chunks(N / 8).enumerate() {
            let (a, b, g) = (&a, &b, &g);
            scope.spawn(move || {
                for (i, id) in chunk.iter().enumerate() {
                    let replica = if (t + i) % 2 == 0 { a } else { b };
                    let r = replica.patch(
                        &format!("/Groups/{g}"),
                        &patch_ops(
                            json!([{"op": "add", "path": "members", "value": [{"value": id}]}]),
                        ),
                    );
                    assert!(matches!(r.status, 200 | 204), "{}", r.text);
                }
            });
        }
    });
    let want: BTreeSet<String> = ids.iter().cloned().collect();
    for replica in [&a, &b] {
        let group = replica.get(&format!("/Groups/{g}")).expect(200).json;
        assert_eq!(member_ids(&group), want, "members lost");
    }
    wait_synced(&a);
    for id in &ids {
        let l = learner(&b, id);
        assert_eq!(team_names(&l), ["Cohort"], "{id}: {l}");
    }
}

#[test]
fn an_if_match_race_across_replicas_has_one_winner() {
    let a = LmsServer::start();
    let b = a.replica();
    let id = a.create_user("racer");
    let etag = a
        .get(&format!("/Users/{id}"))
        .expect(200)
        .header("etag")
        .expect("an ETag")
        .to_string();
    let statuses: Vec<(u16, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..10)
            .map(|i| {
                let (a, b, id, etag) = (&a, &b, &id, &etag);
                scope.spawn(move || {
                    let replica = if i % 2 == 0 { a } else { b };
                    let name = format!("winner-{i}");
                    let r = replica.send(
                        "PATCH",
                        &format!("/Users/{id}"),
                        Some(&patch_ops(
                            json!([{"op": "replace", "path": "displayName", "value": name}]),
                        )),
                        &[("if-match", etag)],
                    );
                    (r.status, name)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let winners: Vec<&(u16, String)> = statuses
        .iter()
        .filter(|(s, _)| matches!(s, 200 | 204))
        .collect();
    assert_eq!(winners.len(), 1, "{statuses:?}");
    assert!(
        statuses.iter().all(|(s, _)| matches!(s, 200 | 204 | 412)),
        "{statuses:?}"
    );
    let user = b.get(&format!("/Users/{id}")).expect(200).json;
    assert_eq!(user["displayName"], winners[0].1.as_str(), "{user}");
    assert_eq!(user["meta"]["version"], "W/\"2\"", "{user}");
}

#[test]
fn a_replica_killed_mid_drain_leaves_the_rename_to_the_other() {
    let mut a = LmsServer::start_with(&["--drain-batch", "10", "--drain-delay-ms", "20"]);
    let b = a.replica();
    const N: usize = 300;
    let ids = bulk_users(&a, N);
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let g = a.create_group("Old Cohort", &refs);
    wait_synced(&a);

    a.patch(
        &format!("/Groups/{g}"),
        &patch_ops(json!([{"op": "replace", "path": "displayName", "value": "New Cohort"}])),
    )
    .expect(204);
    let rename = events(&a, "limit=1000")
        .into_iter()
        .find(|e| e["resourceType"] == "Group" && e["resourceId"] == g.as_str())
        .expect("the rename's Group event");
    // Both replicas drain; kill one once the first batch is in.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !events(&a, "limit=1")
        .first()
        .is_some_and(|e| e["resourceType"] == "Learner" && touches(e, "team", "new", "New Cohort"))
    {
        assert!(Instant::now() < deadline, "no re-mapping batch within 60 s");
        std::thread::sleep(Duration::from_millis(2));
    }
    a.kill9();
    let status = b.cli_json(&["sync", "status", "--json"]);
    assert!(
        status["pending"].as_u64().is_some_and(|p| p > 0),
        "the re-mapping finished before the kill, so the crash was not exercised: {status}"
    );

    wait_synced(&b);
    let new_team = item("New Cohort", &[&from_group(&g)]);
    for id in &ids {
        let l = learner(&b, id);
        assert_learner(
            &l,
            "active",
            &[mapped_role()],
            std::slice::from_ref(&new_team),
        );
    }
    // Nothing applied twice: one Learner event per member grants the new
    // team, under the rename's change id.
    for id in &ids {
        let evs = user_events(&b, id);
        let granted = granting_team(&evs, "New Cohort");
        assert_eq!(
            granted.len(),
            1,
            "{id}: {}",
            serde_json::to_string_pretty(&evs).unwrap()
        );
        assert_eq!(granted[0]["changeId"], rename["changeId"], "{}", granted[0]);
    }
}
