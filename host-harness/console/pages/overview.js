// Overview: the last 24 hours at a glance, the outbox, the mapper in force
// and the latest failures.

import { api } from '../api.js';
import { h, replace, section, table, time, badge, dl, count } from '../dom.js';
import { hourlyChart } from '../chart.js';
import { loading } from '../ui.js';

export async function render(view, ctx) {
  ctx.heading('Overview');
  const body = h('div', null, loading());
  view.append(body);
  const o = await api('GET', '/overview');
  if (ctx.stale()) return;
  replace(body,
    section('Requests, last 24 hours', hourlyChart(o.hours || [])),
    h('div', { class: 'cards' }, outbox(o.outbox || {}), mapper(o.mapper || {})),
    section('Latest failures', failures(o.latestFailures || []),
      h('p', null, h('a', { href: '#/events?failed=true' }, 'Every failed event'))),
  );
}

function outbox(o) {
  return section('Outbox',
    dl([
      ['Backlog', count(o.backlog ?? 0, 'task')],
      ['Oldest task', o.oldest ? time(o.oldest) : 'none waiting'],
    ]),
    h('p', { class: 'hint' }, 'Work queued for the LMS, such as re-mapping learners after a rules change.'));
}

function mapper(m) {
  const kinds = { default: 'Default mapping', rules: 'Rules', plugin: 'Plugin' };
  const state = m.disabled ? badge('disabled') : badge('in force');
  return section('Mapper in force',
    dl([
      ['Mapper', h('span', null, kinds[m.kind] || m.kind || 'unknown', ' ', state, m.disabled ? ' — the rules map users meanwhile' : '')],
      m.version != null ? ['Version', String(m.version)] : null,
      m.kind === 'plugin' || m.failures ? ['Failures in a row', String(m.failures ?? 0)] : null,
      m.disabledReason ? ['Disabled because', m.disabledReason] : null,
    ]),
    h('p', null, h('a', { href: m.kind === 'plugin' || m.disabled ? '#/plugins' : '#/rules' }, m.kind === 'plugin' || m.disabled ? 'Manage the plugin' : 'Change the mapping')));
}

/** The table of failed events, each linking to its detail. */
export function failures(list) {
  return table({
    caption: 'Latest failed events',
    captionHidden: true,
    columns: [
      { label: 'Time', cell: (e) => h('a', { href: `#/events/${encodeURIComponent(e.id)}` }, time(e.time)) },
      { label: 'Action', cell: (e) => e.action },
      { label: 'Resource', cell: (e) => e.resourceType },
      { label: 'User', cell: (e) => e.resourceName || e.resourceId || '—' },
      { label: 'Reason', cell: (e) => e.reason || '—' },
    ],
    rows: list,
    empty: 'No failures recorded.',
  });
}
