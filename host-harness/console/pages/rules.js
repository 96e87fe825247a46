// Rules: an editor whose document is checked as it is typed (errors marked
// on their lines), a preview of what applying it would change, apply with
// the threshold's confirmation, and the history with rollback.

import { api } from '../api.js';
import { h, replace, section, table, time, shortHash, badge, count, field } from '../dom.js';
import { loading, busy, say, fail } from '../ui.js';
import { previewReport, changeWithConfirmation } from '../preview.js';
import { explainSection } from './learner.js';

const DEBOUNCE_MS = 400;

const STARTER = `# Mapping rules (TOML). See the README's "Mapping rules" section.
version = 1
groups_as_teams = true        # every group is a team
default_role = "learner"      # the role of anyone no rule gives one

[[rule]]
name = "sales-onboarding"
when = { group = "Sales" }
grant.learning_paths = ["Sales Onboarding"]
`;

export async function render(view, ctx) {
  ctx.heading('Rules');
  const body = h('div', null, loading());
  view.append(body);
  const [mapping, plugin] = await Promise.all([
    api('GET', '/mapping'),
    api('GET', '/mapper').catch(() => null),
  ]);
  if (ctx.stale()) return;

  const editor = makeEditor(mapping.current && mapping.current.document ? mapping.current.document : STARTER);
  const previewOut = h('div', { class: 'preview-out' });
  const previewButton = h('button', { type: 'button', class: 'button' }, 'Preview');
  const applyButton = h('button', { type: 'button', class: 'button primary' }, 'Apply');
  const history = h('div');
  const revert = h('button', { type: 'button', class: 'button', hidden: true }, 'Revert');
  const dirty = h('span', { class: 'muted' });
  const inForce = () => editor.saved();
  editor.onChange(() => {
    const changed = editor.text() !== inForce();
    revert.hidden = !changed;
    dirty.textContent = changed ? 'Edited: not applied yet.' : '';
  });
  revert.addEventListener('click', () => {
    editor.set(inForce());
    say('The editor shows the rules in force again.');
  });
  const threshold = mapping.policy ? mapping.policy.confirm_threshold : null;

  previewButton.addEventListener('click', () => busy([previewButton, applyButton], async () => {
    const text = editor.text();
    if (!text.trim()) { fail('The document is empty: write rules first.'); return; }
    replace(previewOut, loading('Previewing over every user…'));
    try {
      const report = await api('POST', '/mapping/preview', { body: text, contentType: 'text/plain; charset=utf-8' });
      replace(previewOut, previewReport(report, { title: 'Preview of this document' }));
      say(`Preview: ${count(report.changed, 'learner')} of ${report.users} would change; ${report.losing} would lose something.`);
    } catch (e) {
      replace(previewOut);
      if (e.body && e.body.check) editor.show(e.body.check);
      throw e;
    }
  }));

  applyButton.addEventListener('click', () => busy([previewButton, applyButton], async () => {
    const text = editor.text();
    if (!text.trim()) { fail('The document is empty: write rules first.'); return; }
    try {
      const outcome = await changeWithConfirmation({
        method: 'PUT', path: '/mapping',
        options: { body: text, contentType: 'text/plain; charset=utf-8' },
        what: 'apply these rules',
      });
      if (!outcome) return;
      replace(previewOut, previewReport(outcome.preview, { title: 'What applying changed' }));
      editor.markSaved(text);
      say(`Rules version ${outcome.installed.version} are in force; existing learners are re-mapped in the background (change ${outcome.changeId}).`);
      await loadHistory(history, editor);
    } catch (e) {
      if (e.body && e.body.check) editor.show(e.body.check);
      throw e;
    }
  }));

  replace(body,
    plugin && plugin.active ? h('p', { class: 'callout warning' }, 'A mapping plugin is installed and maps this tenant\'s users: rules applied here take over only when it is removed or disabled (see ', h('a', { href: '#/plugins' }, 'the plugin'), ').') : null,
    section('Document',
      h('p', { class: 'hint' },
        mapping.mapper === 'rules' ? 'The rules in force are loaded below. ' : 'No rules are installed: the default mapping applies. ',
        'Changes are checked as you type. Preview shows what applying would change for every learner; nothing changes until you apply.',
        threshold != null ? ` Applying asks for confirmation when more than ${threshold}% of learners would lose something.` : ''),
      editor.element,
      h('div', { class: 'actions' }, previewButton, applyButton, revert, dirty)),
    previewOut,
    tryOnOne(editor),
    history);
  await loadHistory(history, editor);
}

