// How this host answers jco's lowering of WIT `result`s from imports.
//
// jco's generated glue (read in generated/engine/engine.js, `getErrorPayload`
// and the `hostRet` checks of each import trampoline) lowers an import's
// return value as `ok(value)`, unless the value is itself an object
// `{tag: 'ok' | 'err', val}`, which it takes as the result. A thrown value
// with an own `payload` property is lowered as `err(payload)`; any other
// thrown Error propagates through the wasm frames (a trap, for us: the
// instance is discarded). So an import fails with `err(e)` by throwing
// `new Failure(e)`, and `guard` turns SQLite errors into the interface's
// `unavailable(message)`.
import Database from 'better-sqlite3';

/** A WIT `err(payload)` thrown by an import. */
export class Failure extends Error {
  constructor(payload) {
    super(typeof payload?.val === 'string' ? payload.val : payload?.tag ?? 'failure');
    Object.defineProperty(this, 'payload', { value: payload });
  }
}

/** `err(tag)` or `err(tag(val))` of a WIT variant error type. */
export const fail = (tag, val) => new Failure(val === undefined ? { tag } : { tag, val });

/**
 * Wraps every function of an interface so a SQLite error becomes
 * `err(unavailable(message))`; a `Failure` passes through as it is.
 */
export function guard(fns) {
  const out = {};
  for (const [name, fn] of Object.entries(fns)) {
    out[name] = (...args) => {
      try {
        return fn(...args);
      } catch (e) {
        if (e instanceof Database.SqliteError) throw fail('unavailable', e.message);
        throw e;
      }
    };
  }
  return out;
}
