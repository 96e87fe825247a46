// Building the page from data without ever parsing data as HTML: every
// text goes through textContent or a text node, every style through a class
// (the Content-Security-Policy allows no inline style or script).

/** An element: `h('a', {href: '#/x', class: 'link', on: {click: f}}, 'text', child)`. */
export function h(tag, props, ...children) {
  const el = document.createElement(tag);
  setProps(el, props);
  append(el, children);
  return el;
}

const SVG = 'http://www.w3.org/2000/svg';

/** An SVG element, with attributes only. */
export function svg(tag, props, ...children) {
  const el = document.createElementNS(SVG, tag);
  setProps(el, props);
  append(el, children);
  return el;
}

function setProps(el, props) {
  if (!props) return;
  for (const [key, value] of Object.entries(props)) {
    if (value === null || value === undefined || value === false) continue;
    if (key === 'on') {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (key === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (key === 'text') {
      el.textContent = String(value);
    } else if (key === 'value' && 'value' in el) {
      el.value = value;
    } else if (key === 'checked' || key === 'disabled' || key === 'selected' || key === 'multiple') {
      el[key] = Boolean(value);
    } else if (key.startsWith('on')) {
      throw new Error('event handlers go through `on`, never attributes');
    } else if (key === 'style') {
      throw new Error('styles go through classes');
    } else {
      el.setAttribute(key, value === true ? '' : String(value));
    }
  }
}

/** Appends children: nodes, strings and numbers (as text), arrays; skips null. */
export function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false) continue;
    if (Array.isArray(c)) append(el, c);
    else if (c instanceof Node) el.appendChild(c);
    else el.appendChild(document.createTextNode(String(c)));
  }
  return el;
}

/** Replaces every child of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  return append(el, children);
}

let ids = 0;
/** A fresh element id for label/aria wiring. */
export function uid(prefix = 'id') {
  ids += 1;
  return `${prefix}-${ids}`;
}

/**
 * A table with a caption and column headers:
 * `table({caption, columns: [{label, cell: row => node|string, className}], rows, empty})`.
 * A column may be `rowHeader: true` to make its cells `<th scope="row">`;
 * `rowClass(row)` names a class for a row.
 */
export function table({ caption, captionHidden = false, columns, rows, empty = 'Nothing to show.', className, rowClass }) {
  const head = h('thead', null, h('tr', null, columns.map((c) =>
    h('th', { scope: 'col', class: c.className }, c.label))));
  const body = h('tbody');
  if (rows.length === 0) {
    body.appendChild(h('tr', null, h('td', { colspan: columns.length, class: 'empty' }, empty)));
  }
  for (const row of rows) {
    body.appendChild(h('tr', { class: rowClass ? rowClass(row) : null }, columns.map((c) => {
      const content = c.cell(row);
      return c.rowHeader
        ? h('th', { scope: 'row', class: c.className }, content)
        : h('td', { class: c.className }, content);
    })));
  }
  const wrap = h('div', { class: ['table-wrap', className] },
    h('table', null,
      h('caption', { class: captionHidden ? 'visually-hidden' : null }, caption),
      head, body));
  wrap.dataset.label = caption;
  scrollWatch().observe(wrap);
  return wrap;
}

let watcher = null;

/**
 * A table wider than its column scrolls sideways; keyboard users must be
 * able to scroll it too, so while it overflows its wrapper is a labelled,
 * focusable region (and only then: a tab stop per table would be noise).
 */
function scrollWatch() {
  if (!watcher) {
    watcher = new ResizeObserver((entries) => {
      for (const { target } of entries) {
        if (target.scrollWidth > target.clientWidth + 1) {
          target.setAttribute('tabindex', '0');
          target.setAttribute('role', 'region');
          target.setAttribute('aria-label', `${target.dataset.label} (scrolls sideways)`);
        } else {
          target.removeAttribute('tabindex');
          target.removeAttribute('role');
          target.removeAttribute('aria-label');
        }
      }
    });
  }
  return watcher;
}

/** A labelled form field: returns {field, input}. `kind` is an element name. */
export function field(label, input, hint) {
  const id = input.id || uid('f');
  input.id = id;
  let hintEl = null;
  if (hint) {
    hintEl = h('p', { class: 'hint', id: `${id}-hint` }, hint);
    input.setAttribute('aria-describedby', hintEl.id);
  }
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), input, hintEl);
  return wrap;
}

/** A `<select>` of [value, label] pairs. */
export function select(options, value, props = {}) {
  return h('select', props, options.map(([v, l]) => h('option', { value: v, selected: v === value }, l)));
}

/** A definition list of [term, description] pairs; descriptions may be nodes. */
export function dl(pairs, className = 'facts') {
  return h('dl', { class: className }, pairs.filter(Boolean).flatMap(([t, d]) => [h('dt', null, t), h('dd', null, d)]));
}

/** A section titled by a heading it is labelled with. */
export function section(title, ...children) {
  const id = uid('s');
  return h('section', { class: 'panel', 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}

const pad = (n, w = 2) => String(n).padStart(w, '0');

/** A stored UTC time shown in the browser's zone as `YYYY-MM-DD HH:MM:SS`, in a `<time>`. */
export function time(iso) {
  if (!iso) return h('span', { class: 'muted' }, '—');
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return h('span', null, iso);
  const text = `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  return h('time', { datetime: iso, title: iso }, text);
}

/** A status as a word on a coloured badge: never colour alone. */
export function badge(text, tone) {
  const t = tone || toneOf(text);
  return h('span', { class: `badge badge-${t}` }, text);
}

function toneOf(text) {
  switch (String(text).toLowerCase()) {
    case 'success': case 'active': case 'delivered': case 'valid': case 'in force': case 'yes': return 'good';
    case 'failure': case 'failed': case 'disabled': case 'error': case 'removed': case 'no': return 'bad';
    case 'pending': case 'suspended': case 'warning': case 'skipped': return 'warn';
    default: return 'neutral';
  }
}

/** A value of the sync log's old/new columns as readable text. */
export function valueText(v) {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && !Array.isArray(v) && 'name' in v && 'source' in v) return `${v.name} (${v.source})`;
  return JSON.stringify(v);
}

/** A short form of a SHA-256 hex string, whole in its title. */
export function shortHash(hex) {
  if (!hex) return h('span', { class: 'muted' }, '—');
  return h('code', { title: hex }, hex.slice(0, 12));
}

/** Plural: `count(3, 'learner')` → "3 learners". */
export function count(n, one, many = `${one}s`) {
  return `${n} ${n === 1 ? one : many}`;
}
