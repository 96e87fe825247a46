"""The WIT `store` interface over SQLite: an indexed document store plus a
membership relation, scoped to the session's tenant and running inside its
transaction. Terms are opaque strings compared byte-wise (SQLite's BINARY
collation on UTF-8), so the engine's normalised values order as it expects.

Selections and pages behave as in the Rust host
(`host-harness/src/imports/store.rs`), which the engine relies on; its
caches and cost-based plan choices are left out. Every write runs inside a
SAVEPOINT, so a call that fails has changed nothing.

Values cross the component boundary as wasmtime-py represents them: records
as `wasmtime.component.Record` with kebab-case attributes, a variant whose
cases can be told apart by Python type as the bare payload (a `selection` is
`None`, a term-query `Record`, a `str` or a `list`), other variants as
`Variant(tag, payload)`.
"""

from __future__ import annotations

import sqlite3
from typing import Any, Callable, List, Optional

from wasmtime.component import Record, Variant

from .db import Session

#: Ids bound per `IN (...)` list, well under SQLite's parameter limit.
CHUNK = 500


def rec(**fields: Any) -> Record:
    """A WIT record; `snake_case` keyword names become kebab-case fields."""
    r = Record()
    for k, v in fields.items():
        setattr(r, k.replace("_", "-"), v)
    return r


def err(case: str, payload: Any = None) -> Variant:
    """A `store-error` (a tagged variant: several cases carry strings)."""
    return Variant(case, payload)


class StoreError(Exception):
    """Raised inside a write to leave its savepoint with a `store-error`."""

    def __init__(self, variant: Variant):
        super().__init__(variant.tag)
        self.variant = variant


def _marks(n: int) -> str:
    return ", ".join("?" * n)


def _chunks(items: list):
    for i in range(0, len(items), CHUNK):
        yield items[i : i + CHUNK]


def guarded(fn: Callable) -> Callable:
    """Turns SQLite failures into `unavailable` and `StoreError`s into their
    variant, as the import's `result` error."""

    def call(s: Session, *args):
        try:
            return fn(s, *args)
        except StoreError as e:
            return e.variant
        except sqlite3.Error as e:
            return err("unavailable", str(e))

    call.__name__ = fn.__name__
    return call


def atomic(s: Session, fn: Callable[[], Any]) -> Any:
    """Runs a write inside a savepoint so a failed write changes nothing."""
    s.conn.execute("SAVEPOINT host_write")
    try:
        out = fn()
    except BaseException:
        s.conn.execute("ROLLBACK TO host_write")
        s.conn.execute("RELEASE host_write")
        raise
    s.conn.execute("RELEASE host_write")
    return out


# --- selections ---------------------------------------------------------

#: LIKE compares ASCII letters case-insensitively and nothing else, so a
#: body that is not pure ASCII always passes and is left to the engine.
BODY_CONTAINS = "(d.ascii = 0 OR d.body LIKE ? ESCAPE '\\')"


def like_pattern(needle: str) -> str:
    escaped = "".join("\\" + c if c in "%_\\" else c for c in needle)
    return f"%{escaped}%"


def term_condition(q: Record, args: list) -> str:
    """The SQL condition on `terms t` for a term-query."""
    args.append(q.name)
    m: Variant = q.match
    if m.tag == "exact":
        args.append(m.payload)
        return "t.name = ? AND t.value = ?"
    if m.tag == "prefix":
        p = m.payload
        # A range the index can walk, then the exact prefix test.
        args.extend([p, p + "\U0010ffff", p, p])
        return "t.name = ? AND t.value >= ? AND t.value < ? AND substr(t.value, 1, length(?)) = ?"
    if m.tag == "contains":
        args.append(m.payload)
        return "t.name = ? AND instr(t.value, ?) > 0"
    lo, hi = m.payload
    cond = "t.name = ?"
    if lo is not None:
        cond += " AND t.value >= ?" if lo.inclusive else " AND t.value > ?"
        args.append(lo.value)
    if hi is not None:
        cond += " AND t.value <= ?" if hi.inclusive else " AND t.value < ?"
        args.append(hi.value)
    return cond


