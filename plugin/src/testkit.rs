//! Test helpers: the engine over an in-memory store, driven like a client.

use serde_json::{Value, json};

use crate::http::{Context, Request};
use crate::memstore::MemStore;
use crate::provision::memlms::MemLms;

/// A request as the host would pass it.
pub fn request(method: &str, path_and_query: &str, body: Option<Value>) -> Request {
    let (path, query) = path_and_query
        .split_once('?')
        .unwrap_or((path_and_query, ""));
    Request {
        method: method.into(),
        path: path.into(),
        query: query.into(),
        headers: Vec::new(),
        body: body.map(|b| b.to_string().into_bytes()).unwrap_or_default(),
        context: Context {
            tenant: "t1".into(),
            base_url: "https://lms.example/scim/v2".into(),
            signing_key: b"key".to_vec(),
            ..Default::default()
        },
    }
}

/// The engine with a fresh in-memory store.
pub struct Fixture {
    pub store: MemStore,
    pub lms: MemLms,
}

impl Fixture {
    pub fn new() -> Self {
        Fixture {
            store: MemStore::new(),
            lms: MemLms::new(),
        }
    }

    /// Status and JSON body of a request, in a transaction rolled back on
    /// failure as the host does.
    pub fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        use crate::store::Store;
        let sp = self.store.savepoint().unwrap();
        let r = crate::handle(&request(method, path, body), &mut self.store, &mut self.lms);
        if r.status >= 400 {
            self.store.rollback_to(sp).unwrap();
        } else {
            self.store.release(sp).unwrap();
        }
        (r.status, r.body_json())
    }

    /// The body of a request that must succeed.
    #[track_caller]
    pub fn ok(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, body) = self.call(method, path, body);
        assert!(status < 300, "{method} {path}: {status} {body}");
        body
    }

    /// Creates a user with extra attributes; returns its id.
    pub fn user(&mut self, user_name: &str, extra: Value) -> String {
        let mut body = json!({"userName": user_name});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        self.ok("POST", "/Users", Some(body))["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Creates a group with member ids; returns its id.
    pub fn group(&mut self, name: &str, members: &[&str]) -> String {
        let members: Vec<Value> = members.iter().map(|m| json!({"value": m})).collect();
        self.ok(
            "POST",
            "/Groups",
            Some(json!({"displayName": name, "members": members})),
        )["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// The userNames (or displayNames) of a list request.
    pub fn names(&mut self, path: &str) -> Vec<String> {
        names(&self.ok("GET", path, None))
    }

    /// Member ids of a group.
    pub fn member_ids(&mut self, group: &str) -> Vec<String> {
        let g = self.ok("GET", &format!("/Groups/{group}"), None);
        g["members"]
            .as_array()
            .map(|m| {
                m.iter()
                    .map(|m| m["value"].as_str().unwrap().to_string())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// The userNames (or displayNames) of a ListResponse.
pub fn names(list: &Value) -> Vec<String> {
    list["Resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r["userName"]
                .as_str()
                .or(r["displayName"].as_str())
                .unwrap_or("?")
                .to_string()
        })
        .collect()
}
