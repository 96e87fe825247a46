"""The engine component under wasmtime-py: compiled once (and the compiled
code cached on disk, keyed by the component's SHA-256), linked to this
host's imports, and called through its `handler` export.

wasmtime-py objects are not thread-safe, so one `Engine` holds one instance
and every call must be serialised by the caller (`Host` holds a lock). The
imports are bound once at link time and act on `Engine.session`, the
current call's `db.Session`, set for the duration of each call.

WASI: `Linker.add_wasip2()` provides what the engine needs besides
`lms:scim/*` (clocks and randomness); it grants no files, network,
environment or stdio. Should an engine import something of WASI that
`add_wasip2()` lacks (`wasi:random/insecure-seed` in some wasmtime-py
versions), it is defined here.

A trap (or a Python exception raised inside an import) may leave the
instance inconsistent, so the next call gets a fresh one (instantiating is
well under a millisecond; compiling is not, which is why it happens once).
A call past its deadline traps too: a ticker thread advances the engine's
epoch every `TICK` seconds.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from pathlib import Path
from typing import Any, Callable, Optional

import wasmtime
from wasmtime.component import Component, Linker

from . import lms, outbox, store, synclog
from .db import Session

log = logging.getLogger("scim_engine_host")

#: Seconds between epoch ticks (the granularity of call deadlines).
TICK = 0.1

#: Largest linear memory of the instance, as scim-host's default.
MEMORY_BYTES = 256 << 20

#: Calls one instance serves before it is replaced, which bounds what
#: fragmentation of its heap can cost (the engine keeps no state between
#: calls: its state is the host's database).
CALLS_PER_INSTANCE = 1000

#: The host's implementation of each imported `lms:scim` interface.
IMPORTS = {
    "store": store.IMPORTS,
    "lms": lms.IMPORTS,
    "outbox": outbox.IMPORTS,
    "sync-log": synclog.IMPORTS,
    "plugin": lms.PLUGIN_IMPORTS,
}


def load_component(engine: wasmtime.Engine, path: str, cache_dir: Optional[str]) -> Component:
    """Compiles the component, or loads the code compiled for it before."""
    wasm = Path(path).read_bytes()
    if not cache_dir:
        return Component(engine, wasm)
    key = hashlib.sha256(wasm).hexdigest()
    cached = Path(cache_dir) / f"engine-{key[:32]}-wasmtime-{wasmtime_version()}.cwasm"
    if cached.exists():
        try:
            return Component.deserialize_file(engine, str(cached))
        except wasmtime.WasmtimeError as e:  # another wasmtime or configuration
            log.warning("ignoring cached engine code %s: %s", cached, e)
    component = Component(engine, wasm)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(component.serialize())
        os.replace(tmp, cached)
    except OSError as e:
        log.warning("could not cache compiled engine code in %s: %s", cache_dir, e)
    return component


def wasmtime_version() -> str:
    try:
        from importlib.metadata import version

        return version("wasmtime")
    except Exception:  # noqa: BLE001
        return "unknown"


class Engine:
    """The compiled, linked engine and its one instance."""

    def __init__(self, wasm_path: str, cache_dir: Optional[str] = None):
        config = wasmtime.Config()
        config.epoch_interruption = True
        self.engine = wasmtime.Engine(config)
        started = time.monotonic()
        self.component = load_component(self.engine, wasm_path, cache_dir)
        log.info("engine loaded in %.2f s", time.monotonic() - started)
        self.session: Optional[Session] = None
        self._instance: Optional[tuple] = None
        self._calls = 0
        names = self.component.type.exports(self.engine)
        self.handler = next((n for n in names if n.startswith("lms:scim/handler@")), None)
        if self.handler is None:
            raise RuntimeError(f"{wasm_path} exports no lms:scim/handler interface")
        self.linker = self._link()
        threading.Thread(target=self._tick, name="scim-engine-epoch", daemon=True).start()

    def _tick(self) -> None:
        while True:
            time.sleep(TICK)
            self.engine.increment_epoch()

    def _bind(self, fn: Callable) -> Callable:
        def call(_store, *args):
            if self.session is None:
                raise RuntimeError(f"{fn.__name__} called outside a transaction")
            return fn(self.session, *args)

        return call

    def _link(self) -> Linker:
        linker = Linker(self.engine)
        linker.add_wasip2()
        with linker.root() as root:
            for name in self.component.type.imports(self.engine):
                iface = name.split("@")[0]
                table = IMPORTS.get(iface[len("lms:scim/"):]) if iface.startswith("lms:scim/") else None
                if table:
                    with root.add_instance(name) as inst:
                        for func, impl in table.items():
                            inst.add_func(func, self._bind(impl))
        # A trial instance tells whether anything is missing. wasmtime-py 50's
        # add_wasip2() defines `wasi:random/insecure-seed`, which engines
        # built against a full WASI import; should a wasmtime-py lack it,
        # it is defined here from os.urandom (and only then: a second
        # definition would silently shadow WASI's).
        try:
            self._instance = self._instantiate(linker)
        except wasmtime.WasmtimeError as e:
            seed = next((n for n in self.component.type.imports(self.engine)
                         if n.startswith("wasi:random/insecure-seed@")), None)
            if seed is None or "insecure-seed" not in str(e):
                raise
            with linker.root() as root, root.add_instance(seed) as inst:
                inst.add_func("insecure-seed", lambda _s: (
                    int.from_bytes(os.urandom(8), "little"),
                    int.from_bytes(os.urandom(8), "little")))
            self._instance = self._instantiate(linker)
        return linker

    def _instantiate(self, linker: Linker) -> tuple:
        s = wasmtime.Store(self.engine)
        s.set_limits(memory_size=MEMORY_BYTES)
        s.set_wasi(wasmtime.WasiConfig())
        s.set_epoch_deadline(int(60 / TICK))
        instance = linker.instantiate(s, self.component)
        handler = instance.get_export_index(s, self.handler)
        funcs = {
            name: instance.get_func(s, instance.get_export_index(s, name, handler))
            for name in ("handle", "error-response", "drain")
        }
        return s, funcs

    def call(self, name: str, session: Optional[Session], *args: Any, timeout: float = 30.0) -> Any:
        """Calls a `handler` function with `session` as the imports' state.
        Raises on a trap (and the next call gets a fresh instance)."""
        self._calls += 1
        if self._instance is None or self._calls > CALLS_PER_INSTANCE:
            self._instance, self._calls = self._instantiate(self.linker), 1
        s, funcs = self._instance
        s.set_epoch_deadline(max(1, int(timeout / TICK)))
        self.session = session
        try:
            return funcs[name](s, *args)
        except BaseException:
            self._instance = None
            raise
        finally:
            self.session = None
