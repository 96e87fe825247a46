//! The storage contract the engine runs against: a native mirror of the WIT
//! `store` interface, so the engine core stays plain Rust. The component glue
//! forwards each call to the host; tests and benchmarks use `crate::memstore`
//! (feature `testing`).

/// An index entry derived from a document (see [`crate::resource::terms`]).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Term {
    pub name: String,
    pub value: String,
    pub unique: bool,
}

/// A stored document as the host returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Document {
    pub id: String,
    pub seq: u64,
    pub version: u64,
    pub body: String,
}

/// A document to write.
#[derive(Debug, Clone)]
pub struct NewDocument {
    pub id: String,
    pub body: String,
    pub label: Option<String>,
    pub terms: Vec<Term>,
}

/// What a write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub seq: u64,
    pub version: u64,
}

/// Storage failures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("version conflict (current version {0})")]
    Conflict(u64),
    #[error("unique term '{0}' is taken")]
    UniqueViolation(String),
    #[error("referenced documents do not exist: {0:?}")]
    Missing(Vec<String>),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
}

/// An end of a range match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    pub value: String,
    pub inclusive: bool,
}

/// How a term value is matched (byte-wise on normalised strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TermMatch {
    Exact(String),
    Prefix(String),
    Contains(String),
    Range(Option<Bound>, Option<Bound>),
}

/// Documents whose term `name` matches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TermQuery {
    pub name: String,
    pub matches: TermMatch,
}

/// Which documents of a kind a scan or count covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    All,
    Term(TermQuery),
    /// Bodies containing the ASCII needle ASCII-case-insensitively, plus all
    /// non-ASCII bodies (see the WIT contract).
    BodyContains(String),
    /// Documents satisfying every clause (see the WIT contract).
    Matching(Vec<Clause>),
}

/// One condition of [`Selection::Matching`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Clause {
    /// A term matches one of the queries.
    AnyTerm(Vec<TermQuery>),
    /// The body passes the body-contains pre-filter.
    BodyContains(String),
}

/// A window over a selection in `seq` order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    pub after: Option<u64>,
    pub offset: u64,
    pub limit: u32,
    pub descending: bool,
}

impl Page {
    /// The first `limit` rows after `after`, ascending.
    pub fn after(after: Option<u64>, limit: u32) -> Self {
        Page {
            after,
            offset: 0,
            limit,
            descending: false,
        }
    }
}

/// A reference to a group member.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MemberRef {
    pub id: String,
    pub kind: String,
}

/// A membership row as the host lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberEntry {
    pub id: String,
    pub kind: String,
    pub label: Option<String>,
    pub seq: u64,
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The host's storage, scoped to one tenant and one transaction.
/// Method contracts are documented on the WIT `store` interface.
pub trait Store {
    fn get(&mut self, kind: &str, id: &str) -> StoreResult<Option<Document>>;
    fn get_many(&mut self, kind: &str, ids: &[String]) -> StoreResult<Vec<Document>>;
    fn insert(&mut self, kind: &str, doc: NewDocument) -> StoreResult<Written>;
    fn replace(
        &mut self,
        kind: &str,
        doc: NewDocument,
        expected_version: Option<u64>,
    ) -> StoreResult<Written>;
    fn delete(&mut self, kind: &str, id: &str, expected_version: Option<u64>) -> StoreResult<()>;
    fn scan(&mut self, kind: &str, selection: &Selection, page: Page)
    -> StoreResult<Vec<Document>>;
    fn scan_keys(
        &mut self,
        kind: &str,
        selection: &Selection,
        page: Page,
    ) -> StoreResult<Vec<(String, u64)>>;
    fn count(&mut self, kind: &str, selection: &Selection) -> StoreResult<u64>;

    fn savepoint(&mut self) -> StoreResult<u32>;
    fn rollback_to(&mut self, savepoint: u32) -> StoreResult<()>;
    fn release(&mut self, savepoint: u32) -> StoreResult<()>;

    fn members_add(
        &mut self,
        group_kind: &str,
        group: &str,
        members: &[MemberRef],
    ) -> StoreResult<Vec<String>>;
    fn members_remove(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>>;
    fn members_clear(&mut self, group_kind: &str, group: &str) -> StoreResult<u64>;
    fn members_contains(
        &mut self,
        group_kind: &str,
        group: &str,
        ids: &[String],
    ) -> StoreResult<Vec<String>>;
    fn members_list(
        &mut self,
        group_kind: &str,
        group: &str,
        after: Option<u64>,
        limit: u32,
    ) -> StoreResult<Vec<MemberEntry>>;
    fn members_count(&mut self, group_kind: &str, group: &str) -> StoreResult<u64>;
    fn groups_of(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> StoreResult<Vec<(String, MemberEntry)>>;

    /// Like [`Store::groups_of`], with whether each group is itself a
    /// member of any group. The default says every group may be, so a
    /// caller walking up nested groups looks further as it would without.
    fn groups_of_nested(
        &mut self,
        group_kind: &str,
        members: &[String],
    ) -> StoreResult<Vec<(String, MemberEntry, bool)>> {
        Ok(self
            .groups_of(group_kind, members)?
            .into_iter()
            .map(|(m, g)| (m, g, true))
            .collect())
    }

    /// The groups that directly contain one document.
    fn groups_of_one(&mut self, group_kind: &str, member: &str) -> StoreResult<Vec<MemberEntry>> {
        Ok(self
            .groups_of(group_kind, &[member.to_string()])?
            .into_iter()
            .map(|(_, g)| g)
            .collect())
    }

    /// Every member of a group, read in pages of `MEMBER_PAGE`.
    fn members_all(&mut self, group_kind: &str, group: &str) -> StoreResult<Vec<MemberEntry>> {
        let mut out = Vec::new();
        loop {
            let after = out.last().map(|e: &MemberEntry| e.seq);
            let page = self.members_list(group_kind, group, after, MEMBER_PAGE)?;
            let done = page.len() < MEMBER_PAGE as usize;
            out.extend(page);
            if done {
                return Ok(out);
            }
        }
    }
}

/// Members read per host call when a whole membership is needed.
const MEMBER_PAGE: u32 = 5000;
