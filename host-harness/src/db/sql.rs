//! One SQL interface over both stores: SQLite (embedded, the default) and
//! PostgreSQL (shared by several replicas).
//!
//! The host's queries are written once, in the subset both databases
//! share, with SQLite's `?` and `?N` placeholders. [`Connection`] runs them
//! on either; for PostgreSQL it rewrites the few constructs that differ
//! ([`postgres_sql`]) and adapts each value to the type PostgreSQL inferred
//! for its parameter, so that an `i64` binds to a `BIGINT` column and a
//! boolean test alike. The API follows rusqlite's, which the SQLite path
//! is, so that a query reads the same whichever database runs it.

use std::borrow::Cow;
use std::cell::{Cell as StdCell, RefCell};
use std::collections::HashMap;
use std::time::Duration;

use postgres::types::{IsNull, Type};

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// Seconds from the timestamp `column` (RFC 3339 text) until now, as a
    /// float.
    pub fn seconds_since(self, column: &str) -> String {
        match self {
            Dialect::Sqlite => format!("(julianday('now') - julianday({column})) * 86400.0"),
            Dialect::Postgres => {
                format!("EXTRACT(EPOCH FROM (now() - ({column})::timestamptz))::float8")
            }
        }
    }
}

/// A database error. [`Error::NoRows`] is what `query_row` returns when
/// nothing matched, as rusqlite's `QueryReturnedNoRows` is.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("the query returned no rows")]
    NoRows,
    #[error(transparent)]
    Sqlite(rusqlite::Error),
    #[error("{}", postgres_message(.0))]
    Postgres(#[from] postgres::Error),
    #[error("{0}")]
    Conversion(String),
    /// PostgreSQL refused to prepare a statement: a query this dialect
    /// does not accept (a defect, named with its SQL).
    #[error("{message} (in: {sql})")]
    Prepare { message: String, sql: String },
}

/// PostgreSQL's own message (with its detail) rather than the driver's
/// "db error" wrapper.
fn postgres_message(e: &postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => match db.detail() {
            Some(d) => format!("{}: {d}", db.message()),
            None => db.message().to_string(),
        },
        None if e.is_closed() => "the connection to PostgreSQL is closed".into(),
        None => match std::error::Error::source(e) {
            Some(cause) => format!("{e}: {cause}"),
            None => e.to_string(),
        },
    }
}

impl From<rusqlite::Error> for Error {
    fn from(e: rusqlite::Error) -> Self {
        match e {
            rusqlite::Error::QueryReturnedNoRows => Error::NoRows,
            e => Error::Sqlite(e),
        }
    }
}

impl Error {
    /// A `UNIQUE` constraint refused the write.
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::ConstraintViolation
            }
            Error::Postgres(e) => e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION),
            _ => false,
        }
    }

    /// The statement ran past the request's deadline.
    pub fn is_timeout(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => {
                f.code == rusqlite::ErrorCode::OperationInterrupted
            }
            Error::Postgres(e) => e.code() == Some(&postgres::error::SqlState::QUERY_CANCELED),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// `query_row(...).optional()`: `None` for no rows.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A value bound to a parameter.
#[derive(Debug, Clone, PartialEq)]
pub enum Value<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(Cow<'a, str>),
    Blob(Cow<'a, [u8]>),
}

/// Something that binds to a parameter (rusqlite's `ToSql`).
pub trait ToSql {
    fn to_value(&self) -> Value<'_>;
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl ToSql for $t {
            fn to_value(&self) -> Value<'_> {
                Value::Int(*self as i64)
            }
        }
    )*};
}
int_param!(i64, i32, i16, u8, u16, u32, u64, usize, isize);

impl ToSql for bool {
    fn to_value(&self) -> Value<'_> {
        Value::Int(*self as i64)
    }
}
impl ToSql for f64 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self)
    }
}
impl ToSql for f32 {
    fn to_value(&self) -> Value<'_> {
        Value::Real(*self as f64)
    }
}
impl ToSql for str {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}
impl ToSql for String {
    fn to_value(&self) -> Value<'_> {
        Value::Text(Cow::Borrowed(self))
    }
}
impl ToSql for [u8] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}
impl ToSql for Vec<u8> {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}
impl<const N: usize> ToSql for [u8; N] {
    fn to_value(&self) -> Value<'_> {
        Value::Blob(Cow::Borrowed(self))
    }
}
impl<T: ToSql> ToSql for Option<T> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Some(v) => v.to_value(),
            None => Value::Null,
        }
    }
}
impl<T: ToSql + ?Sized> ToSql for &T {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}
impl<T: ToSql + ?Sized> ToSql for Box<T> {
    fn to_value(&self) -> Value<'_> {
        (**self).to_value()
    }
}
impl ToSql for Value<'_> {
    fn to_value(&self) -> Value<'_> {
        match self {
            Value::Null => Value::Null,
            Value::Int(i) => Value::Int(*i),
            Value::Real(f) => Value::Real(*f),
            Value::Text(s) => Value::Text(Cow::Borrowed(s)),
            Value::Blob(b) => Value::Blob(Cow::Borrowed(b)),
        }
    }
}

