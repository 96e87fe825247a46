// Loads the engine component as jco transpiled it (generated/engine/, see
// bin/build.js) and instantiates it with this host's imports.
//
// jco's `--instantiation sync` output asks the host for each import
// interface by name (`imports['lms:scim/store']`; the version suffix is
// dropped in the generated code, though its types list versioned names)
// and for the core modules by file name. A Proxy answers both the
// `lms:scim/*` interfaces this host implements and any `wasi:*` interface
// from @bytecodealliance/preview2-shim, so a component importing only
// wall-clock and random works as well as one importing all of wasi:cli.
//
// After a trap the instance must not be entered again (jco marks it
// trapped, and its memory may be half-updated): `call` drops it, and the
// next call instantiates a fresh one from the compiled modules (some
// 80 ms: the modules are compiled once).
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import * as shim from '@bytecodealliance/preview2-shim';

/**
 * Calls one instance serves before it is replaced, which bounds what the
 * fragmentation of its heap can cost (the engine keeps no state between
 * calls: its state is the host's database), as the other hosts do.
 */
const CALLS_PER_INSTANCE = 1000;

const camel = (s) => s.replace(/-([a-z])/g, (_, c) => c.toUpperCase());

/** The import object: `host` maps `lms:scim` interface names to implementations. */
function importObject(host) {
  const resolve = (key) => {
    const m = /^([a-z0-9-]+):([a-z0-9-]+)\/([a-z0-9-]+)(@.*)?$/.exec(key);
    if (!m) return undefined;
    const [, ns, pkg, iface] = m;
    if (ns === 'lms' && pkg === 'scim') return host[iface];
    if (ns === 'wasi') return shim[camel(pkg)]?.[camel(iface)];
    return undefined;
  };
  return new Proxy({}, {
    get(_, key) {
      if (typeof key !== 'string') return undefined;
      const iface = resolve(key);
      if (!iface) throw new Error(`the engine imports ${key}, which this host does not provide`);
      return iface;
    },
    has: (_, key) => typeof key === 'string' && resolve(key) !== undefined,
  });
}

/** Whether an exception from an export is a WIT `err` (jco's ComponentError) rather than a trap. */
export const isComponentError = (e) => e !== null && typeof e === 'object' && Object.hasOwn(e, 'payload');

/**
 * The engine in `dir` (jco's output), with `host` as its `lms:scim`
 * imports (`store`, `lms`, `outbox`, `sync-log`, `plugin`, `types`).
 */
export async function loadEngine(dir, host) {
  const { instantiate } = await import(pathToFileURL(join(dir, 'engine.js')).href);
  const modules = new Map();
  const getCoreModule = (name) => {
    if (!modules.has(name)) modules.set(name, new WebAssembly.Module(readFileSync(join(dir, name))));
    return modules.get(name);
  };
  const imports = importObject(host);
  let instance = instantiate(getCoreModule, imports);
  let calls = 0;
  return {
    /**
     * Runs `fn(exports)`. A thrown WIT `err` passes through; anything else
     * is a trap (or a host bug thrown through the wasm frames): the
     * instance is dropped and the error rethrown.
     */
    call(fn) {
      calls += 1;
      if (instance === undefined || calls > CALLS_PER_INSTANCE) {
        instance = instantiate(getCoreModule, imports);
        calls = 1;
      }
      try {
        return fn(instance);
      } catch (e) {
        if (!isComponentError(e)) instance = undefined;
        throw e;
      }
    },
  };
}
