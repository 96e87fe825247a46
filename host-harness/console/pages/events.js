// The sync log: every change the identity provider, mapping or an admin
// made, filterable and paged, with each event's detail and the other
// events of the same request or change.

import { api, apiUrl } from '../api.js';
import { h, replace, section, table, time, badge, dl, field, valueText } from '../dom.js';
import { loading, fail, say } from '../ui.js';

const PAGE = 50;
/** Filters a link may carry (alerts link to `?change=`); the form sets the first five. */
const FILTERS = ['failed', 'user', 'action', 'since', 'until', 'request', 'change'];
const ACTIONS = ['create', 'update', 'replace', 'delete', 'disable', 'enable', 'suspend', 'reactivate', 'remove',
  'grant', 'revoke', 'map', 'drift', 'mismatch', 'skip', 'mapping-install', 'mapping-remove', 'mapper-install',
  'mapper-remove', 'mapper-disabled'];

/** Cursors of the pages before the one shown, per filter set, for Previous. */
let trail = { key: null, cursors: [] };
/** The hash of the list last shown, for the detail's way back. */
let lastList = '#/events';

function filtersOf(params) {
  const f = {};
  for (const k of FILTERS) if (params.get(k)) f[k] = params.get(k);
  return f;
}

function hashOf(filters, before) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(filters)) if (v) p.set(k, v);
  if (before) p.set('before', before);
  const s = p.toString();
  return s ? `#/events?${s}` : '#/events';
}

export async function renderList(view, ctx) {
  ctx.heading('Sync log');
  const filters = filtersOf(ctx.params);
  const before = ctx.params.get('before') || null;
  const key = JSON.stringify(filters);
  if (trail.key !== key) trail = { key, cursors: [] };
  lastList = location.hash || '#/events';

  const results = h('div', null, loading());
  view.append(
    h('p', { class: 'lead' }, 'Every change to users, groups and learners, newest first. Open an event for its old and new values and the other events of the same request.'),
    filterForm(filters, ctx),
    scope(filters, ctx) || '',
    results);

  const answer = await api('GET', '/events', { query: { ...filters, before, limit: PAGE } });
  if (ctx.stale()) return;
  const list = answer.events || [];
  const next = answer.next ?? null;
  if (list.length === 0) say(Object.keys(filters).length ? 'No events match these filters.' : 'The sync log is empty.');

  const previous = h('button', { type: 'button', class: 'button', disabled: !before }, 'Previous');
  const nextButton = h('button', { type: 'button', class: 'button', disabled: !next }, 'Next');
  previous.addEventListener('click', () => {
    const back = trail.cursors.pop();
    ctx.navigate(hashOf(filters, back || null));
  });
  nextButton.addEventListener('click', () => {
    trail.cursors.push(before);
    ctx.navigate(hashOf(filters, next));
  });
  const csv = h('a', {
    class: 'button', download: 'sync-log.csv',
    href: apiUrl('/events', { ...filters, format: 'csv', limit: 10000 }),
  }, 'Export CSV');

  replace(results,
    h('div', { class: 'toolbar' },
      h('p', { class: 'muted' }, list.length ? `Showing ${list.length} event${list.length === 1 ? '' : 's'}${before ? ' (older page)' : ''}.` : ''),
      h('div', { class: 'actions' }, csv)),
    eventTable(list, 'Sync log events'),
    h('nav', { class: 'pager', 'aria-label': 'Sync log pages' }, previous, nextButton));
}

/** A note for the request or change a link narrowed the list to. */
function scope(filters, ctx) {
  const parts = [];
  if (filters.request) parts.push(['request', filters.request]);
  if (filters.change) parts.push(['change', filters.change]);
  if (parts.length === 0) return null;
  const all = h('button', { type: 'button', class: 'link-button' }, 'Show every event');
  all.addEventListener('click', () => {
    const rest = { ...filters };
    delete rest.request;
    delete rest.change;
    ctx.navigate(hashOf(rest, null));
  });
  return h('p', { class: 'callout info' }, 'Only the events of ',
    parts.map(([k, v], i) => [i ? ' and ' : '', `${k} `, h('code', null, v)]), '. ', all);
}

function filterForm(filters, ctx) {
  const failed = h('input', { type: 'checkbox', checked: filters.failed === 'true' });
  const user = h('input', { type: 'text', value: filters.user || '', autocomplete: 'off' });
  const actionList = h('datalist', { id: 'event-actions' }, ACTIONS.map((a) => h('option', { value: a })));
  const action = h('input', { type: 'text', value: filters.action || '', list: 'event-actions', autocomplete: 'off' });
  const since = h('input', { type: 'datetime-local', value: toLocalInput(filters.since), step: '1' });
  const until = h('input', { type: 'datetime-local', value: toLocalInput(filters.until), step: '1' });
  const clear = h('button', { type: 'button', class: 'button' }, 'Clear');
  const form = h('form', { class: 'filters', 'aria-label': 'Filter the sync log' },
    h('div', { class: 'field checkbox' }, failed, h('label', { for: (failed.id = 'filter-failed') }, 'Failed only')),
    field('User (id or name)', user),
    field('Action', action),
    actionList,
    field('From', since),
    field('To', until),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button primary' }, 'Filter'), clear));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    ctx.navigate(hashOf({
      failed: failed.checked ? 'true' : '',
      user: user.value.trim(),
      action: action.value.trim(),
      since: fromLocalInput(since.value),
      until: fromLocalInput(until.value),
    }, null));
  });
  clear.addEventListener('click', () => ctx.navigate('#/events'));
  return form;
}