impl From<i64> for Value<'static> {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<f64> for Value<'static> {
    fn from(v: f64) -> Self {
        Value::Real(v)
    }
}
impl From<String> for Value<'static> {
    fn from(v: String) -> Self {
        Value::Text(Cow::Owned(v))
    }
}
impl<T: Into<Value<'static>>> From<Option<T>> for Value<'static> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl rusqlite::ToSql for Value<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(ToSqlOutput::Borrowed(match self {
            Value::Null => ValueRef::Null,
            Value::Int(i) => ValueRef::Integer(*i),
            Value::Real(f) => ValueRef::Real(*f),
            Value::Text(s) => ValueRef::Text(s.as_bytes()),
            Value::Blob(b) => ValueRef::Blob(b),
        }))
    }
}

type BoxError = Box<dyn std::error::Error + Sync + Send>;

impl postgres::types::ToSql for Value<'_> {
    fn to_sql(&self, ty: &Type, out: &mut bytes::BytesMut) -> Result<IsNull, BoxError> {
        let mismatch =
            || -> BoxError { format!("cannot bind {self:?} to a parameter of type {ty}").into() };
        match self {
            Value::Null => Ok(IsNull::Yes),
            Value::Int(i) => match *ty {
                Type::INT8 => i.to_sql(ty, out),
                Type::INT4 => i32::try_from(*i)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(*i)?.to_sql(ty, out),
                Type::FLOAT8 => (*i as f64).to_sql(ty, out),
                Type::FLOAT4 => (*i as f32).to_sql(ty, out),
                Type::BOOL => (*i != 0).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    i.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(mismatch()),
            },
            Value::Real(f) => match *ty {
                Type::FLOAT8 => f.to_sql(ty, out),
                Type::FLOAT4 => (*f as f32).to_sql(ty, out),
                Type::INT8 if f.fract() == 0.0 => (*f as i64).to_sql(ty, out),
                Type::TEXT | Type::VARCHAR | Type::UNKNOWN => {
                    f.to_string().as_str().to_sql(ty, out)
                }
                _ => Err(mismatch()),
            },
            Value::Text(s) => match *ty {
                Type::BYTEA => s.as_bytes().to_sql(ty, out),
                Type::INT8 => s.parse::<i64>()?.to_sql(ty, out),
                Type::FLOAT8 => s.parse::<f64>()?.to_sql(ty, out),
                _ => s.as_ref().to_sql(ty, out),
            },
            Value::Blob(b) => match *ty {
                Type::BYTEA => b.as_ref().to_sql(ty, out),
                Type::TEXT | Type::VARCHAR => std::str::from_utf8(b)?.to_sql(ty, out),
                _ => Err(mismatch()),
            },
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    postgres::types::to_sql_checked!();
}

/// A statement's parameters: `params![...]`, an array, `()` or
/// [`params_from_iter`].
pub trait Params {
    fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R;
}

impl Params for () {
    fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
        f(&[])
    }
}
impl Params for &[&dyn ToSql] {
    fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
        let values: Vec<Value<'_>> = self.iter().map(|p| p.to_value()).collect();
        f(&values)
    }
}
/// `[]`: no parameters.
impl Params for [&dyn ToSql; 0] {
    fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
        f(&[])
    }
}
macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
                let values: Vec<Value<'_>> = self.iter().map(|p| p.to_value()).collect();
                f(&values)
            }
        }
        impl<T: ToSql> Params for &[T; $n] {
            fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
                let values: Vec<Value<'_>> = self.iter().map(|p| p.to_value()).collect();
                f(&values)
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8);

/// Parameters from an iterator (rusqlite's `params_from_iter`).
pub struct ParamsFromIter<I>(I);

pub fn params_from_iter<I>(iter: I) -> ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    ParamsFromIter(iter)
}

