//! An in-memory [`Store`] with the same semantics as the reference host's
//! SQLite store, for unit tests, fuzzing and native benchmarks.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::store::*;

#[derive(Debug, Clone)]
struct Row {
    kind: String,
    id: String,
    version: u64,
    body: String,
    label: Option<String>,
    terms: Vec<Term>,
}

#[derive(Debug, Default, Clone)]
struct State {
    next_seq: u64,
    rows: BTreeMap<u64, Row>,
    by_id: HashMap<(String, String), u64>,
    /// group seq -> member seqs
    members: HashMap<u64, BTreeSet<u64>>,
}

/// A single-tenant in-memory store. Savepoints are whole snapshots: simple,
/// and fast enough for tests.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    state: State,
    savepoints: Vec<State>,
    member_reads: usize,
}

impl MemStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many times a group's member list was read (tests check that
    /// projections that drop `members` never read it).
    pub fn member_reads(&self) -> usize {
        self.member_reads
    }
}

impl State {
    fn seq_of(&self, kind: &str, id: &str) -> Option<u64> {
        self.by_id.get(&(kind.to_string(), id.to_string())).copied()
    }

    fn seq_of_any(&self, id: &str) -> Option<u64> {
        self.rows
            .iter()
            .find(|(_, r)| r.id == id)
            .map(|(seq, _)| *seq)
    }

    fn doc(&self, seq: u64) -> Document {
        let r = &self.rows[&seq];
        Document {
            id: r.id.clone(),
            seq,
            version: r.version,
            body: r.body.clone(),
        }
    }

    fn check_unique(&self, kind: &str, terms: &[Term], except: Option<u64>) -> StoreResult<()> {
        for t in terms.iter().filter(|t| t.unique) {
            let taken = self.rows.iter().any(|(seq, r)| {
                Some(*seq) != except
                    && r.kind == kind
                    && r.terms
                        .iter()
                        .any(|o| o.unique && o.name == t.name && o.value == t.value)
            });
            if taken {
                return Err(StoreError::UniqueViolation(t.name.clone()));
            }
        }
        Ok(())
    }

    fn selected(&self, kind: &str, selection: &Selection, page: Page) -> Vec<u64> {
        let has_term = |r: &Row, q: &TermQuery| {
            r.terms
                .iter()
                .any(|t| t.name == q.name && term_matches(&t.value, &q.matches))
        };
        let contains = |r: &Row, needle: &str| {
            !r.body.is_ascii() || r.body.to_ascii_lowercase().contains(needle)
        };
        let matches = |r: &Row| match selection {
            Selection::All => true,
            Selection::Term(q) => has_term(r, q),
            Selection::BodyContains(needle) => contains(r, needle),
            Selection::Matching(clauses) => clauses.iter().all(|c| match c {
                Clause::AnyTerm(qs) => qs.iter().any(|q| has_term(r, q)),
                Clause::BodyContains(needle) => contains(r, needle),
            }),
        };
        let in_window = |seq: u64| match (page.after, page.descending) {
            (None, _) => true,
            (Some(a), false) => seq > a,
            (Some(a), true) => seq < a,
        };
        let iter: Box<dyn Iterator<Item = (&u64, &Row)>> = if page.descending {
            Box::new(self.rows.iter().rev())
        } else {
            Box::new(self.rows.iter())
        };
        iter.filter(|(seq, r)| r.kind == kind && in_window(**seq) && matches(r))
            .map(|(seq, _)| *seq)
            .skip(page.offset as usize)
            .take(page.limit as usize)
            .collect()
    }

    fn entry(&self, seq: u64) -> MemberEntry {
        let r = &self.rows[&seq];
        MemberEntry {
            id: r.id.clone(),
            kind: r.kind.clone(),
            label: r.label.clone(),
            seq,
        }
    }

    fn group_seq(&self, group_kind: &str, group: &str) -> StoreResult<u64> {
        self.seq_of(group_kind, group).ok_or(StoreError::NotFound)
    }
}