/** `2026-12-07T05:00:00Z` → the value of a datetime-local input, in local time. */
function toLocalInput(iso) {
  if (!iso) return '';
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const p = (n) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fromLocalInput(value) {
  if (!value) return '';
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The events as a table whose times link to their detail. */
export function eventTable(list, caption, { hideCaption = true, highlight = null } = {}) {
  const columns = [
    { label: 'Time', cell: (e) => h('a', { href: `#/events/${encodeURIComponent(e.id)}`, 'aria-current': highlight === e.id ? 'true' : null }, time(e.time)) },
    { label: 'Action', cell: (e) => e.action },
    { label: 'Resource', cell: (e) => e.resourceType },
    { label: 'User', cell: (e) => e.resourceName || (e.resourceId ? h('code', null, e.resourceId) : '—') },
    { label: 'Status', cell: (e) => badge(e.status) },
    { label: 'Reason', cell: (e) => e.reason || '—' },
  ];
  const rowClass = (e) => (highlight === e.id ? 'current-row' : (e.status === 'failure' ? 'failed-row' : null));
  return table({ caption, captionHidden: hideCaption, columns, rows: list, rowClass, empty: 'No events match these filters.' });
}

/** One event: there is no single-event endpoint, so it is the page of one before `id + 1`. */
async function eventById(id) {
  const n = Number(id);
  if (!Number.isInteger(n) || n < 1) return null;
  const answer = await api('GET', '/events', { query: { before: n + 1, limit: 1 } });
  const e = (answer.events || [])[0];
  return e && String(e.id) === String(id) ? e : null;
}

export async function renderDetail(view, ctx) {
  const heading = ctx.heading(`Event ${ctx.id}`);
  const body = h('div', null, loading());
  view.append(h('p', null, h('a', { href: lastList }, 'Back to the event list')), body);
  const e = await eventById(ctx.id);
  if (ctx.stale()) return;
  if (!e) {
    replace(body);
    heading.textContent = 'Event not found';
    fail(`There is no event ${ctx.id} in this tenant's sync log (events older than the retention period are purged).`);
    return;
  }
  heading.textContent = `Event ${e.id}: ${e.action} ${e.resourceType}`;
  document.title = `${heading.textContent} — SCIM admin console`;

  const related = h('div', null, loading('Loading the events of the same request…'));
  replace(body,
    section('Summary', dl([
      ['Time', time(e.time)],
      ['Action', e.action],
      ['Resource', `${e.resourceType} ${e.resourceName || ''}`.trim()],
      ['Resource id', h('code', null, e.resourceId)],
      ['Status', badge(e.status)],
      ['Reason', e.reason || '—'],
      ['Detail', e.detail || '—'],
      ['Request id', h('code', null, e.requestId)],
      ['Change id', h('code', null, e.changeId)],
      ['Duration', `${e.durationMs} ms`],
    ]),
    e.resourceId && (e.resourceType === 'Learner' || e.resourceType === 'User')
      ? h('p', null, h('a', { href: `#/learners/${encodeURIComponent(e.resourceId)}` }, 'Open this learner'))
      : null),
    section('Changes', table({
      caption: 'Old and new values',
      captionHidden: true,
      columns: [
        { label: 'Attribute', cell: (c) => c.name, rowHeader: true, className: 'wrap' },
        { label: 'Old value', cell: (c) => h('span', { class: c.old == null ? 'value muted' : 'value old' }, valueText(c.old)), className: 'wrap value-col' },
        { label: 'New value', cell: (c) => h('span', { class: c.new == null ? 'value muted' : 'value new' }, valueText(c.new)), className: 'wrap value-col' },
      ],
      rows: e.changes || [],
      empty: 'This event records no attribute changes.',
    })),
    related);

  const [sameRequest, sameChange] = await Promise.all([
    api('GET', '/events', { query: { request: e.requestId, limit: 500 } }),
    e.changeId !== e.requestId ? api('GET', '/events', { query: { change: e.changeId, limit: 500 } }) : null,
  ]);
  if (ctx.stale()) return;
  replace(related,
    section('Events of the same request',
      h('p', { class: 'hint' }, 'Request id ', h('code', null, e.requestId)),
      eventTable(sameRequest.events || [], `Events of request ${e.requestId}`, { highlight: e.id })),
    sameChange ? section('Events of the same change',
      h('p', { class: 'hint' }, 'Change id ', h('code', null, e.changeId)),
      eventTable(sameChange.events || [], `Events of change ${e.changeId}`, { highlight: e.id })) : null);
}