/** "Provision on demand" without applying: one learner explained under the document in the editor. */
function tryOnOne(editor) {
  const who = h('input', { type: 'text', autocomplete: 'off', required: true, class: 'wide' });
  const button = h('button', { type: 'submit', class: 'button' }, 'Explain');
  const out = h('div');
  const form = h('form', { class: 'search', 'aria-label': 'Explain one learner under this document' },
    field('Learner (SCIM id or user name)', who),
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const id = who.value.trim();
    const text = editor.text();
    if (!id) return;
    if (!text.trim()) { fail('The document is empty: write rules first.'); return; }
    busy(button, async () => {
      replace(out, loading('Explaining…'));
      try {
        const x = await api('POST', `/learners/${encodeURIComponent(id)}/explain`, { body: text, contentType: 'text/plain; charset=utf-8' });
        replace(out, explainSection(x, `Why, under this document: ${x.user ? x.user.userName : id}`));
        say(`Explained ${x.user ? x.user.userName : id} under the document in the editor; nothing was applied.`);
      } catch (e) {
        replace(out);
        if (e.body && e.body.check) editor.show(e.body.check);
        throw e;
      }
    });
  });
  return section('Try it on one learner',
    h('p', { class: 'hint' }, 'Shows what the document in the editor would give one learner, rule by rule, and what it would change. Nothing is applied.'),
    form, out);
}

async function loadHistory(holder, editor) {
  const mapping = await api('GET', '/mapping');
  const rollback = h('button', { type: 'button', class: 'button' }, 'Roll back');
  const reset = h('button', { type: 'button', class: 'button' }, 'Use default mapping');
  rollback.addEventListener('click', () => busy([rollback, reset], async () => {
    const outcome = await changeWithConfirmation({ method: 'POST', path: '/mapping/rollback', what: 'roll back to the previous rules' });
    if (!outcome) return;
    say(`Rolled back: version ${outcome.installed.version} is in force (change ${outcome.changeId}).`);
    const fresh = await api('GET', '/mapping');
    if (fresh.current && fresh.current.document) editor.set(fresh.current.document);
    await loadHistory(holder, editor);
  }));
  reset.addEventListener('click', () => busy([rollback, reset], async () => {
    const outcome = await changeWithConfirmation({ method: 'DELETE', path: '/mapping', what: 'return to the default mapping' });
    if (!outcome) return;
    say(`The default mapping is in force (version ${outcome.installed.version}, change ${outcome.changeId}).`);
    await loadHistory(holder, editor);
  }));
  const list = mapping.history || [];
  replace(holder, section('History',
    h('p', { class: 'hint' }, 'Every installed version, newest first. Roll back installs again the version before the one in force',
      list.length > 1 ? ` (version ${list[1].version}, ${list[1].sha256 ? 'rules' : 'the default mapping'}).` : '.'),
    table({
      caption: 'Installed rules versions',
      captionHidden: true,
      columns: [
        { label: 'Version', cell: (v) => String(v.version), rowHeader: true, className: 'num' },
        { label: 'Mapping', cell: (v) => (v.sha256 ? 'Rules' : 'Default mapping') },
        { label: 'Installed', cell: (v) => time(v.installed_at) },
        { label: 'By', cell: (v) => v.installed_by },
        { label: 'SHA-256', cell: (v) => shortHash(v.sha256) },
        { label: 'State', cell: (v) => (v === list[0] ? badge('current', 'good') : h('span', { class: 'muted' }, 'earlier')) },
      ],
      rows: list,
      empty: 'No rules were ever installed.',
    }),
    h('div', { class: 'actions' }, rollback, list.length && list[0].sha256 ? reset : null)));
}

