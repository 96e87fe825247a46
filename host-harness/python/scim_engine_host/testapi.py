"""The host test API (`tests/hosts/README.md`): the LMS state as the shared
host test suite reads it. Served under `/test/v1` only when the app was
created with `test_api=True`, with the same bearer token as SCIM.
"""

from __future__ import annotations

import asyncio
import time
from urllib.parse import unquote

from . import synclog
from .db import Tenant
from .host import Host

#: How long `POST /test/v1/drain` waits for the outbox to empty.
DRAIN_WAIT = 30.0

PROFILE = {"display_name": "displayName", "given_name": "givenName", "family_name": "familyName",
           "email": "email", "locale": "locale", "title": "title", "department": "department",
           "manager": "manager"}
LISTS = {"role": "roles", "team": "teams", "learningPath": "learningPaths"}


def learner(host: Host, tenant: Tenant, scim_id: str):
    """The learner as JSON, or None."""
    with host.lock:
        conn = host.conn
        row = conn.execute(
            f"SELECT user_name, status, {', '.join(PROFILE)} FROM learners "
            "WHERE tenant = ? AND scim_id = ?",
            (tenant.id, scim_id),
        ).fetchone()
        if row is None:
            return None
        grants = conn.execute(
            "SELECT kind, name, source FROM assignments WHERE tenant = ? AND scim_id = ? "
            "AND withdrawn = 0 ORDER BY name, source",
            (tenant.id, scim_id),
        ).fetchall()
    out = {"id": scim_id, "userName": row[0], "status": row[1],
           "profile": dict(zip(PROFILE.values(), row[2:]))}
    for key in LISTS.values():
        out[key] = []
    for kind, name, source in grants:
        items = out[LISTS[kind]]
        if not items or items[-1]["name"] != name:
            items.append({"name": name, "sources": []})
        items[-1]["sources"].append(source)
    return out


def events(host: Host, tenant: Tenant) -> dict:
    with host.lock:
        return {"events": synclog.listing(host.conn, tenant.id)}


async def serve(app, scope, receive, send, rel: str) -> None:
    from .asgi import send_json, send_response

    ctx = app.host.context(None, app.base_url(scope, scope.get("root_path", "")), "test-api")
    tenant = await app.authenticate(scope, ctx)
    if not isinstance(tenant, Tenant):
        return await send_response(send, tenant)
    method = scope["method"].upper()
    prefix = "/test/v1/learners/"
    if method == "GET" and rel.startswith(prefix):
        found = await app.run(learner, app.host, tenant, unquote(rel[len(prefix):]))
        if found is None:
            return await send_json(send, 404, {"detail": "no learner with that id"})
        return await send_json(send, 200, found)
    if method == "GET" and rel == "/test/v1/events":
        return await send_json(send, 200, await app.run(events, app.host, tenant))
    if method == "POST" and rel == "/test/v1/drain":
        deadline = time.monotonic() + DRAIN_WAIT
        while True:
            await app.drain()
            left = await app.run(app.host.pending, tenant.id)
            if left == 0:
                return await send_json(send, 200, {"pending": 0})
            if time.monotonic() >= deadline:
                return await send_json(send, 503, {"pending": left})
            await asyncio.sleep(0.1)
    await send_json(send, 404, {"detail": "no such test endpoint"})
