// Learners: find one by name, email or id; see what it holds and why
// (each item's sources and the mapper's explain steps); grant or remove
// items by hand, with confirmation.

import { api } from '../api.js';
import { h, replace, section, table, badge, dl, field, select, count } from '../dom.js';
import { loading, confirm, busy, say } from '../ui.js';

const KINDS = [
  ['roles', 'Role', 'role'],
  ['teams', 'Team', 'team'],
  ['learningPaths', 'Learning path', 'learningPath'],
];
const KIND_LABEL = { role: 'Role', team: 'Team', learningPath: 'Learning path', 'learning-path': 'Learning path' };

export async function renderSearch(view, ctx) {
  ctx.heading('Learners');
  const q = ctx.params.get('q') || '';
  const input = h('input', { type: 'search', value: q, autocomplete: 'off', required: true, class: 'wide' });
  const form = h('form', { class: 'search', role: 'search', 'aria-label': 'Find learners' },
    field('Name, email or id', input, 'A SCIM id finds that learner; other text finds user names, display names and emails that contain it.'),
    h('div', { class: 'actions' }, h('button', { type: 'submit', class: 'button primary' }, 'Search')));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (text) ctx.navigate(`#/learners?q=${encodeURIComponent(text)}`);
  });
  const results = h('div');
  view.append(form, results);
  if (!q) return;
  results.append(loading('Searching…'));
  const answer = await api('GET', '/learners', { query: { q, limit: 50 } });
  if (ctx.stale()) return;
  const list = answer.learners || [];
  say(list.length ? `${count(list.length, 'learner')} found.` : 'No learner matches.');
  replace(results, table({
    caption: `Learners matching “${q}”`,
    columns: [
      { label: 'Name', cell: (l) => h('a', { href: `#/learners/${encodeURIComponent(l.id)}` }, l.displayName || l.userName), rowHeader: true },
      { label: 'User name', cell: (l) => l.userName },
      { label: 'Email', cell: (l) => l.email || '—' },
      { label: 'Status', cell: (l) => badge(l.status || 'unknown') },
      { label: 'Id', cell: (l) => h('code', null, l.id) },
    ],
    rows: list,
    empty: 'No learner matches. Try part of the name or email.',
  }));
}

export async function renderLearner(view, ctx) {
  ctx.heading('Learner');
  view.append(h('p', null, h('a', { href: '#/learners' }, 'Find another learner')));
  const body = h('div', null, loading());
  view.append(body);
  await show(body, ctx);
}

/** Shows the learner; after a change, focus goes to what changed (its button is gone). */
async function show(body, ctx, refocus = false) {
  const id = ctx.id;
  const [learner, catalogue] = await Promise.all([
    api('GET', `/learners/${encodeURIComponent(id)}`),
    api('GET', '/catalogue').catch(() => ({ roles: [], teams: [], learningPaths: [] })),
  ]);
  if (ctx.stale()) return;
  ctx.heading(`Learner ${learner.userName}`);
  const why = h('div', null, loading('Loading why the learner holds what it holds…'));
  const held = section('Roles, teams and learning paths', grants(learner, ctx, body), addForm(learner, catalogue, ctx, body));
  replace(body,
    section('Status', dl([
      ['User name', learner.userName],
      ['Status', badge(learner.status)],
      ['SCIM id', h('code', null, learner.id)],
    ]), h('p', null, h('a', { href: `#/events?user=${encodeURIComponent(learner.id)}` }, 'Every event of this learner'))),
    held,
    withdrawn(learner),
    why);
  if (refocus) {
    const title = held.querySelector('h2');
    title.setAttribute('tabindex', '-1');
    title.focus();
  }
  try {
    const explain = await api('GET', `/learners/${encodeURIComponent(learner.id)}/explain`);
    if (ctx.stale()) return;
    replace(why, explainSection(explain));
  } catch (e) {
    if (ctx.stale()) return;
    replace(why, section('Why', h('p', { class: 'error-text' }, `The explanation is not available: ${e.detail || e.message}`)));
  }
}

function rowsOf(learner) {
  const rows = [];
  for (const [key, label] of KINDS) {
    for (const item of learner[key] || []) rows.push({ key, label, ...item });
  }
  return rows;
}

