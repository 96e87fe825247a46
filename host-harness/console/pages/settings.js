// Settings: the LMS catalogue (roles, teams, learning paths), the tenant's
// policy, and rotating its tokens (each new token shown once).

import { api } from '../api.js';
import { h, replace, section, table, field, select } from '../dom.js';
import { loading, busy, say, confirm, guard } from '../ui.js';

const KINDS = [['roles', 'Role'], ['teams', 'Team'], ['learningPaths', 'Learning path']];

export async function render(view, ctx) {
  ctx.heading('Settings');
  const catalogue = h('div', null, loading());
  const policy = h('div', null, loading());
  view.append(catalogue, policy, tokens(), h('p', null, 'Webhooks for failures, drift and backlogs: ', h('a', { href: '#/alerts' }, 'alert webhooks'), '.'));
  await Promise.all([
    guard(catalogue, 'The catalogue', () => showCatalogue(catalogue, ctx)),
    guard(policy, 'The policy', () => showPolicy(policy, ctx)),
  ]);
}

async function showCatalogue(holder, ctx) {
  const list = await api('GET', '/catalogue');
  if (ctx.stale()) return;
  const lists = h('div', { class: 'catalogue' });
  const draw = (c) => replace(lists, ...KINDS.map(([key, label]) => table({
    caption: `${label}s`,
    columns: [{ label: 'Name', cell: (n) => n }],
    rows: c[key] || [],
    empty: `No ${label.toLowerCase()} yet.`,
  })));
  draw(list);
  const kind = select(KINDS, 'roles');
  const name = h('input', { type: 'text', autocomplete: 'off', required: true });
  const add = h('button', { type: 'submit', class: 'button primary' }, 'Add');
  const form = h('form', { class: 'inline-form', 'aria-label': 'Add to the catalogue' },
    h('div', { class: 'row' }, field('Kind', kind), field('Name', name), h('div', { class: 'actions' }, add)));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const text = name.value.trim();
    if (!text) return;
    busy(add, async () => {
      const fresh = await api('POST', `/catalogue/${kind.value}`, { json: { name: text } });
      draw(fresh);
      name.value = '';
      const label = KINDS.find(([k]) => k === kind.value)[1].toLowerCase();
      say(`Added the ${label} “${text}” to the catalogue.`);
      name.focus();
    });
  });
  replace(holder, section('Catalogue',
    h('p', { class: 'hint' }, 'The roles, teams and learning paths the LMS has. Rules and manual grants may only give roles and learning paths listed here; teams are created as needed.'),
    form, lists));
}

async function showPolicy(holder, ctx) {
  const p = await api('GET', '/policy');
  if (ctx.stale()) return;
  const onDelete = select([['suspend', 'Suspend the learner'], ['remove', 'Remove the learner']], p.onDelete);
  const drift = select([['restore', 'Restore what mapping grants'], ['report', 'Only report it']], p.drift);
  const threshold = h('input', { type: 'number', min: '0', max: '100', step: '0.1', value: String(p.confirmThreshold ?? 5), required: true });
  const denied = h('input', { type: 'text', autocomplete: 'off', value: (p.pluginDeniedRoles || []).join(', ') });
  const save = h('button', { type: 'submit', class: 'button primary' }, 'Save policy');
  const form = h('form', { class: 'policy', 'aria-label': 'Tenant policy' },
    field('When the identity provider deletes a user', onDelete),
    field('When an admin removes a mapped item by hand (drift)', drift),
    field('Confirmation threshold (% of learners losing something)', threshold, 'Rules or plugin changes that take a role, team or learning path from more learners than this ask for confirmation.'),
    field('Roles plugins may not grant (comma-separated)', denied, 'A plugin that names one of them is refused whole.'),
    h('div', { class: 'actions' }, save));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(save, async () => {
      const body = {
        onDelete: onDelete.value,
        drift: drift.value,
        confirmThreshold: Number(threshold.value),
        pluginDeniedRoles: denied.value.split(',').map((s) => s.trim()).filter(Boolean),
      };
      const fresh = await api('PUT', '/policy', { json: body });
      threshold.value = String(fresh.confirmThreshold);
      denied.value = (fresh.pluginDeniedRoles || []).join(', ');
      say('The policy is saved.');
    });
  });
  replace(holder, section('Policy', form));
}

function tokens() {
  const out = h('div', { class: 'token-out' });
  const scim = h('button', { type: 'button', class: 'button' }, 'Rotate SCIM token');
  const admin = h('button', { type: 'button', class: 'button danger' }, 'Rotate admin token');
  const rotate = (which, button) => async () => {
    const isAdmin = which === 'admin';
    const ok = await confirm({
      title: isAdmin ? 'Rotate the admin token?' : 'Rotate the SCIM token?',
      body: isAdmin
        ? 'The current admin token stops working at once and every console session of this tenant ends, this one too. Scripts that use the old token must be given the new one.'
        : 'The current SCIM token stops working at once: provisioning from the identity provider fails until you paste the new token into its SCIM connection settings.',
      danger: true,
    });
    if (!ok) return;
    await busy([scim, admin], async () => {
      const { token } = await api('POST', `/tokens/${which}`);
      const value = h('input', { type: 'text', readonly: true, value: token, class: 'wide code', autocomplete: 'off', spellcheck: 'false' });
      const copy = h('button', { type: 'button', class: 'button' }, 'Copy');
      copy.addEventListener('click', async () => {
        try {
          await navigator.clipboard.writeText(token);
          say('Copied to the clipboard.');
        } catch {
          value.select();
          say('Select the token and copy it by hand.');
        }
      });
      const done = isAdmin ? h('button', { type: 'button', class: 'button primary' }, 'Sign in again') : null;
      if (done) done.addEventListener('click', () => { location.hash = '#/overview'; location.reload(); });
      replace(out, h('div', { class: 'callout warning', role: 'group', 'aria-label': 'New token' },
        h('p', null, h('strong', null, 'Copy this token now: it is shown only once. '),
          isAdmin ? 'This session has ended; sign in again with the new token.' : 'Paste it into the identity provider\'s SCIM connection.'),
        field(isAdmin ? 'New admin token' : 'New SCIM token', value),
        h('div', { class: 'actions' }, copy, done)));
      value.focus();
      value.select();
      say(isAdmin ? 'A new admin token was made; copy it now.' : 'A new SCIM token was made; copy it now.');
    });
  };
  scim.addEventListener('click', rotate('scim', scim));
  admin.addEventListener('click', rotate('admin', admin));
  return section('Tokens',
    h('p', { class: 'hint' }, 'Only hashes of tokens are stored, so a lost token cannot be shown again: rotate it instead.'),
    h('div', { class: 'actions' }, scim, admin), out);
}