/** The textarea with line numbers, checked as typed. */
function makeEditor(initial) {
  const area = h('textarea', {
    id: 'rules-document', class: 'code', wrap: 'off', spellcheck: 'false', autocomplete: 'off',
    autocapitalize: 'off', rows: '22', 'aria-describedby': 'rules-check-summary rules-diagnostics',
  });
  area.value = initial;
  const gutter = h('div', { class: 'gutter', 'aria-hidden': 'true' });
  const summary = h('p', { id: 'rules-check-summary', class: 'check-summary' });
  const diagnostics = h('ul', { id: 'rules-diagnostics', class: 'diagnostics' });
  const region = h('div', { class: 'check', 'aria-live': 'polite' }, summary, diagnostics);
  let marked = new Map();
  let timer = null;
  let seq = 0;
  let saved = initial;
  const listeners = [];
  const changed = () => listeners.forEach((f) => f());

  const drawGutter = () => {
    const lines = area.value.split('\n').length;
    const frag = [];
    for (let i = 1; i <= lines; i += 1) {
      const d = marked.get(i);
      frag.push(h('div', { class: d ? `line line-${d}` : 'line' }, d ? `${i} !` : String(i)));
    }
    replace(gutter, ...frag);
    gutter.scrollTop = area.scrollTop;
  };

  const goTo = (line, column) => {
    const lines = area.value.split('\n');
    let offset = 0;
    for (let i = 0; i < Math.min(line - 1, lines.length); i += 1) offset += lines[i].length + 1;
    const at = offset + Math.max(0, (column || 1) - 1);
    area.focus();
    area.setSelectionRange(at, Math.max(at, offset + (lines[line - 1] || '').length));
  };

  const show = (report) => {
    marked = new Map();
    const list = report.diagnostics || [];
    for (const d of list) {
      if (d.line > 0 && marked.get(d.line) !== 'error') marked.set(d.line, d.severity === 'error' ? 'error' : 'warning');
    }
    const errors = list.filter((d) => d.severity === 'error').length;
    const warnings = list.length - errors;
    if (report.valid && list.length === 0) replace(summary, badge('valid'), ` No problems: ${count(report.rules, 'rule')}.`);
    else if (report.valid) replace(summary, badge('valid'), ` ${count(report.rules, 'rule')}, ${count(warnings, 'warning')}.`);
    else replace(summary, badge('error'), ` ${count(errors, 'error')}${warnings ? `, ${count(warnings, 'warning')}` : ''}: nothing can be applied until ${errors === 1 ? 'it is' : 'they are'} fixed.`);
    area.setAttribute('aria-invalid', report.valid ? 'false' : 'true');
    replace(diagnostics, ...list.map((d) => {
      const where = d.line > 0 ? `Line ${d.line}, column ${d.column}` : 'Document';
      const jump = d.line > 0 ? h('button', { type: 'button', class: 'link-button' }, where) : h('span', null, where);
      if (d.line > 0) jump.addEventListener('click', () => goTo(d.line, d.column));
      return h('li', { class: `diagnostic diagnostic-${d.severity}` }, badge(d.severity), ' ', jump, ': ', d.message);
    }));
    drawGutter();
  };

  const check = async () => {
    const mine = ++seq;
    const text = area.value;
    if (!text.trim()) {
      show({ valid: false, rules: 0, diagnostics: [{ severity: 'error', line: 0, column: 0, message: 'The document is empty.' }] });
      return;
    }
    // The last result stays until this one answers; busy holds announcements meanwhile.
    region.setAttribute('aria-busy', 'true');
    try {
      const report = await api('POST', '/mapping/check', { body: text, contentType: 'text/plain; charset=utf-8' });
      if (mine === seq) show(report);
    } catch (e) {
      if (mine !== seq) return;
      if (e.status === 429) { timer = setTimeout(check, 1000); return; }
      if (e.body && e.body.check) show(e.body.check);
      else replace(summary, `The check could not run: ${e.detail || e.message}`);
    } finally {
      if (mine === seq) region.removeAttribute('aria-busy');
    }
  };

  area.addEventListener('input', () => {
    drawGutter();
    changed();
    clearTimeout(timer);
    timer = setTimeout(check, DEBOUNCE_MS);
  });
  area.addEventListener('scroll', () => { gutter.scrollTop = area.scrollTop; });
  drawGutter();
  check();

  const element = h('div', { class: 'editor-block' },
    h('label', { for: area.id }, 'Rules document (TOML or JSON)'),
    h('div', { class: 'editor' }, gutter, area),
    region);
  return {
    element,
    text: () => area.value,
    /** Replaces the text with rules now in force. */
    set: (text) => { area.value = text; saved = text; drawGutter(); check(); changed(); },
    saved: () => saved,
    markSaved: (text) => { saved = text; changed(); },
    onChange: (f) => listeners.push(f),
    show,
  };
}