def selection_where(s: Session, kind: str, selection: Any, args: list) -> str:
    """`WHERE …` over `documents d` for a selection."""
    args.extend([s.tenant, kind])
    where = "WHERE d.tenant = ? AND d.kind = ?"
    if selection is None:  # all
        return where
    if isinstance(selection, str):  # body-contains
        args.append(like_pattern(selection))
        return f"{where} AND {BODY_CONTAINS}"
    if isinstance(selection, Record):  # term
        return f"{where} AND d.seq IN ({term_seqs(s, kind, [selection], args)})"
    # matching: every clause. The first non-empty any-term clause drives
    # (its documents are collected from the index); the others are checked
    # on those rows only.
    driver = next((c for c in selection if isinstance(c, list) and c), None)
    for clause in selection:
        if clause is driver:
            where += f" AND d.seq IN ({term_seqs(s, kind, clause, args)})"
        elif isinstance(clause, str):
            where += f" AND {BODY_CONTAINS}"
            args.append(like_pattern(clause))
        elif not clause:
            where += " AND 0"
        else:
            any_of = " OR ".join(f"({term_condition(q, args)})" for q in clause)
            where += f" AND EXISTS (SELECT 1 FROM terms t WHERE t.seq = d.seq AND ({any_of}))"
    return where


def term_seqs(s: Session, kind: str, queries: List[Record], args: list) -> str:
    """A subquery of the seqs of documents with a term matching any query."""
    parts = []
    for q in queries:
        args.extend([s.tenant, kind])
        parts.append(
            f"SELECT t.seq FROM terms t WHERE t.tenant = ? AND t.kind = ? AND {term_condition(q, args)}"
        )
    return " UNION ".join(parts)


def select(s: Session, kind: str, selection: Any, page: Record, cols: str) -> list:
    args: list = []
    sql = f"SELECT {cols} FROM documents d {selection_where(s, kind, selection, args)}"
    desc = page.descending
    if page.after is not None:
        sql += " AND d.seq < ?" if desc else " AND d.seq > ?"
        args.append(page.after)
    sql += f" ORDER BY d.seq {'DESC' if desc else 'ASC'} LIMIT ? OFFSET ?"
    args.extend([page.limit, page.offset])
    return s.conn.execute(sql, args).fetchall()


def document(row) -> Record:
    return rec(id=row[0], seq=row[1], version=row[2], body=row[3])


# --- the imports --------------------------------------------------------


def seq_of(s: Session, kind: str, id: str):
    """(seq, version) of a document, or None."""
    return s.conn.execute(
        "SELECT seq, version FROM documents WHERE tenant = ? AND kind = ? AND id = ?",
        (s.tenant, kind, id),
    ).fetchone()


def group_seq(s: Session, kind: str, id: str) -> int:
    row = seq_of(s, kind, id)
    if row is None:
        raise StoreError(err("not-found"))
    return row[0]


def get(s: Session, kind: str, id: str):
    # `result<option<document>, store-error>` cannot carry its error through
    # wasmtime-py (see README, "Quirks"): a failure here raises, which traps
    # the request and rolls it back.
    row = s.conn.execute(
        "SELECT id, seq, version, body FROM documents WHERE tenant = ? AND kind = ? AND id = ?",
        (s.tenant, kind, id),
    ).fetchone()
    return document(row) if row else None


@guarded
def get_many(s: Session, kind: str, ids: List[str]):
    out = []
    for chunk in _chunks(ids):
        out += s.conn.execute(
            f"SELECT id, seq, version, body FROM documents WHERE tenant = ? AND kind = ? "
            f"AND id IN ({_marks(len(chunk))})",
            [s.tenant, kind, *chunk],
        ).fetchall()
    return [document(r) for r in out]


