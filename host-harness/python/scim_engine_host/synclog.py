"""The tenant's sync log: the WIT `sync-log` interface, and the journal of
events a request or background batch produced, written just before it
commits (events of a request that rolls back are dropped; the host records
the failure itself, see `record_failure`).
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Tuple

from .db import Session, now

#: The resource type of learner events.
LEARNER = "Learner"

#: How telling a learner event's action is, when two merge.
_RANK = {"create": 3, "suspend": 2, "reactivate": 2, "remove": 2}


@dataclass
class Event:
    action: str
    resource_type: str
    resource_id: str
    resource_name: Optional[str]
    status: str
    reason: Optional[str] = None
    detail: Optional[str] = None
    #: (attribute, old, new), the values as JSON text.
    changes: List[Tuple[str, Optional[str], Optional[str]]] = field(default_factory=list)


class Journal:
    """Events recorded during one request or batch, until commit. Everything
    one request or batch does to a learner is one event."""

    def __init__(self) -> None:
        self.events: List[Event] = []
        self._learner: Dict[str, int] = {}

    def learner_event(self, e: Event) -> None:
        i = self._learner.get(e.resource_id)
        if i is None:
            self._learner[e.resource_id] = len(self.events)
            self.events.append(e)
            return
        old = self.events[i]
        if _RANK.get(e.action, 1) > _RANK.get(old.action, 1):
            old.action = e.action
        if old.resource_name is None:
            old.resource_name = e.resource_name
        old.changes.extend(e.changes)


def append(s: Session, events) -> None:
    """`sync-log.append`: kept with the session, written at commit."""
    for e in events:
        s.journal.events.append(
            Event(
                action=e.action,
                resource_type=getattr(e, "resource-type"),
                resource_id=getattr(e, "resource-id"),
                resource_name=getattr(e, "resource-name"),
                status=e.status,
                reason=e.reason,
                detail=e.detail,
                changes=[(c.name, c.old, c.new) for c in e.changes],
            )
        )


IMPORTS = {"append": append}


def insert(
    conn: sqlite3.Connection,
    tenant: int,
    request_id: str,
    change_id: str,
    duration_us: int,
    events: List[Event],
) -> None:
    """Stores events (inside the caller's transaction)."""
    at = now()
    conn.executemany(
        "INSERT INTO events (tenant, at, request_id, change_id, action, resource_type, resource_id, "
        "resource_name, status, reason, detail, changes, duration_us) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [
            (
                tenant, at, request_id, change_id, e.action, e.resource_type, e.resource_id,
                e.resource_name, e.status, e.reason, e.detail,
                json.dumps([{"name": n, "old": o, "new": v} for n, o, v in e.changes],
                           ensure_ascii=False, separators=(",", ":")),
                duration_us,
            )
            for e in events
        ],
    )


_ACTIONS = {"POST": "create", "PUT": "replace", "PATCH": "update", "DELETE": "delete"}


def record_failure(conn, tenant: int, method: str, log: List[Tuple[str, str]], status: int,
                   request_id: str, duration_us: int) -> None:
    """Records a failed request after its rollback, in a transaction of its
    own, from the engine's log line (`resource`, `error`, `detail`)."""
    values = dict(log)
    e = Event(
        action=_ACTIONS.get(method, "read"),
        resource_type=values.get("resource", "-"),
        resource_id=values.get("resource_id", ""),
        resource_name=None,
        status="failure",
        reason=values.get("error") or values.get("trap") or f"http-{status}",
        detail=values.get("detail"),
    )
    try:
        insert(conn, tenant, request_id, request_id, duration_us, [e])
    except sqlite3.Error:
        pass  # the sync log is best effort for failures


def listing(conn, tenant: int) -> list:
    """The tenant's events, oldest first, as the test API shows them."""
    rows = conn.execute(
        "SELECT action, resource_type, resource_id, resource_name, status, reason, request_id, "
        "change_id FROM events WHERE tenant = ? ORDER BY id",
        (tenant,),
    )
    keys = ("action", "resourceType", "resourceId", "resourceName", "status", "reason",
            "requestId", "changeId")
    return [dict(zip(keys, r)) for r in rows]
