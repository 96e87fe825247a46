// What rules and plugins share: a preview's report (counts, items, then who
// gains and loses what, paged here in the browser) and the confirmation a
// change needs when it takes something from more learners than the
// tenant's threshold (the API's 409 with the preview).

import { api } from './api.js';
import { h, replace, table, count } from './dom.js';
import { confirm, say } from './ui.js';

const PER_PAGE = 20;
const KIND = { role: 'role', team: 'team', learningPath: 'learning path', 'learning-path': 'learning path' };

const itemText = (g) => `${KIND[g.kind] || g.kind} ${g.name}`;

/** A preview report (`users`, `changed`, `items`, `differences`…) as counts and tables. */
export function previewReport(p, { title = 'Preview' } = {}) {
  const stats = h('dl', { class: 'stats' },
    stat('Users', p.users),
    stat('Changed', p.changed),
    stat('Gaining', p.gaining),
    stat('Losing', `${p.losing} (${formatPercent(p.losingPercent)})`),
    stat('Failed', p.failed));
  const items = table({
    caption: 'Per item: learners who gain, lose or skip it',
    columns: [
      { label: 'Kind', cell: (i) => KIND[i.kind] || i.kind },
      { label: 'Name', cell: (i) => i.name, rowHeader: true },
      { label: 'Gained', cell: (i) => String(i.gained), className: 'num' },
      { label: 'Lost', cell: (i) => String(i.lost), className: 'num' },
      { label: 'Skipped', cell: (i) => String(i.skipped), className: 'num' },
    ],
    rows: p.items || [],
    empty: 'No learner gains or loses anything.',
  });
  const failures = Object.entries(p.failures || {});
  const failureTable = failures.length ? table({
    caption: 'Failures by reason',
    columns: [
      { label: 'Reason', cell: ([r]) => r, rowHeader: true },
      { label: 'Users', cell: ([, n]) => String(n), className: 'num' },
    ],
    rows: failures,
  }) : null;
  return h('div', { class: 'preview' },
    h('h3', null, title),
    stats,
    items,
    failureTable,
    differences(p));
}

function stat(label, value) {
  return h('div', { class: 'stat' }, h('dt', null, label), h('dd', null, String(value ?? 0)));
}

function formatPercent(x) {
  return `${(x || 0).toFixed(1)}%`;
}

/** Who gains and loses what, a page at a time. */
function differences(p) {
  const rows = p.differences || [];
  const holder = h('div', { class: 'differences' });
  let page = 0;
  const pages = Math.max(1, Math.ceil(rows.length / PER_PAGE));
  const status = h('p', { class: 'muted', 'aria-live': 'polite' });
  const prev = h('button', { type: 'button', class: 'button' }, 'Previous');
  const next = h('button', { type: 'button', class: 'button' }, 'Next');
  const body = h('div');
  const draw = () => {
    const slice = rows.slice(page * PER_PAGE, (page + 1) * PER_PAGE);
    replace(body, table({
      caption: 'Who gains and who loses what',
      columns: [
        { label: 'Learner', cell: (d) => h('a', { href: `#/learners/${encodeURIComponent(d.id)}` }, d.userName), rowHeader: true },
        { label: 'Gains', cell: (d) => list(d.gains, 'gain') },
        { label: 'Losses', cell: (d) => list(d.losses, 'loss') },
        { label: 'Skipped or failed', cell: (d) => (d.failure ? h('span', { class: 'error-text' }, `Failed: ${d.failure}`) : list(d.skipped || [], 'skip')) },
      ],
      rows: slice,
      empty: 'No learner changes.',
    }));
    status.textContent = rows.length ? `Page ${page + 1} of ${pages} (${count(rows.length, 'learner')}${p.truncated ? `, of ${p.changed} changed` : ''})` : '';
    prev.disabled = page === 0;
    next.disabled = page >= pages - 1;
  };
  prev.addEventListener('click', () => { page -= 1; draw(); });
  next.addEventListener('click', () => { page += 1; draw(); });
  draw();
  holder.append(body);
  if (rows.length > PER_PAGE) holder.append(h('nav', { class: 'pager', 'aria-label': 'Preview pages' }, prev, next, status));
  else holder.append(status);
  if (p.truncated) holder.append(h('p', { class: 'hint' }, 'The list stops at the first learners; the counts above cover everyone.'));
  return holder;
}

function list(items, tone) {
  if (!items || items.length === 0) return h('span', { class: 'muted' }, '—');
  return h('ul', { class: `plain change-${tone}` }, items.map((g) => h('li', null, tone === 'gain' ? '+ ' : tone === 'loss' ? '− ' : '', itemText(g), g.reason ? ` (${g.reason})` : '')));
}

/**
 * Sends a change (install, rollback, removal); when the API answers 409
 * (too many learners would lose something), shows the preview's counts in
 * a dialog and, once the admin confirms, sends it again with
 * `confirm=true`. Answers the outcome, or null when the admin cancelled.
 */
export async function changeWithConfirmation({ method, path, query = {}, options = {}, what }) {
  try {
    return await api(method, path, { ...options, query });
  } catch (e) {
    if (e.status !== 409 || !e.body || !e.body.preview) throw e;
    const p = e.body.preview;
    const ok = await confirm({
      title: `Confirm: ${what}`,
      body: [
        h('p', null, `This takes roles, teams or learning paths away from ${count(p.losing, 'learner')} of ${p.users} (${formatPercent(p.losingPercent)}), above this tenant's threshold of ${e.body.threshold}%.`),
        h('p', null, `${count(p.gaining, 'learner')} gain something; ${count(p.failed, 'learner')} failed.`),
        h('p', null, 'Existing learners are re-mapped in the background once confirmed.'),
      ],
      confirmLabel: 'Confirm',
      danger: true,
    });
    if (!ok) {
      say('Nothing was changed.');
      return null;
    }
    return api(method, path, { ...options, query: { ...query, confirm: 'true' } });
  }
}
