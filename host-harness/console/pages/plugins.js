// Plugins: the mapping plugin in force (failures in a row, auto-disable),
// uploading a build to preview it over every user, installing it with the
// threshold's confirmation, replaying recent failures against it, and
// rolling back or removing.

import { api } from '../api.js';
import { h, replace, section, table, time, shortHash, badge, dl, field, count } from '../dom.js';
import { loading, busy, say, fail } from '../ui.js';
import { previewReport, changeWithConfirmation } from '../preview.js';

/** The build uploaded on this page, kept for Install and Replay. */
let upload = null;

export async function render(view, ctx) {
  ctx.heading('Plugins');
  upload = null;
  const status = h('div', null, loading());
  const results = h('div', { class: 'preview-out' });
  view.append(
    h('p', { class: 'lead' }, 'A mapping plugin is a WebAssembly component that replaces the rules while it is installed and not disabled. Upload a build to preview it over every user before installing it.'),
    status,
    uploadSection(results, () => refresh(status, ctx)),
    results);
  await refresh(status, ctx);
}

async function refresh(holder, ctx) {
  const m = await api('GET', '/mapper');
  if (ctx && ctx.stale()) return;
  const cur = m.current;
  const rollback = h('button', { type: 'button', class: 'button' }, 'Roll back');
  const remove = h('button', { type: 'button', class: 'button danger' }, 'Remove');
  rollback.addEventListener('click', () => busy([rollback, remove], async () => {
    const outcome = await changeWithConfirmation({ method: 'POST', path: '/mapper/rollback', what: 'roll back the plugin' });
    if (!outcome) return;
    say(`Rolled back: plugin version ${outcome.installed.version} is in force${outcome.installed.sha256 ? '' : ' (no plugin: the rules apply)'} (change ${outcome.changeId}).`);
    await refresh(holder);
  }));
  remove.addEventListener('click', () => busy([rollback, remove], async () => {
    const outcome = await changeWithConfirmation({ method: 'DELETE', path: '/mapper', what: 'remove the plugin' });
    if (!outcome) return;
    say(`The plugin is removed; the rules map learners again (change ${outcome.changeId}).`);
    await refresh(holder);
  }));

  let state;
  if (!cur) state = badge('none installed', 'neutral');
  else if (!cur.sha256) state = badge('removed', 'neutral');
  else if (cur.disabled_at) state = badge('disabled');
  else state = badge('active');

  const limit = cur && cur.max_failures != null ? cur.max_failures : 5;
  replace(holder, section('Plugin in force',
    cur ? dl([
      ['State', h('span', null, state, m.active ? ' — it maps this tenant\'s users' : ' — the rules map this tenant\'s users')],
      ['Version', String(cur.version)],
      cur.sha256 ? ['SHA-256', shortHash(cur.sha256)] : null,
      cur.size != null ? ['Size', `${(cur.size / 1024).toFixed(0)} KiB`] : null,
      ['Installed', h('span', null, time(cur.installed_at), ` by ${cur.installed_by}`)],
      cur.sha256 ? ['Failures in a row', `${cur.failures} (disabled at ${limit})`] : null,
      cur.disabled_at ? ['Disabled', h('span', null, time(cur.disabled_at), ` — ${cur.disabled_reason || 'too many failures in a row'}`)] : null,
      cur.settings ? ['Settings', h('details', null, h('summary', null, 'Show the settings'), h('pre', { class: 'settings' }, pretty(cur.settings)))] : null,
    ]) : h('p', null, 'No plugin was ever installed: the rules (or the default mapping) map this tenant\'s users.'),
    cur ? h('div', { class: 'actions' }, rollback, cur.sha256 ? remove : null) : null,
    historyTable(m)));
}

function pretty(json) {
  try {
    return JSON.stringify(JSON.parse(json), null, 2);
  } catch {
    return json;
  }
}

function historyTable(m) {
  const list = [m.current, ...(m.history || [])].filter(Boolean);
  if (list.length === 0) return null;
  return h('details', { class: 'history' },
    h('summary', null, `History (${count(list.length, 'version')})`),
    table({
      caption: 'Plugin versions, newest first',
      columns: [
        { label: 'Version', cell: (v) => String(v.version), rowHeader: true, className: 'num' },
        { label: 'Component', cell: (v) => (v.sha256 ? shortHash(v.sha256) : 'none (back to the rules)') },
        { label: 'Installed', cell: (v) => time(v.installed_at) },
        { label: 'By', cell: (v) => v.installed_by },
        { label: 'Failures', cell: (v) => String(v.failures), className: 'num' },
        { label: 'Disabled', cell: (v) => (v.disabled_at ? v.disabled_reason || 'yes' : '—') },
      ],
      rows: list,
    }));
}