impl<I> Params for ParamsFromIter<I>
where
    I: IntoIterator,
    I::Item: ToSql,
{
    fn bind<R>(self, f: impl FnOnce(&[Value<'_>]) -> R) -> R {
        let items: Vec<I::Item> = self.0.into_iter().collect();
        let values: Vec<Value<'_>> = items.iter().map(|p| p.to_value()).collect();
        f(&values)
    }
}

/// `params![a, b, ...]`, as rusqlite's.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::db::sql::ToSql] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::db::sql::ToSql),+] as &[&dyn $crate::db::sql::ToSql] };
}
pub use crate::params;

/// A column's value as read.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Null,
    Int(i64),
    Real(f64),
    Text(&'a str),
    Blob(&'a [u8]),
}

/// Something a column reads into (rusqlite's `FromSql`).
pub trait FromSql: Sized {
    fn from_cell(cell: Cell<'_>) -> Result<Self>;
}

fn wrong(cell: Cell<'_>, want: &str) -> Error {
    Error::Conversion(format!("expected {want}, read {cell:?}"))
}

macro_rules! int_column {
    ($($t:ty),*) => {$(
        impl FromSql for $t {
            fn from_cell(cell: Cell<'_>) -> Result<Self> {
                match cell {
                    Cell::Int(i) => <$t>::try_from(i).map_err(|_| wrong(cell, stringify!($t))),
                    Cell::Real(f) if f.fract() == 0.0 => <$t>::try_from(f as i64).map_err(|_| wrong(cell, stringify!($t))),
                    _ => Err(wrong(cell, stringify!($t))),
                }
            }
        }
    )*};
}
int_column!(i64, i32, i16, u8, u16, u32, u64, usize);

impl FromSql for bool {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Int(i) => Ok(i != 0),
            _ => Err(wrong(cell, "a boolean")),
        }
    }
}
impl FromSql for f64 {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Real(f) => Ok(f),
            Cell::Int(i) => Ok(i as f64),
            _ => Err(wrong(cell, "a number")),
        }
    }
}
impl FromSql for String {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Text(s) => Ok(s.to_string()),
            _ => Err(wrong(cell, "text")),
        }
    }
}
impl FromSql for Vec<u8> {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Blob(b) => Ok(b.to_vec()),
            Cell::Text(s) => Ok(s.as_bytes().to_vec()),
            _ => Err(wrong(cell, "bytes")),
        }
    }
}
impl<const N: usize> FromSql for [u8; N] {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Blob(b) => b
                .try_into()
                .map_err(|_| wrong(cell, "bytes of a fixed length")),
            _ => Err(wrong(cell, "bytes")),
        }
    }
}
impl<T: FromSql> FromSql for Option<T> {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        match cell {
            Cell::Null => Ok(None),
            c => T::from_cell(c).map(Some),
        }
    }
}
/// An owned column value of any type.
impl FromSql for Value<'static> {
    fn from_cell(cell: Cell<'_>) -> Result<Self> {
        Ok(match cell {
            Cell::Null => Value::Null,
            Cell::Int(i) => Value::Int(i),
            Cell::Real(f) => Value::Real(f),
            Cell::Text(s) => Value::Text(Cow::Owned(s.to_string())),
            Cell::Blob(b) => Value::Blob(Cow::Owned(b.to_vec())),
        })
    }
}

/// PostgreSQL's column of any type, read as a [`Cell`].
struct PgCell<'a>(Cell<'a>);

impl<'a> postgres::types::FromSql<'a> for PgCell<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(PgCell(match *ty {
            Type::INT8 => Cell::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Cell::Int(i32::from_sql(ty, raw)? as i64),
            Type::INT2 => Cell::Int(i16::from_sql(ty, raw)? as i64),
            Type::OID => Cell::Int(u32::from_sql(ty, raw)? as i64),
            Type::BOOL => Cell::Int(bool::from_sql(ty, raw)? as i64),
            Type::FLOAT8 => Cell::Real(f64::from_sql(ty, raw)?),
            Type::FLOAT4 => Cell::Real(f32::from_sql(ty, raw)? as f64),
            Type::BYTEA => Cell::Blob(raw),
            Type::NUMERIC => {
                return Err("a NUMERIC column: cast it (::bigint or ::float8) in the query".into());
            }
            _ => Cell::Text(<&str>::from_sql(ty, raw)?),
        }))
    }

    fn from_sql_null(_: &Type) -> Result<Self, BoxError> {
        Ok(PgCell(Cell::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

/// A column by position or by name.
pub trait RowIndex: Copy + std::fmt::Debug {
    fn sqlite<'r>(
        self,
        row: &'r rusqlite::Row<'_>,
    ) -> rusqlite::Result<rusqlite::types::ValueRef<'r>>;
    fn postgres<'r>(self, row: &'r postgres::Row) -> Result<PgCellOut<'r>>;
}

/// A PostgreSQL cell (exposed only for [`RowIndex`]).
pub struct PgCellOut<'a>(Cell<'a>);

