"""The host proper, independent of any web server: authentication, one
transaction around each engine call, the sync log, and the outbox drain.

Everything that touches the engine or the database runs under `Host.lock`
(wasmtime-py objects are not thread-safe, and the one SQLite connection
carries one transaction at a time). The ASGI app calls in from a single
worker thread; `drain` may be called from any thread (a scheduler in the
same process) or from another process on the same database file, which
SQLite's locking then serialises.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from typing import List, Optional, Tuple

from . import db, outbox, synclog
from .db import Session, Tenant
from .engine import Engine
from .store import rec
from .synclog import Journal

log = logging.getLogger("scim_engine_host")

#: Largest request body accepted by default (advertised by the engine as
#: `bulk.maxPayloadSize`).
MAX_PAYLOAD_BYTES = 1 << 20

Headers = List[Tuple[str, str]]


@dataclass
class Response:
    status: int
    headers: Headers
    body: bytes
    #: The engine's key/value pairs for the request log; never sent.
    log: Headers = field(default_factory=list)
    #: Background tasks the request queued (committed).
    queued: int = 0


def default_cache_dir() -> str:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "scim-engine-host")


def find_component() -> str:
    path = os.environ.get("SCIM_ENGINE_WASM")
    if not path:
        raise RuntimeError(
            "no engine component: pass component_path or set SCIM_ENGINE_WASM "
            "(`cargo run -q -p scim-engine-build` prints where the build put it)"
        )
    return path


class Host:
    """The engine, the database and the lock that serialises them."""

    def __init__(
        self,
        db_path: str,
        token: Optional[str] = None,
        component_path: Optional[str] = None,
        cache_dir: Optional[str] = None,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
        public_url: Optional[str] = None,
        request_timeout: float = 30.0,
    ):
        self.conn = db.connect(db_path)
        db.ensure_tenant(self.conn, db.DEFAULT_TENANT, token)
        # Compiled code is cached (`cache_dir=""` turns that off).
        self.engine = Engine(component_path or find_component(),
                             default_cache_dir() if cache_dir is None else cache_dir)
        self.lock = threading.RLock()
        self.max_payload_bytes = max_payload_bytes
        #: Absolute SCIM base URL for background work (requests use their own).
        self.public_url = public_url
        self.request_timeout = request_timeout

    # --- requests -------------------------------------------------------

    def context(self, tenant: Optional[Tenant], base_url: str, request_id: str):
        return rec(
            tenant=tenant.name if tenant else "",
            base_url=base_url,
            request_id=request_id,
            subject=tenant.name if tenant else None,
            max_payload_bytes=self.max_payload_bytes,
            signing_key=tenant.signing_key if tenant else b"",
        )

    def authenticate(self, token: str) -> Optional[Tenant]:
        with self.lock:
            return db.authenticate(self.conn, token)

    def error(self, ctx, status: int, detail: str) -> Response:
        """A SCIM Error rendered by the engine (outside any transaction),
        with a plain JSON fallback should even that fail."""
        with self.lock:
            try:
                r = self.engine.call("error-response", None, ctx, status, detail)
                return Response(r.status, list(r.headers), bytes(r.body), list(r.log))
            except Exception:  # noqa: BLE001 - this is the last resort
                log.exception("the engine could not render an error")
        body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                "status": str(status), "detail": detail}
        return Response(status, [("content-type", "application/scim+json")],
                        json.dumps(body).encode(), [("detail", detail)])

    def handle(self, tenant: Tenant, method: str, path: str, query: str, headers: Headers,
               body: bytes, base_url: str, request_id: str) -> Response:
        """Runs one SCIM request in one transaction: commit when the engine
        answers below 400, roll back otherwise and on any failure."""
        ctx = self.context(tenant, base_url, request_id)
        with self.lock:
            try:
                return self._handle(tenant, method, path, query, headers, body, ctx, request_id)
            except Exception:  # noqa: BLE001 - a bug here must not leave the transaction open
                rollback(self.conn)
                log.exception("request %s failed in the host; rolled back", request_id)
                return self.error(ctx, 500, "The request failed inside the server; nothing was "
                                  f"changed (request id {request_id})")

    def _handle(self, tenant, method, path, query, headers, body, ctx, request_id) -> Response:
        started = time.monotonic()
        read_only = method in ("GET", "HEAD")
        conn = self.conn
        try:
            # A read runs in a snapshot; a write takes the write lock at once.
            conn.execute("BEGIN DEFERRED" if read_only else "BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            log.error("could not begin a transaction: %s", e)
            return self.error(ctx, 503, "The database is busy; retry later")
        session = Session(conn, tenant.id, request_id, Journal())
        request = rec(method=method, path=path, query=query, headers=headers, body=body,
                      context=ctx)

        def failed(resp: Response) -> Response:
            if not read_only or resp.status >= 500:
                synclog.record_failure(conn, tenant.id, method, resp.log, resp.status,
                                       request_id, _us(started))
            return resp

        try:
            r = self.engine.call("handle", session, request, timeout=self.request_timeout)
            resp = Response(r.status, list(r.headers), bytes(r.body), list(r.log))
        except Exception as e:  # noqa: BLE001 - a trap, or an import raised
            rollback(conn)
            timed_out = "interrupt" in str(e)
            log.error("request %s: the engine %s; rolled back: %s", request_id,
                      "timed out" if timed_out else "trapped", e)
            detail = (
                f"The request took longer than {self.request_timeout:g} s and was cancelled"
                if timed_out else "The request failed inside the engine"
            )
            resp = self.error(ctx, 500, f"{detail}; nothing was changed (request id {request_id})")
            resp.log.append(("trap", "timeout" if timed_out else "trap"))
            return failed(resp)
        if resp.status < 400 and session.failed is None:
            try:
                synclog.insert(conn, tenant.id, request_id, request_id, _us(started),
                               session.journal.events)
                conn.execute("COMMIT")
            except sqlite3.Error as e:
                rollback(conn)
                log.error("commit failed: %s", e)
                return self.error(ctx, 503, "The change could not be saved; nothing was "
                                  "changed, retry later")
            resp.queued = session.tasks_queued
            return resp
        rollback(conn)
        if session.failed is not None:
            log.error("a host import failed; rolled back: %s", session.failed)
            resp = self.error(ctx, 503, f"{session.failed}; nothing was changed, retry later")
        return failed(resp)

    # --- the outbox -----------------------------------------------------

    def drain_batch(self, task_id: int, batch: int) -> str:
        """Runs one batch of a task in its own transaction together with the
        task's new cursor: `more`, `done`, `failed`, or `gone` (another
        drainer finished it)."""
        with self.lock:
            try:
                return self._drain_batch(task_id, batch)
            except Exception as e:  # noqa: BLE001 - a bug here must not leave the transaction open
                rollback(self.conn)
                log.exception("background task %s failed in the host", task_id)
                try:
                    outbox.fail(self.conn, task_id, f"the host failed: {e}")
                except sqlite3.Error:
                    pass
                return "failed"

    def _drain_batch(self, task_id: int, batch: int) -> str:
        started = time.monotonic()
        conn = self.conn
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as e:
            log.warning("background: database busy: %s", e)
            return "failed"
        loaded = outbox.load(conn, task_id)
        if loaded is None:
            rollback(conn)
            return "gone"
        tenant_id, change_id, task = loaded
        tenant = db.tenant_by_id(conn, tenant_id)
        batch_id = secrets.token_hex(8)
        session = Session(conn, tenant_id, change_id, Journal())
        ctx = self.context(tenant, self.public_url or "", batch_id)
        try:
            result = self.engine.call("drain", session, ctx, task, batch, timeout=600)
            error = result.payload if result.tag == "err" else session.failed
        except Exception as e:  # noqa: BLE001
            error = f"the engine trapped: {e}"
        if error is None:
            # `drain-step` reaches Python untagged: None is `done`, a
            # string is `more(cursor)`.
            cursor = result.payload
            try:
                synclog.insert(conn, tenant_id, batch_id, change_id, _us(started),
                               session.journal.events)
                if cursor is None:
                    outbox.finish(conn, task_id)
                else:
                    outbox.advance(conn, task_id, cursor)
                conn.execute("COMMIT")
                return "done" if cursor is None else "more"
            except sqlite3.Error as e:
                error = str(e)
        rollback(conn)
        log.warning("background task %s failed; will retry: %s", task_id, error)
        try:
            outbox.fail(conn, task_id, error)
        except sqlite3.Error as e:
            log.error("background: cannot record the failure: %s", e)
        return "failed"

    def next_task(self, skip=()) -> Optional[int]:
        with self.lock:
            row = outbox.next_task(self.conn, skip)
        return row[0] if row else None

    def pending(self, tenant: Optional[int] = None) -> int:
        with self.lock:
            return outbox.pending(self.conn, tenant)

    def drain(self, batch: int = 1000, max_tasks: Optional[int] = None) -> int:
        """Drains the outbox: each queued task in order, batch by batch,
        each batch in its own transaction; a failing task is recorded
        (attempts, last error) and left for a later call. Returns the
        number of tasks finished. The lock is released between batches so
        requests interleave."""
        finished, visited, skip = 0, 0, set()
        while max_tasks is None or visited < max_tasks:
            task_id = self.next_task(skip)
            if task_id is None:
                break
            visited += 1
            step = "more"
            while step == "more":
                step = self.drain_batch(task_id, batch)
            finished += step == "done"
            skip.add(task_id)
        return finished


def rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        try:
            conn.execute("ROLLBACK")
        except sqlite3.Error as e:
            log.error("rollback failed: %s", e)


def _us(started: float) -> int:
    return int((time.monotonic() - started) * 1e6)