def insert_terms(s: Session, kind: str, seq: int, terms: List[Record]) -> None:
    for t in terms:
        try:
            s.conn.execute(
                "INSERT INTO terms (tenant, kind, name, value, seq, is_unique) VALUES (?, ?, ?, ?, ?, ?)",
                (s.tenant, kind, t.name, t.value, seq, int(t.unique)),
            )
        except sqlite3.IntegrityError:
            raise StoreError(err("unique-violation", t.name))


@guarded
def insert(s: Session, kind: str, doc: Record):
    def write():
        try:
            cur = s.conn.execute(
                "INSERT INTO documents (tenant, kind, id, version, label, body, ascii) "
                "VALUES (?, ?, ?, 1, ?, ?, ?)",
                (s.tenant, kind, doc.id, doc.label, doc.body, int(doc.body.isascii())),
            )
        except sqlite3.IntegrityError:
            raise StoreError(err("conflict", 0))
        insert_terms(s, kind, cur.lastrowid, doc.terms)
        return rec(seq=cur.lastrowid, version=1)

    return atomic(s, write)


@guarded
def replace(s: Session, kind: str, doc: Record, expected: Optional[int]):
    row = seq_of(s, kind, doc.id)
    if row is None:
        return err("not-found")
    seq, current = row
    if expected is not None and expected != current:
        return err("conflict", current)

    def write():
        s.conn.execute(
            "UPDATE documents SET version = version + 1, label = ?, body = ?, ascii = ? WHERE seq = ?",
            (doc.label, doc.body, int(doc.body.isascii()), seq),
        )
        s.conn.execute("DELETE FROM terms WHERE seq = ?", (seq,))
        insert_terms(s, kind, seq, doc.terms)
        return rec(seq=seq, version=current + 1)

    return atomic(s, write)


@guarded
def delete(s: Session, kind: str, id: str, expected: Optional[int]):
    row = seq_of(s, kind, id)
    if row is None:
        return err("not-found")
    seq, current = row
    if expected is not None and expected != current:
        return err("conflict", current)

    def write():
        for sql in (
            "DELETE FROM terms WHERE seq = ?",
            "DELETE FROM members WHERE group_seq = ?",
            "DELETE FROM members WHERE member_seq = ?",
            "DELETE FROM documents WHERE seq = ?",
        ):
            s.conn.execute(sql, (seq,))

    atomic(s, write)
    return None


@guarded
def scan(s: Session, kind: str, selection: Any, page: Record):
    return [document(r) for r in select(s, kind, selection, page, "d.id, d.seq, d.version, d.body")]


@guarded
def scan_keys(s: Session, kind: str, selection: Any, page: Record):
    return [(r[0], r[1]) for r in select(s, kind, selection, page, "d.id, d.seq")]


@guarded
def count(s: Session, kind: str, selection: Any):
    args: list = []
    where = selection_where(s, kind, selection, args)
    return s.conn.execute(f"SELECT count(*) FROM documents d {where}", args).fetchone()[0]


@guarded
def savepoint(s: Session):
    s.savepoints += 1
    s.conn.execute(f"SAVEPOINT engine_{s.savepoints}")
    return s.savepoints


@guarded
def rollback_to(s: Session, sp: int):
    s.conn.execute(f"ROLLBACK TO engine_{int(sp)}")
    s.conn.execute(f"RELEASE engine_{int(sp)}")
    return None


@guarded
def release(s: Session, sp: int):
    s.conn.execute(f"RELEASE engine_{int(sp)}")
    return None


@guarded
def members_add(s: Session, group_kind: str, group: str, members: List[Record]):
    g = group_seq(s, group_kind, group)
    seqs, missing = [], []
    for m in members:
        row = seq_of(s, m.kind, m.id)
        if row is None:
            missing.append(m.id)
        else:
            seqs.append((row[0], m.id))
    if missing:
        return err("missing", missing)

    def write():
        added = []
        for seq, id in seqs:
            cur = s.conn.execute(
                "INSERT OR IGNORE INTO members (group_seq, member_seq) VALUES (?, ?)", (g, seq)
            )
            if cur.rowcount == 1:
                added.append(id)
        return added

    return atomic(s, write)


