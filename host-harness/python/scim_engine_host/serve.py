"""The reference launcher: serves the ASGI app with uvicorn on a socket it
binds itself (so `--listen 127.0.0.1:0` can report the port it got),
prints `listening on http://HOST:PORT/scim/v2` once connections are
accepted, and drains the outbox in the background (every 200 ms, and at
once after a request queued work).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import socket
import sys

from .asgi import create_app

#: Seconds between background drains.
DRAIN_EVERY = 0.2


def parse_listen(addr: str):
    host, _, port = addr.rpartition(":")
    return host.strip("[]") or "127.0.0.1", int(port)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="scim_engine_host serve", description=__doc__)
    p.add_argument("--listen", default="127.0.0.1:8080", help="ADDR:PORT (port 0: a free one)")
    p.add_argument("--db", required=True, help="SQLite database file (created if missing)")
    p.add_argument("--token", help="SCIM bearer token of the tenant 'default'")
    p.add_argument("--test-api", action="store_true", help="serve /test/v1 too")
    p.add_argument("--component", help="engine component (default: $SCIM_ENGINE_WASM)")
    p.add_argument("--cache-dir", help="where compiled engine code is cached")
    p.add_argument("--log-level", default="info")
    args = p.parse_args(argv)
    logging.basicConfig(stream=sys.stderr, level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    import uvicorn

    host, port = parse_listen(args.listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: no response waits on Nagle.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    bound = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    url = f"http://{shown}:{bound}/scim/v2"
    app = create_app(args.db, token=args.token, component_path=args.component,
                     test_api=args.test_api, cache_dir=args.cache_dir)
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", access_log=False,
                                           log_level="warning"))

    async def run() -> None:
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        while not server.started:
            if serving.done():
                return await serving
            await asyncio.sleep(0.01)
        print(f"listening on {url}", flush=True)
        drainer = asyncio.create_task(app.drain_forever(DRAIN_EVERY))
        await serving
        drainer.cancel()

    asyncio.run(run())
    return 0