impl RowIndex for usize {
    fn sqlite<'r>(
        self,
        row: &'r rusqlite::Row<'_>,
    ) -> rusqlite::Result<rusqlite::types::ValueRef<'r>> {
        row.get_ref(self)
    }
    fn postgres<'r>(self, row: &'r postgres::Row) -> Result<PgCellOut<'r>> {
        Ok(PgCellOut(row.try_get::<_, PgCell<'r>>(self)?.0))
    }
}
impl RowIndex for &str {
    fn sqlite<'r>(
        self,
        row: &'r rusqlite::Row<'_>,
    ) -> rusqlite::Result<rusqlite::types::ValueRef<'r>> {
        row.get_ref(self)
    }
    fn postgres<'r>(self, row: &'r postgres::Row) -> Result<PgCellOut<'r>> {
        Ok(PgCellOut(row.try_get::<_, PgCell<'r>>(self)?.0))
    }
}

/// One result row.
#[derive(Clone, Copy)]
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    /// The column at `idx`, converted.
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let converted = match self {
            Row::Sqlite(r) => {
                use rusqlite::types::ValueRef;
                let cell = match idx.sqlite(r)? {
                    ValueRef::Null => Cell::Null,
                    ValueRef::Integer(i) => Cell::Int(i),
                    ValueRef::Real(f) => Cell::Real(f),
                    ValueRef::Text(t) => Cell::Text(
                        std::str::from_utf8(t)
                            .map_err(|e| Error::Conversion(format!("column {idx:?}: {e}")))?,
                    ),
                    ValueRef::Blob(b) => Cell::Blob(b),
                };
                T::from_cell(cell)
            }
            Row::Postgres(r) => T::from_cell(idx.postgres(r)?.0),
        };
        converted.map_err(|e| match e {
            Error::Conversion(m) => Error::Conversion(format!("column {idx:?}: {m}")),
            e => e,
        })
    }
}

/// Runs blocking PostgreSQL I/O where the driver may block: its client
/// drives a runtime of its own, which must not start on a Tokio worker
/// (the server runs the engine, and so its store calls, on one).
fn off_runtime<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    use tokio::runtime::{Handle, RuntimeFlavor};
    match Handle::try_current() {
        Ok(h) if h.runtime_flavor() == RuntimeFlavor::MultiThread => tokio::task::block_in_place(f),
        Ok(_) => std::thread::scope(|s| {
            s.spawn(f)
                .join()
                .unwrap_or_else(|p| std::panic::resume_unwind(p))
        }),
        Err(_) => f(),
    }
}

/// Prepared statements kept per PostgreSQL connection; past this the cache
/// starts over (queries with `IN` lists of every length would grow it).
const PG_STATEMENT_CACHE: usize = 512;

/// A PostgreSQL connection, with its prepared statements.
pub struct PgConnection {
    /// `None` only while dropping.
    client: RefCell<Option<postgres::Client>>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
    in_transaction: StdCell<bool>,
}

impl PgConnection {
    pub fn connect(config: &postgres::Config) -> Result<Self> {
        let client = off_runtime(|| config.connect(postgres::NoTls))?;
        Ok(PgConnection {
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
            in_transaction: StdCell::new(false),
        })
    }