/// Byte-wise term matching, as the SQLite host does it.
pub fn term_matches(value: &str, m: &TermMatch) -> bool {
    match m {
        TermMatch::Exact(v) => value == v,
        TermMatch::Prefix(p) => value.starts_with(p.as_str()),
        TermMatch::Contains(s) => value.contains(s.as_str()),
        TermMatch::Range(lo, hi) => {
            let lo_ok = lo.as_ref().is_none_or(|b| {
                if b.inclusive {
                    value >= b.value.as_str()
                } else {
                    value > b.value.as_str()
                }
            });
            let hi_ok = hi.as_ref().is_none_or(|b| {
                if b.inclusive {
                    value <= b.value.as_str()
                } else {
                    value < b.value.as_str()
                }
            });
            lo_ok && hi_ok
        }
    }
}

impl Store for MemStore {
    fn get(&mut self, kind: &str, id: &str) -> StoreResult<Option<Document>> {
        Ok(self.state.seq_of(kind, id).map(|s| self.state.doc(s)))
    }

    fn get_many(&mut self, kind: &str, ids: &[String]) -> StoreResult<Vec<Document>> {
        Ok(ids
            .iter()
            .filter_map(|id| self.state.seq_of(kind, id))
            .map(|s| self.state.doc(s))
            .collect())
    }

    fn insert(&mut self, kind: &str, doc: NewDocument) -> StoreResult<Written> {
        if self.state.seq_of(kind, &doc.id).is_some() {
            return Err(StoreError::Conflict(0));
        }
        self.state.check_unique(kind, &doc.terms, None)?;
        self.state.next_seq += 1;
        let seq = self.state.next_seq;
        self.state
            .by_id
            .insert((kind.to_string(), doc.id.clone()), seq);
        self.state.rows.insert(
            seq,
            Row {
                kind: kind.to_string(),
                id: doc.id,
                version: 1,
                body: doc.body,
                label: doc.label,
                terms: doc.terms,
            },
        );
        Ok(Written { seq, version: 1 })
    }

    fn replace(
        &mut self,
        kind: &str,
        doc: NewDocument,
        expected_version: Option<u64>,
    ) -> StoreResult<Written> {
        let seq = self
            .state
            .seq_of(kind, &doc.id)
            .ok_or(StoreError::NotFound)?;
        let current = self.state.rows[&seq].version;
        if expected_version.is_some_and(|v| v != current) {
            return Err(StoreError::Conflict(current));
        }
        self.state.check_unique(kind, &doc.terms, Some(seq))?;
        let row = self.state.rows.get_mut(&seq).expect("row exists");
        row.version += 1;
        row.body = doc.body;
        row.label = doc.label;
        row.terms = doc.terms;
        Ok(Written {
            seq,
            version: row.version,
        })
    }

    fn delete(&mut self, kind: &str, id: &str, expected_version: Option<u64>) -> StoreResult<()> {
        let seq = self.state.seq_of(kind, id).ok_or(StoreError::NotFound)?;
        let current = self.state.rows[&seq].version;
        if expected_version.is_some_and(|v| v != current) {
            return Err(StoreError::Conflict(current));
        }
        self.state.rows.remove(&seq);
        self.state.by_id.remove(&(kind.to_string(), id.to_string()));
        self.state.members.remove(&seq);
        for set in self.state.members.values_mut() {
            set.remove(&seq);
        }
        Ok(())
    }

    fn scan(
        &mut self,
        kind: &str,
        selection: &Selection,
        page: Page,
    ) -> StoreResult<Vec<Document>> {
        Ok(self
            .state
            .selected(kind, selection, page)
            .into_iter()
            .map(|s| self.state.doc(s))
            .collect())
    }

    fn scan_keys(
        &mut self,
        kind: &str,
        selection: &Selection,
        page: Page,
    ) -> StoreResult<Vec<(String, u64)>> {
        Ok(self
            .state
            .selected(kind, selection, page)
            .into_iter()
            .map(|s| (self.state.rows[&s].id.clone(), s))
            .collect())
    }

    fn count(&mut self, kind: &str, selection: &Selection) -> StoreResult<u64> {
        let all = Page::after(None, u32::MAX);
        Ok(self.state.selected(kind, selection, all).len() as u64)
    }

    fn savepoint(&mut self) -> StoreResult<u32> {
        self.savepoints.push(self.state.clone());
        Ok(self.savepoints.len() as u32)
    }

