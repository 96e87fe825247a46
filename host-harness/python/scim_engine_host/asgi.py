"""SCIM over ASGI: a plain ASGI 3 application (no framework) that a Django
or other Python web app mounts under a path of its own.

Served relative to where the app is mounted (the scope's `root_path`):

- `/scim/v2/...`  SCIM, handed to the engine;
- `/test/v1/...`  the host test API (`tests/hosts/README.md`), only when
  created with `test_api=True`;
- `/healthz`      200 `ok`.

Mounting in Django (`asgi.py` of the project; the dispatcher keeps `path`
whole and extends `root_path`, as ASGI 3 servers and Starlette do)::

    from django.core.asgi import get_asgi_application
    from scim_engine_host.asgi import create_app

    django_app = get_asgi_application()
    scim_app = create_app("/var/lib/lms/scim.db", token=SCIM_TOKEN,
                          component_path="/opt/scim/scim-engine.wasm")

    async def application(scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/provisioning/"):
            scope = dict(scope, root_path=scope.get("root_path", "") + "/provisioning")
            return await scim_app(scope, receive, send)
        return await django_app(scope, receive, send)

The identity provider's SCIM base is then `https://lms.example/provisioning/scim/v2`.

Engine calls run one at a time on a single worker thread (wasmtime-py is not
thread-safe), so the event loop never blocks on them.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import secrets
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Optional
from urllib.parse import quote, unquote

from . import testapi
from .db import Tenant
from .host import Host, Response

log = logging.getLogger("scim_engine_host")

SCIM_BASE = "/scim/v2"

#: Headers the engine never sees: the host has checked the credentials.
CREDENTIALS = {"authorization", "proxy-authorization", "cookie"}


def create_app(
    db_path: str,
    token: Optional[str] = None,
    component_path: Optional[str] = None,
    test_api: bool = False,
    cache_dir: Optional[str] = None,
    public_url: Optional[str] = None,
    max_payload_bytes: int = 1 << 20,
) -> "ScimApp":
    """Opens (creating if needed) the database with the tenant `default`
    whose SCIM bearer token is `token`, loads the engine component
    (`component_path`, else `$SCIM_ENGINE_WASM`) and returns the ASGI app.
    `public_url` fixes the SCIM base URL (else taken from the `Host` header)."""
    host = Host(db_path, token=token, component_path=component_path, cache_dir=cache_dir,
                max_payload_bytes=max_payload_bytes, public_url=public_url)
    return ScimApp(host, test_api=test_api, public_url=public_url)


def escape(raw: bytes) -> str:
    """Bytes of a request target as text, percent-encoding any byte that is
    not printable ASCII (what a client should have sent)."""
    return "".join(chr(b) if 0x20 < b < 0x7F else "%%%02X" % b for b in raw)


def bearer(value: Optional[str]) -> Optional[str]:
    scheme, _, token = (value or "").strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


class ScimApp:
    def __init__(self, host: Host, test_api: bool = False, public_url: Optional[str] = None):
        self.host = host
        self.test_api = test_api
        self.public_url = public_url
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scim-engine")
        #: Set when a request queued background work (see `drain_forever`).
        self.queued: Optional[asyncio.Event] = None

    async def run(self, fn, *args):
        """Runs a blocking host call on the engine's worker thread."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, functools.partial(fn, *args))

    async def drain(self, batch: int = 1000) -> int:
        """Drains the outbox batch by batch on the worker thread, letting
        requests in between batches. Returns the tasks finished."""
        finished, skip = 0, set()
        while (task_id := await self.run(self.host.next_task, skip)) is not None:
            step = "more"
            while step == "more":
                step = await self.run(self.host.drain_batch, task_id, batch)
            finished += step == "done"
            skip.add(task_id)
        return finished

    async def drain_forever(self, every: float = 0.2) -> None:
        """Drains the outbox in the background: every `every` seconds, and
        at once after a request queued work. Errors are logged, never fatal."""
        self.queued = asyncio.Event()
        while True:
            try:
                await self.drain()
            except Exception:  # noqa: BLE001
                log.exception("background drain failed")
            try:
                await asyncio.wait_for(self.queued.wait(), every)
            except asyncio.TimeoutError:
                pass
            self.queued.clear()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        started = {"sent": False}

        async def tracked(message):
            started["sent"] = True
            await send(message)

        try:
            await self.http(scope, receive, tracked)
        except Exception:  # noqa: BLE001 - no exception may kill the server
            log.exception("unexpected error serving %s", scope.get("path"))
            if not started["sent"]:
                body = {"schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
                        "status": "500", "detail": "The request failed inside the server"}
                await send_plain(send, 500, json.dumps(body).encode(), b"application/scim+json")

    async def http(self, scope, receive, send) -> None:
        root = scope.get("root_path", "")
        path = scope["path"]
        rel = path[len(root):] if root and path.startswith(root) else path
        if rel == "/healthz":
            return await send_plain(send, 200, b"ok")
        if rel == SCIM_BASE or rel.startswith(SCIM_BASE + "/"):
            return await self.scim(scope, receive, send, root, rel)
        if self.test_api and rel.startswith("/test/v1/"):
            return await testapi.serve(self, scope, receive, send, rel)
        ctx = self.host.context(None, self.base_url(scope, root), secrets.token_hex(8))
        resp = await self.run(self.host.error, ctx, 404,
                              f"Not found: SCIM is served under {root}{SCIM_BASE}")
        await send_response(send, resp)

    def base_url(self, scope, root: str) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host and scope.get("server"):
            h, p = scope["server"][:2]
            host = f"{h}:{p}" if p else h
        return f"{scope.get('scheme', 'http')}://{host or 'localhost'}{root}{SCIM_BASE}"

    def engine_path(self, scope, root: str, rel: str) -> str:
        """The path below the SCIM base, still percent-encoded as received."""
        raw = escape(scope.get("raw_path") or b"")
        if raw.startswith(quote(root)):
            raw = raw[len(quote(root)):]
        if unquote(raw) != rel:  # no usable raw_path: encode the decoded one
            raw = quote(rel, safe="/:@!$&'()*+,;=-._~")
        return raw[len(SCIM_BASE):] or "/"

    async def authenticate(self, scope, ctx) -> "Tenant | Response":
        headers = dict(scope.get("headers") or [])
        token = bearer(headers.get(b"authorization", b"").decode("latin-1"))
        tenant = await self.run(self.host.authenticate, token) if token else None
        if tenant is not None:
            return tenant
        detail = ("The bearer token is not valid for SCIM" if token else
                  "Authentication required: send 'Authorization: Bearer <token>'")
        resp = await self.run(self.host.error, ctx, 401, detail)
        resp.headers.append(("www-authenticate", 'Bearer realm="scim"'))
        return resp

    async def scim(self, scope, receive, send, root: str, rel: str) -> None:
        started = time.monotonic()
        request_id = secrets.token_hex(8)
        base_url = self.base_url(scope, root)
        ctx = self.host.context(None, base_url, request_id)
        tenant = await self.authenticate(scope, ctx)
        if isinstance(tenant, Response):
            return await send_response(send, tenant, request_id)
        method = scope["method"].upper()
        body = await read_body(scope, receive, self.host.max_payload_bytes)
        if body is None:
            ctx = self.host.context(tenant, base_url, request_id)
            resp = await self.run(self.host.error, ctx, 413, "The request body is larger than the "
                                  f"limit of {self.host.max_payload_bytes} bytes")
        else:
            headers = [
                (k.decode("latin-1").lower(), v.decode("latin-1"))
                for k, v in scope.get("headers") or []
                if k.decode("latin-1").lower() not in CREDENTIALS
            ]
            resp = await self.run(
                self.host.handle, tenant, method, self.engine_path(scope, root, rel),
                escape(scope.get("query_string") or b""), headers, body, base_url, request_id,
            )
        log.info("%s %s %s %.1fms tenant=%s request_id=%s %s", method, scope["path"], resp.status,
                 (time.monotonic() - started) * 1e3, tenant.name, request_id,
                 " ".join(f"{k}={v}" for k, v in resp.log))
        if resp.queued and self.queued is not None:
            self.queued.set()
        await send_response(send, resp, request_id)


async def read_body(scope, receive, limit: int) -> Optional[bytes]:
    """The request body, or None when it is larger than `limit`."""
    headers = dict(scope.get("headers") or [])
    declared = headers.get(b"content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks, size, more = [], 0, True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


async def send_response(send, resp: Response, request_id: Optional[str] = None) -> None:
    headers = [(k.encode("latin-1"), v.encode()) for k, v in resp.headers]
    if request_id:
        headers.append((b"x-request-id", request_id.encode()))
    # A declared length lets the server send the body as is: chunked
    # encoding ends with a segment of its own, which a keep-alive client's
    # delayed ACK holds up by some 40 ms.
    if not any(k.lower() == b"content-length" for k, _ in headers):
        headers.append((b"content-length", str(len(resp.body)).encode()))
    await send({"type": "http.response.start", "status": resp.status, "headers": headers})
    await send({"type": "http.response.body", "body": resp.body})


async def send_plain(send, status: int, body: bytes, content_type: bytes = b"text/plain") -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", content_type),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, value) -> None:
    await send_plain(send, status, json.dumps(value).encode(), b"application/json")