    fn statement(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(s) = self.statements.borrow().get(sql) {
            return Ok(s.clone());
        }
        let translated = postgres_sql(sql);
        let client: &mut postgres::Client = &mut self.client();
        let stmt =
            off_runtime(|| client.prepare(&translated)).map_err(|e| match e.as_db_error() {
                Some(_) => Error::Prepare {
                    message: postgres_message(&e),
                    sql: translated.split_whitespace().collect::<Vec<_>>().join(" "),
                },
                None => Error::Postgres(e),
            })?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= PG_STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), stmt.clone());
        Ok(stmt)
    }

    fn execute(&self, stmt: &postgres::Statement, values: &[Value<'_>]) -> Result<usize> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let client: &mut postgres::Client = &mut self.client();
        Ok(off_runtime(|| client.execute(stmt, &refs))? as usize)
    }

    fn query(
        &self,
        stmt: &postgres::Statement,
        values: &[Value<'_>],
    ) -> Result<Vec<postgres::Row>> {
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = values
            .iter()
            .map(|v| v as &(dyn postgres::types::ToSql + Sync))
            .collect();
        let client: &mut postgres::Client = &mut self.client();
        Ok(off_runtime(|| client.query(stmt, &refs))?)
    }

    fn batch(&self, sql: &str) -> Result<()> {
        let translated = postgres_sql(sql);
        let client: &mut postgres::Client = &mut self.client();
        off_runtime(|| client.batch_execute(&translated))?;
        // Track the transaction for `is_autocommit` and the pool.
        for stmt in sql.split(';') {
            let s = stmt.trim_start().to_ascii_uppercase();
            if s.starts_with("BEGIN") || s.starts_with("START TRANSACTION") {
                self.in_transaction.set(true);
            } else if s.starts_with("COMMIT")
                || s.starts_with("END")
                || (s.starts_with("ROLLBACK") && !s.starts_with("ROLLBACK TO"))
            {
                self.in_transaction.set(false);
            }
        }
        Ok(())
    }

    fn client(&self) -> std::cell::RefMut<'_, postgres::Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut().expect("a connection not yet dropped")
        })
    }

    /// The connection is gone (the server closed it or failed over).
    pub fn is_closed(&self) -> bool {
        self.client.borrow().as_ref().is_none_or(|c| c.is_closed())
    }
}

impl Drop for PgConnection {
    /// The driver's client says goodbye to the server by blocking on its
    /// own runtime, which panics on a Tokio worker, where the pool drops a
    /// broken connection (and where unwinding from a panicked request
    /// drops its connection). There it is dropped on a thread of its own.
    fn drop(&mut self) {
        let Some(client) = self.client.get_mut().take() else {
            return;
        };
        if tokio::runtime::Handle::try_current().is_ok() {
            let _ = std::thread::Builder::new()
                .name("pg-close".into())
                .spawn(move || drop(client));
        } else {
            drop(client);
        }
    }
}

/// A connection to either database.
pub enum Connection {
    Sqlite(rusqlite::Connection),
    Postgres(PgConnection),
}

