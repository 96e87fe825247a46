// Alerts: the tenant's webhooks (what they are sent for, in which format),
// adding one (its signing secret shown once), a test alert, and the
// delivery log.

import { api } from '../api.js';
import { h, replace, section, table, time, badge, field, select, uid } from '../dom.js';
import { loading, busy, say, confirm, guard } from '../ui.js';

const KIND_TEXT = {
  'provisioning-failed': 'A provisioning request failed',
  'mapping-failed': 'Mapping failed for a user',
  'role-mismatch': 'A manual role differs from the mapped one',
  drift: 'Drift: a mapped item was removed by hand',
  'plugin-disabled': 'The plugin was disabled after failures',
  'outbox-backlog': 'The outbox backlog is older than the threshold',
};

export async function render(view, ctx) {
  ctx.heading('Alerts');
  const hooks = h('div', null, loading());
  const deliveries = h('div', null, loading());
  view.append(
    h('p', { class: 'lead' }, 'Webhooks receive a signed JSON (or Slack-compatible) message when provisioning fails, mapping fails, roles disagree, drift is found, the plugin is disabled or the outbox falls behind. Deliveries are queued and retried until the receiver answers.'),
    hooks, deliveries);
  // The webhooks first: the delivery log names them.
  await guard(hooks, 'The webhooks', () => showHooks(hooks, deliveries, ctx));
  await guard(deliveries, 'The delivery log', () => showDeliveries(deliveries, ctx));
}

/** Webhook ids to their URLs, for the delivery log. */
let urls = new Map();

async function showHooks(holder, deliveries, ctx, notice = null) {
  const answer = await api('GET', '/alerts');
  if (ctx && ctx.stale()) return;
  const kinds = answer.kinds || Object.keys(KIND_TEXT);
  urls = new Map((answer.webhooks || []).map((w) => [String(w.id), w.url]));
  const reload = (shown = null) => showHooks(holder, deliveries, null, shown);
  replace(holder,
    section('Webhooks',
      table({
        caption: 'Webhooks of this tenant',
        captionHidden: true,
        columns: [
          { label: 'URL', cell: (w) => h('code', { class: 'break' }, w.url), rowHeader: true },
          { label: 'Sent for', cell: (w) => h('ul', { class: 'plain' }, (w.on || []).map((k) => h('li', null, k))) },
          { label: 'Format', cell: (w) => (w.format === 'slack' ? 'Slack' : 'JSON') },
          { label: 'Backlog threshold', cell: (w) => (w.backlogMinutes != null ? `${w.backlogMinutes} min` : '—') },
          { label: 'Created', cell: (w) => time(w.created) },
          { label: 'Actions', cell: (w) => hookActions(w, reload, deliveries) },
        ],
        rows: answer.webhooks || [],
        empty: 'No webhooks yet: add one below.',
      })),
    addForm(kinds, reload),
    notice);
}

function hookActions(w, reload, deliveries) {
  const test = h('button', { type: 'button', class: 'button small', 'aria-label': `Send test to ${w.url}` }, 'Send test');
  const del = h('button', { type: 'button', class: 'button small danger', 'aria-label': `Delete webhook ${w.url}` }, 'Delete');
  test.addEventListener('click', () => busy(test, async () => {
    await api('POST', `/alerts/${encodeURIComponent(w.id)}/test`);
    say(`A test alert is queued for ${w.url}; its delivery shows in the log below.`);
    setTimeout(() => showDeliveries(deliveries, null).catch(() => {}), 1500);
  }));
  del.addEventListener('click', async () => {
    const ok = await confirm({ title: 'Delete this webhook?', body: `${w.url} receives no more alerts; deliveries still queued for it are dropped.`, danger: true });
    if (!ok) return;
    await busy(del, async () => {
      await api('DELETE', `/alerts/${encodeURIComponent(w.id)}`);
      say(`Deleted the webhook ${w.url}.`);
      await reload();
    });
  });
  return h('div', { class: 'actions compact' }, test, del);
}

