"""A Python host for the SCIM engine component: loads it with wasmtime-py,
implements its imports (`store`, `lms`, `outbox`, `sync-log`, `plugin`) on
SQLite, and serves SCIM as an ASGI app (`asgi.create_app`).

Background work the engine queues is drained with `drain`, which a vendor
schedules (a management command, a Celery beat task) unless it runs the
`serve` launcher, which drains by itself.
"""

from typing import Optional, Union

from .asgi import ScimApp, create_app
from .host import Host

__all__ = ["create_app", "drain", "Host", "ScimApp"]


def drain(app_or_host: Union[ScimApp, Host], batch: int = 1000,
          max_tasks: Optional[int] = None) -> int:
    """Drains the outbox: each queued task in order, one transaction per
    batch of at most `batch` users together with the task's new cursor. A
    failing batch is rolled back and its task retried on a later call
    (after 10 failed attempts it stays, with its last error, for an
    operator). Returns the number of tasks finished. Safe to call from any
    thread while the app serves requests."""
    host = app_or_host.host if isinstance(app_or_host, ScimApp) else app_or_host
    return host.drain(batch=batch, max_tasks=max_tasks)
