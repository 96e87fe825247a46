// The console's shell: the session (sign-in, sign-out, expiry), the hash
// router and the navigation. Each page is a module under pages/ with
// `render(view, ctx)`.

import { api, setSession, whenUnauthorized } from './api.js';
import { h, replace, field } from './dom.js';
import { say, fail, clearMessages } from './ui.js';
import * as overview from './pages/overview.js';
import * as events from './pages/events.js';
import * as learner from './pages/learner.js';
import * as rules from './pages/rules.js';
import * as plugins from './pages/plugins.js';
import * as settings from './pages/settings.js';
import * as alerts from './pages/alerts.js';

/** [pattern, nav entry, page function]; the first match wins. */
const ROUTES = [
  [/^overview$/, 'overview', overview.render],
  [/^events$/, 'events', events.renderList],
  [/^events\/([^/]+)$/, 'events', events.renderDetail],
  [/^learners$/, 'learners', learner.renderSearch],
  [/^learners\/([^/]+)$/, 'learners', learner.renderLearner],
  [/^rules$/, 'rules', rules.render],
  [/^plugins$/, 'plugins', plugins.render],
  [/^settings$/, 'settings', settings.render],
  [/^alerts$/, 'alerts', alerts.render],
];

const APP = 'SCIM admin console';
let session = null;
let renders = 0;
let firstRender = true;

const view = () => document.getElementById('view');

/** The route of the current hash: its path and query. */
function current() {
  const hash = location.hash.replace(/^#\/?/, '');
  const [path, query = ''] = hash.split('?');
  return { path: path || 'overview', params: new URLSearchParams(query) };
}

/** Goes to `hash` (e.g. `#/events?failed=true`); renders even when unchanged. */
export function navigate(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

async function route() {
  if (!session) return;
  const { path, params } = current();
  const match = ROUTES.map(([re, nav, page]) => [path.match(re), nav, page]).find(([m]) => m);
  clearMessages();
  const token = ++renders;
  const target = h('div', { class: 'page' });
  replace(view(), target);
  const moveFocus = !firstRender;
  firstRender = false;
  const ctx = {
    params,
    id: match && match[0][1] ? decoded(match[0][1]) : null,
    navigate,
    stale: () => token !== renders,
    heading(text) {
      let h1 = target.querySelector('h1');
      if (!h1) {
        h1 = h('h1', { tabindex: '-1' });
        target.prepend(h1);
      }
      h1.textContent = text;
      document.title = `${text} — ${APP}`;
      if (moveFocus && token === renders && !target.dataset.focused) {
        target.dataset.focused = 'yes';
        h1.focus();
      }
      return h1;
    },
  };
  markNav(match ? match[1] : null);
  if (!match) {
    ctx.heading('Page not found');
    target.append(h('p', null, 'There is no such page in the console. ', h('a', { href: '#/overview' }, 'Go to the overview'), '.'));
    return;
  }
  try {
    await match[2](target, ctx);
  } catch (e) {
    if (token !== renders || (e && e.status === 401)) return;
    if (!target.querySelector('h1')) ctx.heading('Something went wrong');
    fail(e);
  }
}

/** A path segment decoded; a malformed escape is kept as typed. */
function decoded(segment) {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

function markNav(active) {
  for (const a of document.querySelectorAll('#nav a')) {
    if (a.dataset.route === active) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
}

function signedIn(s) {
  session = s;
  setSession(s);
  document.getElementById('tenant-name').textContent = s.tenant;
  document.getElementById('session').hidden = false;
  document.getElementById('nav').hidden = false;
  route();
}

function signedOut() {
  session = null;
  setSession(null);
  document.getElementById('session').hidden = true;
  document.getElementById('nav').hidden = true;
  markNav(null);
}

/** The sign-in form: the admin token goes in the body of one POST, nowhere else. */
function showSignIn(reason) {
  signedOut();
  clearMessages();
  renders += 1;
  const input = h('input', {
    type: 'password', autocomplete: 'off', spellcheck: 'false', required: true, class: 'wide',
  });
  const button = h('button', { type: 'submit', class: 'button primary' }, 'Sign in');
  const form = h('form', { method: 'post', class: 'signin', 'aria-labelledby': 'signin-title' },
    field('Admin token', input, ['The tenant\'s admin token, printed by ', h('code', null, 'scim-host tenant add'), ' or ', h('code', null, 'tenant rotate-token --admin'), '. It is exchanged for a session cookie and not kept by the page.']),
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value;
    if (!token) return;
    button.disabled = true;
    try {
      const s = await api('POST', '/session', { json: { token }, session: true });
      input.value = '';
      signedIn(s);
      say(`Signed in to tenant ${s.tenant}.`);
    } catch (e) {
      input.value = '';
      fail(e.status === 401 ? `Sign-in refused: ${e.detail}` : e);
      input.focus();
    } finally {
      button.disabled = false;
    }
  });
  document.title = `Sign in — ${APP}`;
  replace(view(), h('div', { class: 'page narrow' },
    h('h1', { id: 'signin-title' }, 'Sign in'),
    h('p', null, 'Sign in with your tenant\'s admin token to see its sync log, learners, rules and plugins.'),
    form));
  if (reason) say(reason);
  if (!firstRender) input.focus();
  firstRender = false;
}

async function signOut() {
  const button = document.getElementById('sign-out');
  button.disabled = true;
  try {
    await api('DELETE', '/session', { session: true });
  } catch (e) {
    if (e.status !== 401) {
      fail(e);
      button.disabled = false;
      return;
    }
  }
  button.disabled = false;
  showSignIn('Signed out.');
}

async function start() {
  whenUnauthorized(() => {
    if (session) showSignIn('Your session has ended. Sign in again to go on.');
  });
  document.getElementById('sign-out').addEventListener('click', signOut);
  window.addEventListener('hashchange', route);
  try {
    signedIn(await api('GET', '/session', { session: true }));
  } catch (e) {
    if (e.status === 401) showSignIn();
    else {
      replace(view(), h('div', { class: 'page' }, h('h1', null, 'The console cannot start')));
      fail(e);
    }
  }
}

start();