function addForm(kinds, reload) {
  const url = h('input', { type: 'url', required: true, autocomplete: 'off', placeholder: 'https://hooks.example.com/lms', class: 'wide' });
  const boxes = kinds.map((k) => {
    const id = uid('kind');
    const box = h('input', { type: 'checkbox', id, value: k, checked: true });
    return { k, box, el: h('div', { class: 'field checkbox' }, box, h('label', { for: id }, `${KIND_TEXT[k] || k} (${k})`)) };
  });
  const format = select([['json', 'JSON (signed)'], ['slack', 'Slack-compatible']], 'json');
  const backlog = h('input', { type: 'number', min: '1', value: '15', inputmode: 'numeric' });
  const add = h('button', { type: 'submit', class: 'button primary' }, 'Add webhook');
  const form = h('form', { class: 'add-hook', 'aria-labelledby': 'add-hook-title' },
    h('h2', { id: 'add-hook-title' }, 'Add a webhook'),
    field('Webhook URL', url),
    h('fieldset', null, h('legend', null, 'Send alerts for'), boxes.map((b) => b.el)),
    h('div', { class: 'row' },
      field('Format', format),
      field('Outbox backlog threshold (minutes)', backlog)),
    h('div', { class: 'actions' }, add));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const on = boxes.filter((b) => b.box.checked).map((b) => b.k);
    busy(add, async () => {
      const body = { url: url.value.trim(), on, format: format.value };
      if (backlog.value) body.backlogMinutes = Number(backlog.value);
      const hook = await api('POST', '/alerts', { json: body });
      url.value = '';
      await reload(secretCallout(hook));
      say(`Added the webhook ${hook.url}. Copy its signing secret now.`);
    });
  });
  return form;
}

function secretCallout(hook) {
  if (!hook.secret) return h('p', null, 'The webhook is added.');
  const value = h('input', { type: 'text', readonly: true, value: hook.secret, class: 'wide code', autocomplete: 'off', spellcheck: 'false' });
  return h('div', { class: 'callout warning', role: 'group', 'aria-label': 'Signing secret' },
    h('p', null, h('strong', null, 'Copy the signing secret now: it is shown only once. '),
      'The receiver checks each message\'s HMAC-SHA256 signature with it.'),
    field(`Signing secret for ${hook.url}`, value));
}

async function showDeliveries(holder, ctx) {
  const answer = await api('GET', '/alerts/deliveries', { query: { limit: 50 } });
  if (ctx && ctx.stale()) return;
  const refresh = h('button', { type: 'button', class: 'button' }, 'Refresh');
  refresh.addEventListener('click', () => busy(refresh, async () => {
    await showDeliveries(holder, null);
    say('The delivery log is up to date.');
  }));
  replace(holder, section('Delivery log',
    h('div', { class: 'toolbar' }, h('p', { class: 'hint' }, 'The latest 50 deliveries, newest first.'), h('div', { class: 'actions' }, refresh)),
    table({
      caption: 'Alert deliveries',
      captionHidden: true,
      columns: [
        { label: 'Created', cell: (d) => time(d.created), rowHeader: true },
        { label: 'Kind', cell: (d) => d.kind },
        { label: 'Webhook', cell: (d) => h('span', { class: 'break' }, urls.get(String(d.webhook)) || `#${d.webhook} (deleted)`) },
        { label: 'State', cell: (d) => badge(d.state) },
        { label: 'Attempts', cell: (d) => String(d.attempts), className: 'num' },
        { label: 'Last answer', className: 'wrap', cell: (d) => [d.lastStatus ? `HTTP ${d.lastStatus}` : null, d.lastError].filter(Boolean).join(' — ') || '—' },
        { label: 'Delivered', cell: (d) => (d.deliveredAt ? time(d.deliveredAt) : d.nextAt ? h('span', null, 'next try ', time(d.nextAt)) : '—') },
        { label: 'Event id', cell: (d) => h('code', null, d.eventId), className: 'wrap' },
      ],
      rows: answer.deliveries || [],
      empty: 'No alerts were sent yet.',
    })));
}
