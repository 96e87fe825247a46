#!/usr/bin/env node
// The reference launcher: `serve --listen ADDR --db FILE --token TOKEN
// [--test-api] [--component DIR]`. Opens (or creates) the database with one
// tenant whose SCIM token is TOKEN, serves SCIM under /scim/v2 on ADDR
// (`127.0.0.1:0` picks a free port), drains the outbox in the background
// every 200 ms, and prints `listening on http://HOST:PORT/scim/v2` on
// stdout once it accepts connections. Logs go to stderr.
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { createHost, createScimHandler, drain } from '../src/index.js';

const here = dirname(dirname(fileURLToPath(import.meta.url)));
const { values: args } = parseArgs({
  options: {
    listen: { type: 'string', default: '127.0.0.1:0' },
    db: { type: 'string' },
    token: { type: 'string' },
    'test-api': { type: 'boolean', default: false },
    component: { type: 'string', default: join(here, 'generated/engine') },
  },
});
if (!args.db || !args.token) {
  console.error('usage: serve --listen ADDR --db FILE --token TOKEN [--test-api]');
  process.exit(2);
}
const at = args.listen.lastIndexOf(':');
const [address, port] = [args.listen.slice(0, at).replace(/^\[|\]$/g, ''), Number(args.listen.slice(at + 1))];

// Drains right after a request queued background work (as scim-host's
// worker is woken), and every 200 ms for retries and leftovers.
let soon;
const drainNow = () => {
  soon = undefined;
  try {
    drain(host, { batch: 1000, maxBatches: 20 });
  } catch (e) {
    console.error(`background drain failed: ${e?.stack ?? e}`);
  }
};
const host = await createHost({
  db: args.db, token: args.token, component: args.component,
  onQueued: () => { soon ??= setImmediate(drainNow); },
});
const server = createServer(createScimHandler(host, { testApi: args['test-api'] }));
server.listen(port, address, () => {
  const { port: bound } = server.address();
  const shown = address.includes(':') ? `[${address}]` : address;
  process.stdout.write(`listening on http://${shown}:${bound}/scim/v2\n`);
});

const drainer = setInterval(drainNow, 200);

const stop = () => {
  clearInterval(drainer);
  server.close(() => {
    host.close();
    process.exit(0);
  });
  setTimeout(() => process.exit(0), 2000).unref();
};
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
