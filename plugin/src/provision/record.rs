//! The engine's one write path: every SCIM write of a request (POST, PUT,
//! PATCH, DELETE, each Bulk operation, and the membership changes any of
//! them makes) passes through [`Recorder`], which forwards it to the host's
//! store and notes what changed. Provisioning reads the note afterwards.
//!
//! Writes undone by a Bulk operation's savepoint are forgotten with it.

use std::collections::HashMap;

use crate::schema::{GROUP_TYPE, USER_TYPE};
use crate::store::{
    Document, MemberEntry, MemberRef, NewDocument, Page, Selection, Store, StoreResult, Written,
};

/// One recorded write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// A user or group document: its body before (none when created) and
    /// after (none when deleted).
    Doc {
        kind: String,
        id: String,
        before: Option<String>,
        after: Option<String>,
    },
    /// Members that joined or left a group.
    Members {
        group: String,
        joined: Vec<String>,
        left: Vec<String>,
    },
}

/// A store that records the writes passing through it.
pub struct Recorder<'a> {
    inner: &'a mut dyn Store,
    writes: Vec<Write>,
    /// Last known body of documents read or written in this request, so a
    /// replace or delete knows the body before it without another read.
    bodies: HashMap<(String, String), String>,
    /// `writes.len()` at each open savepoint.
    marks: Vec<(u32, usize)>,
}

impl<'a> Recorder<'a> {
    pub fn new(inner: &'a mut dyn Store) -> Self {
        Recorder {
            inner,
            writes: Vec::new(),
            bodies: HashMap::new(),
            marks: Vec::new(),
        }
    }

    /// The writes that stand, in order.
    pub fn into_writes(self) -> Vec<Write> {
        self.writes
    }

    fn tracked(kind: &str) -> bool {
        kind == USER_TYPE.name || kind == GROUP_TYPE.name
    }

    /// The body before a write, from memory or from the store.
    fn before(&mut self, kind: &str, id: &str) -> StoreResult<Option<String>> {
        if let Some(b) = self.bodies.get(&(kind.to_string(), id.to_string())) {
            return Ok(Some(b.clone()));
        }
        Ok(self.inner.get(kind, id)?.map(|d| d.body))
    }

    fn doc(&mut self, kind: &str, id: &str, before: Option<String>, after: Option<String>) {
        let key = (kind.to_string(), id.to_string());
        match &after {
            Some(b) => {
                self.bodies.insert(key, b.clone());
            }
            None => {
                self.bodies.remove(&key);
            }
        }
        self.writes.push(Write::Doc {
            kind: kind.to_string(),
            id: id.to_string(),
            before,
            after,
        });
    }

    fn members(&mut self, group: &str, joined: Vec<String>, left: Vec<String>) {
        if !joined.is_empty() || !left.is_empty() {
            self.writes.push(Write::Members {
                group: group.to_string(),
                joined,
                left,
            });
        }
    }
}