@guarded
def members_remove(s: Session, group_kind: str, group: str, ids: List[str]):
    g = group_seq(s, group_kind, group)

    def write():
        removed = []
        for id in ids:
            row = s.conn.execute(
                "SELECT seq FROM documents WHERE tenant = ? AND id = ? LIMIT 1", (s.tenant, id)
            ).fetchone()
            if row is None:
                continue
            cur = s.conn.execute(
                "DELETE FROM members WHERE group_seq = ? AND member_seq = ?", (g, row[0])
            )
            if cur.rowcount == 1:
                removed.append(id)
        return removed

    return atomic(s, write)


@guarded
def members_clear(s: Session, group_kind: str, group: str):
    g = group_seq(s, group_kind, group)
    return atomic(s, lambda: s.conn.execute("DELETE FROM members WHERE group_seq = ?", (g,)).rowcount)


@guarded
def members_contains(s: Session, group_kind: str, group: str, ids: List[str]):
    g = group_seq(s, group_kind, group)
    sql = (
        "SELECT 1 FROM members m JOIN documents d ON d.seq = m.member_seq "
        "WHERE m.group_seq = ? AND d.tenant = ? AND d.id = ?"
    )
    return [id for id in ids if s.conn.execute(sql, (g, s.tenant, id)).fetchone()]


@guarded
def members_list(s: Session, group_kind: str, group: str, after: Optional[int], limit: int):
    g = group_seq(s, group_kind, group)
    rows = s.conn.execute(
        "SELECT d.id, d.kind, d.label, d.seq FROM members m JOIN documents d ON d.seq = m.member_seq "
        "WHERE m.group_seq = ? AND m.member_seq > ? ORDER BY m.member_seq LIMIT ?",
        (g, -1 if after is None else after, limit),
    ).fetchall()
    return [member_entry(r) for r in rows]


@guarded
def members_count(s: Session, group_kind: str, group: str):
    g = group_seq(s, group_kind, group)
    return s.conn.execute("SELECT count(*) FROM members WHERE group_seq = ?", (g,)).fetchone()[0]


def member_entry(r) -> Record:
    return rec(id=r[0], kind=r[1], label=r[2], seq=r[3])


def containing(s: Session, group_kind: str, members: List[str]) -> list:
    """(member id, group entry, whether the group is itself in a group), in
    group `seq` order."""
    out = []
    for chunk in _chunks(members):
        out += s.conn.execute(
            "SELECT dm.id, d.id, d.kind, d.label, d.seq, "
            "EXISTS (SELECT 1 FROM members p WHERE p.member_seq = d.seq) "
            "FROM documents dm JOIN members m ON m.member_seq = dm.seq "
            "JOIN documents d ON d.seq = m.group_seq "
            f"WHERE dm.tenant = ? AND d.kind = ? AND dm.id IN ({_marks(len(chunk))}) "
            "ORDER BY d.seq, dm.seq",
            [s.tenant, group_kind, *chunk],
        ).fetchall()
    out.sort(key=lambda r: r[4])
    return [(r[0], member_entry(r[1:5]), bool(r[5])) for r in out]


@guarded
def groups_of(s: Session, group_kind: str, members: List[str]):
    return [(m, g) for m, g, _ in containing(s, group_kind, members)]


@guarded
def groups_of_nested(s: Session, group_kind: str, members: List[str]):
    return containing(s, group_kind, members)


#: WIT function name to implementation, each called with the session first.
IMPORTS = {
    "get": get,
    "get-many": get_many,
    "insert": insert,
    "replace": replace,
    "delete": delete,
    "scan": scan,
    "scan-keys": scan_keys,
    "count": count,
    "savepoint": savepoint,
    "rollback-to": rollback_to,
    "release": release,
    "members-add": members_add,
    "members-remove": members_remove,
    "members-clear": members_clear,
    "members-contains": members_contains,
    "members-list": members_list,
    "members-count": members_count,
    "groups-of": groups_of,
    "groups-of-nested": groups_of_nested,
}
