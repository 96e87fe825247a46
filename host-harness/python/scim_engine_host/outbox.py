"""The outbox: background re-mapping the engine queues inside a request's
transaction (WIT `outbox.enqueue`), drained task by task through
`handler.drain`. Each batch runs in its own transaction together with the
task's new cursor, so a crash between batches loses nothing and applies
nothing twice (ported from `host-harness/src/outbox.rs` and `worker.rs`).

Tasks are stored as JSON in the same form as the Rust host's.
"""

from __future__ import annotations

import json
from typing import Optional

from wasmtime.component import Record, Variant

from .db import Session, now
from .store import rec

#: Attempts after which a failing task is no longer retried; it stays in the
#: outbox (with its last error) until an operator removes it.
MAX_ATTEMPTS = 10


def work_json(work: Variant) -> str:
    tag, payload = work.tag, work.payload
    return json.dumps({tag: True if tag == "everyone" else payload}, ensure_ascii=False)


def work_of(text: str) -> Variant:
    v = json.loads(text)
    for tag in ("source", "members", "renamed", "users"):
        if tag in v:
            return Variant(tag, v[tag])
    if "everyone" in v:
        return Variant("everyone")
    return Variant("users", [])


def enqueue(s: Session, task: Record) -> None:
    """`outbox.enqueue`: queued in the request's transaction. The WIT
    function cannot fail, so a failure marks the session failed: the
    request must not commit without its task."""
    try:
        s.conn.execute(
            "INSERT INTO outbox (tenant, change_id, task, cursor, created) VALUES (?, ?, ?, ?, ?)",
            (s.tenant, s.change_id, work_json(task.work), task.cursor, now()),
        )
        s.tasks_queued += 1
    except Exception as e:  # noqa: BLE001 - reported through the session
        s.failed = f"could not queue background work: {e}"


IMPORTS = {"enqueue": enqueue}


def next_task(conn, skip=()) -> Optional[tuple]:
    """(id, tenant) of the task to try next: the oldest of those that failed
    least, leaving out stalled tasks and those in `skip`."""
    for row in conn.execute(
        "SELECT id, tenant FROM outbox WHERE attempts < ? ORDER BY attempts, id", (MAX_ATTEMPTS,)
    ):
        if row[0] not in skip:
            return row
    return None


def load(conn, task_id: int) -> Optional[tuple]:
    """(tenant, change_id, task record) as stored now (read inside the
    batch's transaction, so two drainers never run the same batch)."""
    row = conn.execute(
        "SELECT tenant, change_id, task, cursor FROM outbox WHERE id = ?", (task_id,)
    ).fetchone()
    if row is None:
        return None
    return row[0], row[1], rec(work=work_of(row[2]), cursor=row[3])


def advance(conn, task_id: int, cursor: str) -> None:
    conn.execute("UPDATE outbox SET cursor = ?, attempts = 0, last_error = NULL WHERE id = ?",
                 (cursor, task_id))


def finish(conn, task_id: int) -> None:
    conn.execute("DELETE FROM outbox WHERE id = ?", (task_id,))


def fail(conn, task_id: int, error: str) -> None:
    conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ? WHERE id = ?",
                 (error, task_id))


def pending(conn, tenant: Optional[int] = None) -> int:
    return conn.execute(
        "SELECT count(*) FROM outbox WHERE ? IS NULL OR tenant = ?", (tenant, tenant)
    ).fetchone()[0]