impl Store for Recorder<'_> {
    fn get(&mut self, kind: &str, id: &str) -> StoreResult<Option<Document>> {
        let doc = self.inner.get(kind, id)?;
        if let Some(d) = &doc
            && Self::tracked(kind)
        {
            self.bodies
                .insert((kind.to_string(), id.to_string()), d.body.clone());
        }
        Ok(doc)
    }

    fn get_many(&mut self, kind: &str, ids: &[String]) -> StoreResult<Vec<Document>> {
        self.inner.get_many(kind, ids)
    }

    fn insert(&mut self, kind: &str, doc: NewDocument) -> StoreResult<Written> {
        let (id, body) = (doc.id.clone(), doc.body.clone());
        let w = self.inner.insert(kind, doc)?;
        if Self::tracked(kind) {
            self.doc(kind, &id, None, Some(body));
        }
        Ok(w)
    }

    fn replace(
        &mut self,
        kind: &str,
        doc: NewDocument,
        expected_version: Option<u64>,
    ) -> StoreResult<Written> {
        if !Self::tracked(kind) {
            return self.inner.replace(kind, doc, expected_version);
        }
        let before = self.before(kind, &doc.id)?;
        let (id, body) = (doc.id.clone(), doc.body.clone());
        let w = self.inner.replace(kind, doc, expected_version)?;
        self.doc(kind, &id, before, Some(body));
        Ok(w)
    }

    fn delete(&mut self, kind: &str, id: &str, expected_version: Option<u64>) -> StoreResult<()> {
        if !Self::tracked(kind) {
            return self.inner.delete(kind, id, expected_version);
        }
        let before = self.before(kind, id)?;
        // A deleted group's user members leave it: each is re-mapped, since
        // rules may have tested the membership in any way (`not`, `all`).
        let left: Vec<String> = if kind == GROUP_TYPE.name {
            self.inner
                .members_all(kind, id)?
                .into_iter()
                .filter(|m| m.kind == USER_TYPE.name)
                .map(|m| m.id)
                .collect()
        } else {
            Vec::new()
        };
        self.inner.delete(kind, id, expected_version)?;
        self.doc(kind, id, before, None);
        if !left.is_empty() {
            self.members(id, Vec::new(), left);
        }
        Ok(())
    }

    fn scan(
        &mut self,
        kind: &str,
        selection: &Selection,
        page: Page,
    ) -> StoreResult<Vec<Document>> {
        self.inner.scan(kind, selection, page)
    }

    fn scan_keys(
        &mut self,
        kind: &str,
        selection: &Selection,
        page: Page,
    ) -> StoreResult<Vec<(String, u64)>> {
        self.inner.scan_keys(kind, selection, page)
    }

    fn count(&mut self, kind: &str, selection: &Selection) -> StoreResult<u64> {
        self.inner.count(kind, selection)
    }

    fn savepoint(&mut self) -> StoreResult<u32> {
        let sp = self.inner.savepoint()?;
        self.marks.push((sp, self.writes.len()));
        Ok(sp)
    }

    fn rollback_to(&mut self, savepoint: u32) -> StoreResult<()> {
        self.inner.rollback_to(savepoint)?;
        if let Some(i) = self.marks.iter().rposition(|(sp, _)| *sp == savepoint) {
            self.writes.truncate(self.marks[i].1);
            self.marks.truncate(i);
        }
        // Bodies read inside the undone writes may be stale now.
        self.bodies.clear();
        Ok(())
    }

    fn release(&mut self, savepoint: u32) -> StoreResult<()> {
        self.inner.release(savepoint)?;
        if let Some(i) = self.marks.iter().rposition(|(sp, _)| *sp == savepoint) {
            self.marks.truncate(i);
        }
        Ok(())
    }

    fn members_add(
        &mut self,
        group_kind: &str,
        group: &str,
        members: &[MemberRef],
    ) -> StoreResult<Vec<String>> {
        let added = self.inner.members_add(group_kind, group, members)?;
        self.members(group, added.clone(), Vec::new());
        Ok(added)
    }

    fn members_remove(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>> {
        let removed = self.inner.members_remove(group_kind, group, ids)?;
        self.members(group, Vec::new(), removed.clone());
        Ok(removed)
    }

    fn members_clear(&mut self, group_kind: &str, group: &str) -> StoreResult<u64> {
        // The ids are needed to re-map the members who left.
        let ids: Vec<String> = self
            .inner
            .members_all(group_kind, group)?
            .into_iter()
            .map(|e| e.id)
            .collect();
        let removed = self.inner.members_remove(group_kind, group, &ids)?;
        let n = removed.len() as u64;
        self.members(group, Vec::new(), removed);
        Ok(n)
    }

    fn members_contains(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>> {
        self.inner.members_contains(group_kind, group, ids)
    }

    fn members_list(
        &mut self,
        group_kind: &str,
        group: &str,
        after: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<MemberEntry>> {
        self.inner.members_list(group_kind, group, after, limit)
    }

    fn members_count(&mut self, group_kind: &str, group: &str) -> StoreResult<u64> {
        self.inner.members_count(group_kind, group)
    }

    fn groups_of(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> StoreResult<Vec<(String, MemberEntry)>> {
        self.inner.groups_of(group_kind, members)
    }

    fn groups_of_nested(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> StoreResult<Vec<(String, MemberEntry, bool)>> {
        self.inner.groups_of_nested(group_kind, members)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memstore::MemStore;

    fn new_doc(id: &str, body: &str) -> NewDocument {
        NewDocument {
            id: id.into(),
            body: body.into(),
            label: None,
            terms: Vec::new(),
        }
    }

    #[test]
    fn records_bodies_before_and_after() {
        let mut store = MemStore::default();
        let mut rec = Recorder::new(&mut store);
        rec.insert("User", new_doc("u1", "{\"a\":1}")).unwrap();
        rec.replace("User", new_doc("u1", "{\"a\":2}"), None)
            .unwrap();
        rec.delete("User", "u1", None).unwrap();
        let w = rec.into_writes();
        assert_eq!(w.len(), 3);
        assert_eq!(
            w[1],
            Write::Doc {
                kind: "User".into(),
                id: "u1".into(),
                before: Some("{\"a\":1}".into()),
                after: Some("{\"a\":2}".into())
            }
        );
        assert!(
            matches!(&w[2], Write::Doc { after: None, before: Some(b), .. } if b == "{\"a\":2}")
        );
    }

    #[test]
    fn a_rolled_back_savepoint_forgets_its_writes() {
        let mut store = MemStore::default();
        let mut rec = Recorder::new(&mut store);
        rec.insert("User", new_doc("u1", "{}")).unwrap();
        let sp = rec.savepoint().unwrap();
        rec.insert("User", new_doc("u2", "{}")).unwrap();
        rec.rollback_to(sp).unwrap();
        let sp = rec.savepoint().unwrap();
        rec.insert("User", new_doc("u3", "{}")).unwrap();
        rec.release(sp).unwrap();
        let ids: Vec<String> = rec
            .into_writes()
            .into_iter()
            .filter_map(|w| match w {
                Write::Doc { id, .. } => Some(id),
                _ => None,
            })
            .collect();
        assert_eq!(ids, ["u1", "u3"]);
    }

    #[test]
    fn clearing_a_group_records_who_left() {
        let mut store = MemStore::default();
        let mut rec = Recorder::new(&mut store);
        rec.insert("User", new_doc("u1", "{}")).unwrap();
        rec.insert("User", new_doc("u2", "{}")).unwrap();
        rec.insert("Group", new_doc("g", "{}")).unwrap();
        let refs: Vec<MemberRef> = ["u1", "u2"]
            .iter()
            .map(|id| MemberRef {
                id: id.to_string(),
                kind: "User".into(),
            })
            .collect();
        rec.members_add("Group", "g", &refs).unwrap();
        assert_eq!(rec.members_clear("Group", "g").unwrap(), 2);
        let w = rec.into_writes();
        let Write::Members { left, .. } = &w[4] else {
            panic!("{w:?}")
        };
        let mut left = left.clone();
        left.sort();
        assert_eq!(left, ["u1", "u2"]);
    }
}