    fn rollback_to(&mut self, savepoint: u32) -> StoreResult<()> {
        let keep = savepoint as usize;
        if keep == 0 || keep > self.savepoints.len() {
            return Err(StoreError::Unavailable(format!("no savepoint {savepoint}")));
        }
        self.savepoints.truncate(keep);
        self.state = self.savepoints.pop().expect("savepoint exists");
        Ok(())
    }

    fn release(&mut self, savepoint: u32) -> StoreResult<()> {
        let keep = savepoint as usize;
        if keep == 0 || keep > self.savepoints.len() {
            return Err(StoreError::Unavailable(format!("no savepoint {savepoint}")));
        }
        self.savepoints.truncate(keep - 1);
        Ok(())
    }

    fn members_add(
        &mut self,
        group_kind: &str,
        group: &str,
        members: &[MemberRef],
    ) -> StoreResult<Vec<String>> {
        let g = self.state.group_seq(group_kind, group)?;
        let mut seqs = Vec::with_capacity(members.len());
        let mut missing = Vec::new();
        for m in members {
            match self.state.seq_of(&m.kind, &m.id) {
                Some(s) => seqs.push((s, m.id.clone())),
                None => missing.push(m.id.clone()),
            }
        }
        if !missing.is_empty() {
            return Err(StoreError::Missing(missing));
        }
        let set = self.state.members.entry(g).or_default();
        Ok(seqs
            .into_iter()
            .filter(|(s, _)| set.insert(*s))
            .map(|(_, id)| id)
            .collect())
    }

    fn members_remove(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>> {
        let g = self.state.group_seq(group_kind, group)?;
        let seqs: Vec<(u64, String)> = ids
            .iter()
            .filter_map(|id| self.state.seq_of_any(id).map(|s| (s, id.clone())))
            .collect();
        let set = self.state.members.entry(g).or_default();
        Ok(seqs
            .into_iter()
            .filter(|(s, _)| set.remove(s))
            .map(|(_, id)| id)
            .collect())
    }

    fn members_clear(&mut self, group_kind: &str, group: &str) -> StoreResult<u64> {
        let g = self.state.group_seq(group_kind, group)?;
        Ok(self.state.members.remove(&g).map_or(0, |s| s.len() as u64))
    }

    fn members_contains(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>> {
        let g = self.state.group_seq(group_kind, group)?;
        let set = self.state.members.get(&g);
        Ok(ids
            .iter()
            .filter(|id| {
                self.state
                    .seq_of_any(id)
                    .is_some_and(|s| set.is_some_and(|set| set.contains(&s)))
            })
            .cloned()
            .collect())
    }

    fn members_list(
        &mut self,
        group_kind: &str,
        group: &str,
        after: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<MemberEntry>> {
        self.member_reads += 1;
        let g = self.state.group_seq(group_kind, group)?;
        let Some(set) = self.state.members.get(&g) else {
            return Ok(Vec::new());
        };
        Ok(set
            .iter()
            .filter(|s| after.is_none_or(|a| **s > a))
            .take(limit as usize)
            .map(|s| self.state.entry(*s))
            .collect())
    }

    fn members_count(&mut self, group_kind: &str, group: &str) -> StoreResult<u64> {
        let g = self.state.group_seq(group_kind, group)?;
        Ok(self.state.members.get(&g).map_or(0, |s| s.len() as u64))
    }

    fn groups_of(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> StoreResult<Vec<(String, MemberEntry)>> {
        let st = &self.state;
        let mut out = Vec::new();
        for member in members {
            let Some(m) = st.seq_of_any(member) else {
                continue;
            };
            let mut groups: Vec<u64> = st
                .members
                .iter()
                .filter(|(g, set)| set.contains(&m) && st.rows[g].kind == group_kind)
                .map(|(g, _)| *g)
                .collect();
            groups.sort_unstable();
            out.extend(groups.into_iter().map(|g| (member.clone(), st.entry(g))));
        }
        Ok(out)
    }

    fn groups_of_nested(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> StoreResult<Vec<(String, MemberEntry, bool)>> {
        let direct = self.groups_of(group_kind, members)?;
        let st = &self.state;
        Ok(direct
            .into_iter()
            .map(|(m, g)| {
                let nested = st.members.values().any(|set| set.contains(&g.seq));
                (m, g, nested)
            })
            .collect())
    }
}