function uploadSection(results, refreshStatus) {
  const file = h('input', { type: 'file', accept: '.wasm,application/wasm', required: true });
  const settings = h('textarea', { class: 'code', rows: '3', spellcheck: 'false' });
  const memory = h('input', { type: 'number', min: '1', max: '256', inputmode: 'numeric' });
  const maxFailures = h('input', { type: 'number', min: '1', inputmode: 'numeric' });
  const uploadButton = h('button', { type: 'submit', class: 'button primary' }, 'Upload');
  const install = h('button', { type: 'button', class: 'button primary', disabled: true }, 'Install');
  const replay = h('button', { type: 'button', class: 'button', disabled: true }, 'Replay recent failures');
  const chosen = h('p', { class: 'muted', 'aria-live': 'polite' });
  const all = [uploadButton, install, replay];

  const query = () => {
    const q = {};
    const s = settings.value.trim();
    if (s) q.settings = s;
    if (memory.value) q.memoryMib = memory.value;
    if (maxFailures.value) q.maxFailures = maxFailures.value;
    return q;
  };
  const validSettings = () => {
    const s = settings.value.trim();
    if (!s) return true;
    try {
      const v = JSON.parse(s);
      if (v && typeof v === 'object' && !Array.isArray(v)) return true;
    } catch { /* reported below */ }
    fail('Settings must be a JSON object, such as {"prefix": "Dept"}.');
    settings.focus();
    return false;
  };

  const form = h('form', { class: 'upload', 'aria-labelledby': 'upload-title' },
    h('h2', { id: 'upload-title' }, 'Upload a build'),
    field('Plugin component (.wasm)', file),
    field('Settings (JSON object, optional)', settings, 'Passed to the plugin on every call, e.g. a lookup table.'),
    h('div', { class: 'row' },
      field('Memory cap (MiB, optional)', memory),
      field('Failures in a row before it is disabled (optional)', maxFailures)),
    h('div', { class: 'actions' }, uploadButton, install, replay),
    chosen);

  form.addEventListener('submit', (event) => {
    event.preventDefault();
    busy(all, async () => {
      const f = file.files && file.files[0];
      if (!f) { fail('Choose a .wasm file first.'); return; }
      if (!validSettings()) return;
      const bytes = await f.arrayBuffer();
      upload = { name: f.name, bytes, size: f.size };
      install.disabled = true;
      replay.disabled = true;
      replace(results, loading(`Previewing ${f.name} over every user…`));
      try {
        const report = await api('POST', '/mapper/preview', { query: query(), body: bytes, contentType: 'application/wasm' });
        replace(results, section(`Preview of ${f.name}`, previewReport(report, { title: 'What installing it would change' })));
        say(`Preview of ${f.name}: ${count(report.changed, 'learner')} of ${report.users} would change, ${report.failed} failed.`);
        chosen.textContent = `Uploaded ${f.name} (${(f.size / 1024).toFixed(0)} KiB): install it or replay recent failures against it.`;
      } catch (e) {
        replace(results);
        upload = null;
        throw e;
      }
    }).finally(() => {
      install.disabled = !upload;
      replay.disabled = !upload;
    });
  });

  install.addEventListener('click', () => busy(all, async () => {
    if (!upload) return;
    if (!validSettings()) return;
    const outcome = await changeWithConfirmation({
      method: 'PUT', path: '/mapper', query: query(),
      options: { body: upload.bytes, contentType: 'application/wasm' },
      what: `install ${upload.name}`,
    });
    if (!outcome) return;
    replace(results, section(`Installed ${upload.name}`, previewReport(outcome.preview, { title: 'What installing changed' })));
    say(`Plugin version ${outcome.installed.version} is in force; existing learners are re-mapped in the background (change ${outcome.changeId}).`);
    await refreshStatus();
  }).finally(() => { install.disabled = !upload; replay.disabled = !upload; }));

  replay.addEventListener('click', () => busy(all, async () => {
    if (!upload) return;
    if (!validSettings()) return;
    const runs = await api('POST', '/mapper/replay', { query: query(), body: upload.bytes, contentType: 'application/wasm' });
    const fixed = runs.filter((r) => !r.failure).length;
    replace(results, section(`Recent failures replayed against ${upload.name}`,
      h('p', null, runs.length ? `${fixed} of ${runs.length} now succeed.` : 'There are no recent failed calls to replay.'),
      table({
        caption: 'Each failed call and what the uploaded build does with it',
        captionHidden: true,
        columns: [
          { label: 'Learner', cell: (r) => h('a', { href: `#/learners/${encodeURIComponent(r.userId)}` }, r.userName), rowHeader: true },
          { label: 'Failed at', cell: (r) => time(r.at) },
          { label: 'Failure then', cell: (r) => r.before },
          { label: 'Now', cell: (r) => (r.failure ? h('span', null, badge('failure'), ' ', r.failure) : badge('success')) },
          { label: 'Grants now', cell: (r) => (r.grants.length ? h('ul', { class: 'plain' }, r.grants.map((g) => h('li', null, g))) : '—') },
        ],
        rows: runs,
        empty: 'Nothing to replay.',
      })));
    say(runs.length ? `Replayed ${count(runs.length, 'failed call')}: ${fixed} now succeed.` : 'There are no recent failed calls to replay.');
  }).finally(() => { install.disabled = !upload; replay.disabled = !upload; }));

  return form;
}