function grants(learner, ctx, body) {
  return table({
    caption: 'Held by this learner, with the source of each',
    columns: [
      { label: 'Kind', cell: (r) => r.label },
      { label: 'Name', cell: (r) => r.name, rowHeader: true },
      { label: 'Sources', cell: (r) => h('ul', { class: 'plain' }, r.sources.map((s) => h('li', null, sourceText(s)))) },
      { label: 'Actions', cell: (r) => removeButton(learner, r, ctx, body) },
    ],
    rows: rowsOf(learner),
    empty: 'This learner holds no role, team or learning path.',
  });
}

/** A source such as `rules:team-leads@attr:title` with its origin spelled out. */
function sourceText(source) {
  const code = h('code', null, source);
  if (source === 'manual') return h('span', null, code, ' (granted by hand)');
  if (source.startsWith('rules:')) return h('span', null, code, ' (rule)');
  if (source.startsWith('plugin:')) return h('span', null, code, ' (plugin)');
  if (source.startsWith('default:')) return h('span', null, code, ' (default mapping)');
  return code;
}

function removeButton(learner, r, ctx, body) {
  const manual = r.sources.includes('manual');
  const button = h('button', { type: 'button', class: 'button small', 'aria-label': `Remove ${r.label.toLowerCase()} ${r.name}` }, 'Remove');
  button.addEventListener('click', async () => {
    const onlyMapped = !manual;
    const ok = await confirm({
      title: `Remove the ${r.label.toLowerCase()} “${r.name}”?`,
      body: [
        h('p', null, `From ${learner.userName}.`),
        onlyMapped
          ? h('p', null, 'This item comes from mapping, not from a manual grant. Removing it by hand marks it withdrawn; the next time mapping visits this learner it restores it or only reports the drift, as the tenant\'s drift policy says.')
          : h('p', null, r.sources.length > 1 ? 'The manual grant is revoked; the learner keeps the item through its other sources.' : 'The manual grant is revoked.'),
      ],
      confirmLabel: 'Confirm',
      danger: true,
    });
    if (!ok) return;
    await busy(button, async () => {
      await api('DELETE', `/learners/${encodeURIComponent(learner.id)}/${r.key}/${encodeURIComponent(r.name)}`);
      say(`Removed the ${r.label.toLowerCase()} “${r.name}” from ${learner.userName}.`);
      await show(body, ctx, true);
    });
  });
  return button;
}

function addForm(learner, catalogue, ctx, body) {
  const kind = select(KINDS.map(([k, l]) => [k, l]), 'teams');
  const name = h('input', { type: 'text', autocomplete: 'off', required: true, list: 'catalogue-names' });
  const names = h('datalist', { id: 'catalogue-names' });
  const fill = () => replace(names, ...(catalogue[kind.value] || []).map((n) => h('option', { value: n })));
  kind.addEventListener('change', fill);
  fill();
  const button = h('button', { type: 'submit', class: 'button primary' }, 'Add');
  const form = h('form', { class: 'inline-form', 'aria-label': 'Grant by hand' },
    h('h3', null, 'Grant by hand'),
    h('div', { class: 'row' }, field('Kind', kind), field('Name', name), names, h('div', { class: 'actions' }, button)),
    h('p', { class: 'hint' }, 'Roles and learning paths must be in the catalogue (Settings); a team is created when needed. Mapping never removes a manual grant.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const text = name.value.trim();
    if (!text) return;
    const label = KINDS.find(([k]) => k === kind.value)[1].toLowerCase();
    const ok = await confirm({
      title: `Grant the ${label} “${text}”?`,
      body: `${learner.userName} gets the ${label} “${text}” by hand, recorded in the sync log as a manual grant.`,
    });
    if (!ok) return;
    await busy(button, async () => {
      await api('POST', `/learners/${encodeURIComponent(learner.id)}/${kind.value}`, { json: { name: text } });
      say(`Granted the ${label} “${text}” to ${learner.userName}.`);
      await show(body, ctx, true);
    });
  });
  return form;
}