impl Connection {
    pub fn dialect(&self) -> Dialect {
        match self {
            Connection::Sqlite(_) => Dialect::Sqlite,
            Connection::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection, for what only SQLite has (pragmas, hooks).
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match self {
            Connection::Sqlite(c) => Some(c),
            Connection::Postgres(_) => None,
        }
    }

    /// A statement kept prepared on this connection.
    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement(match self {
            Connection::Sqlite(c) => Stmt::Sqlite(c.prepare_cached(sql)?),
            Connection::Postgres(c) => Stmt::Postgres(c, c.statement(sql)?),
        }))
    }

    /// A statement prepared once (SQL that varies, such as `IN` lists).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        Ok(Statement(match self {
            Connection::Sqlite(c) => Stmt::SqliteOnce(c.prepare(sql)?),
            Connection::Postgres(c) => Stmt::Postgres(c, c.statement(sql)?),
        }))
    }

    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<P: Params, T>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Runs statements separated by `;`, without parameters.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Connection::Postgres(c) => c.batch(sql),
        }
    }

    /// Whether no transaction is open.
    pub fn is_autocommit(&self) -> bool {
        match self {
            Connection::Sqlite(c) => c.is_autocommit(),
            Connection::Postgres(c) => !c.in_transaction.get(),
        }
    }

    /// Begins a transaction that commits with [`Transaction::commit`] and
    /// rolls back when dropped. A write transaction holds the database's
    /// write lock from the start (see [`Connection::begin`]).
    pub fn transaction(&self, mode: Begin) -> Result<Transaction<'_>> {
        self.begin(mode)?;
        Ok(Transaction {
            conn: self,
            done: false,
            savepoint: false,
        })
    }

    /// A savepoint in the current transaction: released by
    /// [`Transaction::commit`], rolled back to when dropped. After a
    /// failed statement PostgreSQL refuses every later one in the
    /// transaction until a savepoint before it is rolled back to.
    pub fn savepoint(&self) -> Result<Transaction<'_>> {
        self.run("SAVEPOINT host_atomic")?;
        Ok(Transaction {
            conn: self,
            done: false,
            savepoint: true,
        })
    }

    /// A statement without parameters or results, kept prepared.
    fn run(&self, sql: &str) -> Result<()> {
        match self {
            Connection::Sqlite(c) => {
                c.prepare_cached(sql)?.execute([])?;
                Ok(())
            }
            Connection::Postgres(c) => c.batch(sql),
        }
    }

    /// `BEGIN`, as `mode` says. On SQLite a write takes the one write lock
    /// (`BEGIN IMMEDIATE`). On PostgreSQL it takes the tenant's write lock,
    /// a transaction-scoped advisory lock, so that writes to one tenant
    /// are serialised across every replica as they are in one SQLite
    /// process, and each sees the one before it (READ COMMITTED); a read
    /// runs on one snapshot (REPEATABLE READ).
    pub fn begin(&self, mode: Begin) -> Result<()> {
        self.begin_within(mode, None)
    }

    /// [`Connection::begin`], with each statement of the transaction, the
    /// wait for the write lock included, limited to `timeout_ms` on
    /// PostgreSQL (SQLite's deadline is a progress handler, which does not
    /// run while SQLite waits for a lock held by another process, so the
    /// wait for the write lock is bounded here). On PostgreSQL it is one
    /// round trip.
    pub fn begin_within(&self, mode: Begin, timeout_ms: Option<u64>) -> Result<()> {
        let pg = match (self, mode) {
            (Connection::Sqlite(c), Begin::Read) => {
                c.prepare_cached("BEGIN DEFERRED")?.execute([])?;
                return Ok(());
            }
            (Connection::Sqlite(c), Begin::Write(_)) => {
                let Some(ms) = timeout_ms else {
                    c.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
                    return Ok(());
                };
                let wait = Duration::from_millis(ms.max(1)).min(super::BUSY_TIMEOUT);
                c.busy_timeout(wait)?;
                let begun = c
                    .prepare_cached("BEGIN IMMEDIATE")
                    .and_then(|mut s| s.execute([]));
                c.busy_timeout(super::BUSY_TIMEOUT)?;
                begun?;
                return Ok(());
            }
            (Connection::Postgres(c), _) => c,
        };
        let mut sql = String::from(match mode {
            Begin::Read => "BEGIN ISOLATION LEVEL REPEATABLE READ;",
            Begin::Write(_) => "BEGIN ISOLATION LEVEL READ COMMITTED;",
        });
        if let Some(ms) = timeout_ms {
            sql.push_str(&format!(" SET LOCAL statement_timeout = {};", ms.max(1)));
        }
        match mode {
            Begin::Read => {}
            // Tenant writes also wait for writes that span tenants.
            Begin::Write(Some(tenant)) => sql.push_str(&format!(
                " SELECT pg_advisory_xact_lock({WRITE_LOCK_CLASS}, {tenant});
                  SELECT pg_advisory_xact_lock_shared({WRITE_LOCK_CLASS}, {GLOBAL_WRITE_LOCK});"
            )),
            Begin::Write(None) => sql.push_str(&format!(
                " SELECT pg_advisory_xact_lock({WRITE_LOCK_CLASS}, {GLOBAL_WRITE_LOCK});"
            )),
        }
        if let Err(e) = pg.batch(&sql) {
            let _ = pg.batch("ROLLBACK");
            return Err(e);
        }
        Ok(())
    }
}

/// The advisory-lock class of write locks (the first key of PostgreSQL's
/// two-key advisory locks); the second is the tenant id.
const WRITE_LOCK_CLASS: i32 = 0x5c1a;
/// The second key of the lock taken by writes that span tenants (schema
/// changes, removing a tenant); tenant ids start at 1.
const GLOBAL_WRITE_LOCK: i64 = 0;

/// How a transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Reads only, on one snapshot.
    Read,
    /// Writes, to one tenant (`Some(id)`) or to several.
    Write(Option<i64>),
}

/// A transaction on a borrowed connection; rolled back unless committed.
pub struct Transaction<'c> {
    conn: &'c Connection,
    done: bool,
    savepoint: bool,
}

impl Transaction<'_> {
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        if self.savepoint {
            self.conn.run("RELEASE host_atomic")
        } else {
            self.conn.run("COMMIT")
        }
    }

    pub fn rollback(mut self) -> Result<()> {
        self.done = true;
        self.undo()
    }

    fn undo(&self) -> Result<()> {
        if self.savepoint {
            self.conn.run("ROLLBACK TO host_atomic")?;
            self.conn.run("RELEASE host_atomic")
        } else {
            self.conn.run("ROLLBACK")
        }
    }
}

