// The package's API: open a host, mount its handler, schedule its drain.
export { createHost, DEFAULT_MAX_PAYLOAD_BYTES } from './host.js';
export { createScimHandler, SCIM_BASE } from './handler.js';
export { drain, MAX_ATTEMPTS } from './outbox.js';
