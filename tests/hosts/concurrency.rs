//! Writes at once: each request is one transaction, isolated from the
//! others, as identity providers send them in parallel.

use serde_json::json;

use crate::support::{Host, USER_SCHEMA, from_group, grants, item, member_ids, unique};

const N: usize = 8;

/// The same userName created from several connections at once: one 201,
/// the rest 409; members added to one group at once: all of them kept,
/// each with its team.
pub fn concurrent_writes_are_isolated(h: &Host) {
    let name = unique("race.user");
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let threads: Vec<_> = (0..N)
            .map(|_| {
                s.spawn(|| {
                    h.post(
                        "/Users",
                        &json!({"schemas": [USER_SCHEMA], "userName": name}),
                    )
                    .status
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let created = statuses.iter().filter(|s| **s == 201).count();
    let conflicts = statuses.iter().filter(|s| **s == 409).count();
    assert_eq!((created, conflicts), (1, N - 1), "{statuses:?}");
    let (_, total) = h.user_names(&format!("userName eq \"{name}\""));
    assert_eq!(total, 1);

    let users: Vec<String> = (0..N)
        .map(|i| h.create_user(&unique(&format!("race.member{i}"))))
        .collect();
    let team = unique("Race Team");
    let gid = h.create_group(&team, &[]);
    std::thread::scope(|s| {
        for u in &users {
            let gid = &gid;
            s.spawn(move || {
                h.patch(
                    &format!("/Groups/{gid}"),
                    json!([{"op": "add", "path": "members", "value": [{"value": u}]}]),
                )
                .expect(204);
            });
        }
    });
    let mut want = users.clone();
    want.sort();
    let g = h.get(&format!("/Groups/{gid}")).expect(200).json;
    assert_eq!(member_ids(&g), want, "members added at once were lost");
    for u in &users {
        assert_eq!(
            grants(&h.learner(u), "teams"),
            [item(&team, &[&from_group(&gid)])]
        );
    }
}