impl std::ops::Deref for Transaction<'_> {
    type Target = Connection;
    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.done {
            let _ = self.undo();
        }
    }
}

enum Stmt<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    SqliteOnce(rusqlite::Statement<'c>),
    Postgres(&'c PgConnection, postgres::Statement),
}

/// A prepared statement.
pub struct Statement<'c>(Stmt<'c>);

impl<'c> Statement<'c> {
    fn sqlite(&mut self) -> Option<&mut rusqlite::Statement<'c>> {
        match &mut self.0 {
            Stmt::Sqlite(s) => Some(s),
            Stmt::SqliteOnce(s) => Some(s),
            Stmt::Postgres(..) => None,
        }
    }

    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        if let Stmt::Postgres(c, s) = &self.0 {
            return params.bind(|v| c.execute(s, v));
        }
        let s = self.sqlite().expect("a SQLite statement");
        params.bind(|v| Ok(s.execute(rusqlite::params_from_iter(v.iter()))?))
    }

    pub fn query_row<P: Params, T>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        if let Stmt::Postgres(c, s) = &self.0 {
            let rows = params.bind(|v| c.query(s, v))?;
            return match rows.first() {
                Some(r) => f(&Row::Postgres(r)),
                None => Err(Error::NoRows),
            };
        }
        let s = self.sqlite().expect("a SQLite statement");
        params.bind(|v| {
            let mut rows = s.query(rusqlite::params_from_iter(v.iter()))?;
            match rows.next()? {
                Some(r) => f(&Row::Sqlite(r)),
                None => Err(Error::NoRows),
            }
        })
    }

    /// Every row, mapped by `f`; read in full before `f` sees the first.
    pub fn query_map<P: Params, T>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut out = Vec::new();
        if let Stmt::Postgres(c, s) = &self.0 {
            let rows = params.bind(|v| c.query(s, v))?;
            out.reserve(rows.len());
            for r in &rows {
                out.push(f(&Row::Postgres(r)));
            }
            return Ok(out.into_iter());
        }
        let s = self.sqlite().expect("a SQLite statement");
        params.bind(|v| -> Result<()> {
            let mut rows = s.query(rusqlite::params_from_iter(v.iter()))?;
            while let Some(r) = rows.next()? {
                out.push(f(&Row::Sqlite(r)));
            }
            Ok(())
        })?;
        Ok(out.into_iter())
    }

    /// The rows, one at a time (`while let Some(r) = rows.next()?`).
    pub fn query<P: Params>(&mut self, params: P) -> Result<Rows<'_>> {
        if let Stmt::Postgres(c, s) = &self.0 {
            let rows = params.bind(|v| c.query(s, v))?;
            return Ok(Rows(RowsInner::Postgres(rows.into_iter(), None)));
        }
        let s = self.sqlite().expect("a SQLite statement");
        let rows = params.bind(|v| s.query(rusqlite::params_from_iter(v.iter())))?;
        Ok(Rows(RowsInner::Sqlite(rows)))
    }

    /// Whether any row matches.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        match self.query_row(params, |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(Error::NoRows) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// The rows of [`Statement::query`].
pub struct Rows<'s>(RowsInner<'s>);

enum RowsInner<'s> {
    Sqlite(rusqlite::Rows<'s>),
    Postgres(std::vec::IntoIter<postgres::Row>, Option<postgres::Row>),
}

impl Rows<'_> {
    /// The next row (a lending iterator, as rusqlite's `Rows`).
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> Result<Option<Row<'_>>> {
        match &mut self.0 {
            RowsInner::Sqlite(rows) => Ok(rows.next()?.map(Row::Sqlite)),
            RowsInner::Postgres(rows, current) => {
                *current = rows.next();
                Ok(current.as_ref().map(Row::Postgres))
            }
        }
    }
}