function withdrawn(learner) {
  if (!learner.withdrawn || learner.withdrawn.length === 0) return null;
  return section('Withdrawn by hand', table({
    caption: 'Mapped items removed by hand (drift)',
    captionHidden: true,
    columns: [
      { label: 'Kind', cell: (w) => KIND_LABEL[w.kind] || w.kind },
      { label: 'Name', cell: (w) => w.name, rowHeader: true },
      { label: 'Source', cell: (w) => sourceText(w.source) },
    ],
    rows: learner.withdrawn,
  }));
}

/** The explain steps: facts, each rule and its tests, desired state, effects. */
export function explainSection(x, title = 'Why: the explain steps') {
  const parts = [];
  parts.push(dl([
    ['Mapper', x.mapper],
    ['Active in the identity provider', x.user && x.user.active ? 'yes' : 'no'],
  ]));
  if (x.notes && x.notes.length) parts.push(h('ul', { class: 'notes' }, x.notes.map((n) => h('li', null, n))));
  if (x.failure) {
    parts.push(h('p', { class: 'error-text' }, `The mapper failed for this user: ${x.failure.reason}${x.failure.detail ? ` — ${x.failure.detail}` : ''}`));
  }
  const facts = x.facts || {};
  parts.push(h('h3', null, 'What the mapper saw'));
  parts.push(dl([
    ['Groups', (facts.groups || []).length ? (facts.groups || []).map((g) => g.displayName).join(', ') : 'none'],
    ...Object.entries(facts.attributes || {}).map(([k, v]) => [k, v.join(', ')]),
  ]));
  if (x.rules && x.rules.length) {
    parts.push(h('h3', null, 'Rules'));
    parts.push(table({
      caption: 'Each rule and why it matched or not',
      captionHidden: true,
      columns: [
        { label: 'Rule', cell: (r) => r.rule, rowHeader: true },
        { label: 'Priority', cell: (r) => String(r.priority ?? 0), className: 'num' },
        { label: 'Matched', cell: (r) => badge(r.matched ? 'yes' : 'no') },
        { label: 'Because of', cell: (r) => viaText(r.via, facts.groups || []) },
        { label: 'Tests', cell: (r) => (r.condition ? conditionTree(r.condition) : 'applies to every active user') },
      ],
      rows: x.rules,
    }));
  }
  if (x.desired) {
    parts.push(h('h3', null, 'What mapping wants'));
    parts.push(grantTable(x.desired, 'Desired roles, teams and learning paths'));
  }
  if (x.effects) {
    parts.push(h('h3', null, 'What mapping would change now'));
    parts.push(x.effects.length
      ? h('ul', { class: 'plain' }, x.effects.map((e) => h('li', null, effectText(e))))
      : h('p', null, 'Nothing: the learner already holds what mapping wants.'));
  }
  return section(title, ...parts);
}

/** `group:<id>` as the group's name; `attr:title` as the attribute. */
function viaText(via, groups) {
  if (!via) return '—';
  if (via.startsWith('group:')) {
    const g = groups.find((x) => `group:${x.id}` === via);
    return g ? `member of the group ${g.displayName}` : via;
  }
  if (via.startsWith('attr:')) return `the attribute ${via.slice(5)}`;
  return via;
}

function grantTable(list, caption) {
  return table({
    caption,
    captionHidden: true,
    columns: [
      { label: 'Kind', cell: (g) => KIND_LABEL[g.kind] || g.kind },
      { label: 'Name', cell: (g) => g.name, rowHeader: true },
      { label: 'Source', cell: (g) => sourceText(g.source) },
    ],
    rows: list,
    empty: 'Nothing.',
  });
}

function conditionTree(c) {
  const verdict = badge(c.result ? 'holds' : 'does not hold', c.result ? 'good' : 'bad');
  const values = c.values ? ` — saw ${c.values.length ? c.values.map((v) => `“${v}”`).join(', ') : 'no value'}` : '';
  return h('ul', { class: 'tree' }, h('li', null,
    h('code', null, c.test), ' ', verdict, values,
    c.children && c.children.length ? c.children.map(conditionTree) : null));
}

function effectText(e) {
  const { effect, ...rest } = e;
  const more = Object.entries(rest).map(([k, v]) => `${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`).join(', ');
  return more ? `${effect} (${more})` : effect;
}
