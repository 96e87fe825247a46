//! The engine over the in-memory store, holding one user in one group, as
//! the handler targets drive it.
//!
//! Ids and timestamps come from a fixed clock and a counter instead of the
//! OS, so that an input behaves the same every time it runs: a fuzzer
//! cannot minimise or replay what depends on chance.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use scim_engine::ambient::{self, Ambient};
use scim_engine::http::{Context, Request};
use scim_engine::memstore::MemStore;
use scim_engine::provision::memlms::MemLms;
use scim_engine::store::Store;
use scim_engine::{Response, handle};

static COUNTER: AtomicU64 = AtomicU64::new(1);

fn fixed_now() -> (u64, u32) {
    (1_767_225_600, 0) // 2026-01-01T00:00:00Z
}

/// SplitMix64 over a counter: distinct, repeatable bytes.
fn counted_random(out: &mut [u8]) {
    for chunk in out.chunks_mut(8) {
        let mut z = COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        chunk.copy_from_slice(&z.to_le_bytes()[..chunk.len()]);
    }
}

/// The store with the user and group every run starts from.
struct Seed {
    store: MemStore,
    user: String,
    group: String,
}

static SEED: OnceLock<Seed> = OnceLock::new();

fn seed() -> &'static Seed {
    SEED.get_or_init(|| {
        ambient::install(Ambient {
            now: fixed_now,
            fill_random: counted_random,
        });
        let mut fx = Fixture {
            store: MemStore::new(),
            lms: MemLms::new(),
            user: String::new(),
            group: String::new(),
        };
        let user = br#"{"schemas":["urn:ietf:params:scim:schemas:core:2.0:User","urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"],
            "userName":"ada@example.com","externalId":"e-ada","active":true,
            "name":{"givenName":"Ada","familyName":"Lovelace"},"displayName":"Ada Lovelace",
            "emails":[{"value":"ada@example.com","type":"work","primary":true}],
            "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User":{"department":"R&D","employeeNumber":"701984"}}"#;
        let user = created_id(fx.call("POST", "/Users", "", &[], user));
        let group = format!(
            r#"{{"schemas":["urn:ietf:params:scim:schemas:core:2.0:Group"],"displayName":"Sales","externalId":"x-1","members":[{{"value":"{user}"}}]}}"#
        );
        let group = created_id(fx.call("POST", "/Groups", "", &[], group.as_bytes()));
        Seed {
            store: fx.store,
            user,
            group,
        }
    })
}

fn created_id(resp: Response) -> String {
    assert_eq!(resp.status, 201, "{}", String::from_utf8_lossy(&resp.body));
    let body: serde_json::Value = serde_json::from_slice(&resp.body).unwrap_or_default();
    body["id"].as_str().unwrap_or_default().to_string()
}

/// A fresh copy of the seeded engine.
pub struct Fixture {
    pub store: MemStore,
    pub lms: MemLms,
    /// The seeded user's and group's ids.
    pub user: String,
    pub group: String,
}

impl Default for Fixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Fixture {
    pub fn new() -> Self {
        let seed = seed();
        COUNTER.store(1 << 32, Ordering::Relaxed);
        Fixture {
            store: seed.store.clone(),
            lms: MemLms::new(),
            user: seed.user.clone(),
            group: seed.group.clone(),
        }
    }

    pub fn user_path(&self) -> String {
        format!("/Users/{}", self.user)
    }

    pub fn group_path(&self) -> String {
        format!("/Groups/{}", self.group)
    }

    /// `{U}` and `{G}` replaced by the seeded ids.
    pub fn substitute(&self, s: &str) -> String {
        s.replace("{U}", &self.user).replace("{G}", &self.group)
    }

    pub fn substitute_bytes(&self, b: &[u8]) -> Vec<u8> {
        match std::str::from_utf8(b) {
            Ok(s) => self.substitute(s).into_bytes(),
            Err(_) => b.to_vec(),
        }
    }

    /// One request in a transaction the host would roll back on failure.
    pub fn call(
        &mut self,
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let req = Request {
            method: method.into(),
            path: path.into(),
            query: query.into(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            context: Context {
                tenant: "t1".into(),
                base_url: "https://lms.example/scim/v2".into(),
                request_id: "r1".into(),
                subject: Some("client".into()),
                max_payload_bytes: 1 << 20,
                signing_key: b"tenant key".to_vec(),
            },
        };
        let sp = self.store.savepoint().expect("memstore savepoint");
        let resp = handle(&req, &mut self.store, &mut self.lms);
        if resp.status >= 400 {
            self.store.rollback_to(sp).expect("memstore rollback");
        } else {
            self.store.release(sp).expect("memstore release");
        }
        resp
    }
}