/// Rewrites SQL written for SQLite into PostgreSQL's:
/// - `?N` becomes `$N`, and each bare `?` the next `$N`;
/// - `INSERT OR IGNORE INTO ...` becomes `INSERT INTO ... ON CONFLICT DO NOTHING`;
/// - `instr(` becomes `strpos(` (same arguments);
/// - ` LIKE ` becomes ` ILIKE `: SQLite's `LIKE` ignores ASCII case;
/// - ` CROSS JOIN ` becomes ` JOIN `: in SQLite it is an inner join whose
///   order the planner keeps, and PostgreSQL allows no `ON` after it.
///
/// Text inside single quotes is left alone.
pub fn postgres_sql(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 16);
    let mut next = 0u32;
    let mut chars = sql.char_indices().peekable();
    let mut quoted = false;
    let mut ignore = false;
    while let Some((i, c)) = chars.next() {
        if quoted {
            out.push(c);
            if c == '\'' {
                quoted = false;
            }
            continue;
        }
        let rest = &sql[i..];
        let starts = |w: &str| {
            rest.len() >= w.len()
                && rest.is_char_boundary(w.len())
                && rest[..w.len()].eq_ignore_ascii_case(w)
        };
        match c {
            '\'' => {
                quoted = true;
                out.push(c);
            }
            '?' => {
                let mut digits = String::new();
                while let Some(&(_, d)) = chars.peek() {
                    if d.is_ascii_digit() {
                        digits.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if digits.is_empty() {
                    next += 1;
                    out.push_str(&format!("${next}"));
                } else {
                    next = next.max(digits.parse().unwrap_or(0));
                    out.push('$');
                    out.push_str(&digits);
                }
            }
            _ if starts("INSERT OR IGNORE ") => {
                out.push_str("INSERT ");
                ignore = true;
                for _ in 0.."INSERT OR IGNORE ".len() - 1 {
                    chars.next();
                }
            }
            _ if starts("instr(") && !prev_is_word(&out) => {
                out.push_str("strpos(");
                for _ in 0.."instr(".len() - 1 {
                    chars.next();
                }
            }
            _ if starts(" CROSS JOIN ") => {
                out.push_str(" JOIN ");
                for _ in 0.." CROSS JOIN ".len() - 1 {
                    chars.next();
                }
            }
            _ if starts(" LIKE ") => {
                out.push_str(" ILIKE ");
                for _ in 0.." LIKE ".len() - 1 {
                    chars.next();
                }
            }
            _ => out.push(c),
        }
    }
    if ignore {
        let trimmed = out.trim_end().trim_end_matches(';').len();
        out.truncate(trimmed);
        out.push_str(" ON CONFLICT DO NOTHING");
    }
    out
}

fn prev_is_word(s: &str) -> bool {
    s.chars()
        .last()
        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_and_dialect_differences_are_rewritten() {
        assert_eq!(
            postgres_sql("SELECT a FROM t WHERE b = ? AND c = ? AND d = 'x?'"),
            "SELECT a FROM t WHERE b = $1 AND c = $2 AND d = 'x?'"
        );
        assert_eq!(
            postgres_sql("UPDATE t SET a = ?2 WHERE b = ?1"),
            "UPDATE t SET a = $2 WHERE b = $1"
        );
        assert_eq!(
            postgres_sql("INSERT OR IGNORE INTO t (a) VALUES (?1)"),
            "INSERT INTO t (a) VALUES ($1) ON CONFLICT DO NOTHING"
        );
        assert_eq!(
            postgres_sql("SELECT 1 WHERE instr(v, ?) > 0 AND body LIKE ? ESCAPE '\\'"),
            "SELECT 1 WHERE strpos(v, $1) > 0 AND body ILIKE $2 ESCAPE '\\'"
        );
    }

    #[test]
    fn sqlite_reads_and_writes_through_the_common_interface() {
        super::super::configure_sqlite();
        let conn = Connection::Sqlite(rusqlite::Connection::open_in_memory().unwrap());
        conn.execute_batch("CREATE TABLE t (a INTEGER, b TEXT, c BLOB, d REAL)")
            .unwrap();
        let blob = [1u8, 2, 3];
        conn.execute(
            "INSERT INTO t VALUES (?1, ?2, ?3, ?4)",
            params![7i64, "x", blob, 1.5f64],
        )
        .unwrap();
        let (a, b, c, d): (u32, String, Vec<u8>, f64) = conn
            .query_row("SELECT a, b, c, d FROM t", [], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get("d")?))
            })
            .unwrap();
        assert_eq!((a, b.as_str(), c.as_slice(), d), (7, "x", &blob[..], 1.5));
        let none = conn
            .query_row("SELECT a FROM t WHERE a = 8", [], |r| r.get::<_, i64>(0))
            .optional()
            .unwrap();
        assert_eq!(none, None);
        let all: Vec<i64> = conn
            .prepare_cached("SELECT a FROM t WHERE a IN (?, ?)")
            .unwrap()
            .query_map(params_from_iter([7i64, 9]), |r| r.get(0))
            .unwrap()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(all, vec![7]);
    }
}
