// What every browser test of the console shares: the seeded server's facts,
// Chromium, a signed-in page that records console errors, CSP violations and
// page errors, axe-core, keyboard helpers and screenshots.
//
// Run by `cargo test -p scim-host --test console` (tests/console/main.rs),
// which starts and seeds the server and sets the environment read here.

import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';

import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const axeSource = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

function env(name) {
  const v = process.env[name];
  assert.ok(v, `${name} is not set: run these tests with cargo test -p scim-host --test console`);
  return v;
}

/** The seeded server: `url`, tenants `a` and `b`, `plugin`, `rules` (tests/console/seed.rs). */
export const seed = JSON.parse(readFileSync(env('SCIM_CONSOLE_SEED'), 'utf8'));
export const url = env('SCIM_CONSOLE_URL');
const screenshots = env('SCIM_CONSOLE_SCREENSHOTS');
const docs = process.env.SCIM_CONSOLE_DOCS;

/** Debian's Chromium, headless; without its sandbox when run as root. */
export async function launch() {
  const args = [];
  if (process.getuid?.() === 0) args.push('--no-sandbox');
  return chromium.launch({ executablePath: env('SCIM_CHROMIUM'), headless: true, args });
}

/** The status in the browser's own console line for a refused request. */
const refusedRequest = /^Failed to load resource: the server responded with a status of (\d{3})/;

/**
 * A fresh browser context (no cookies) at 1280x800 and a page in it. Every
 * console error or warning, CSP violation and uncaught page error is kept
 * in `problems`; `allowRefusals(statuses)` lets the browser's own "Failed
 * to load resource" line for those statuses (401, 403 and 404 unless
 * given; `[]` for none) pass while a refusal is what the test expects,
 * such as the 409 that asks for a confirmation.
 */
export async function session(browser) {
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 }, baseURL: url });
  // Not subject to the page's CSP (it is injected by the browser):
  // violations are reported even where the console would not say so.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.violatedDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  // Generous for a debug build on a busy machine; a hang still ends.
  page.setDefaultTimeout(30000);
  const s = { context, page, problems: [], allowed: [] };
  page.on('console', (m) => {
    if (m.type() !== 'error' && m.type() !== 'warning') return;
    const text = m.text();
    const refused = text.match(refusedRequest);
    // A 429 asks the console to wait while the tenant's previous mapping
    // work ends, and it tries again: an answer it handles, not an error.
    if (refused && (s.allowed.includes(Number(refused[1])) || refused[1] === '429')) return;
    s.problems.push(`console ${m.type()} on ${page.url()}: ${text}`);
  });
  page.on('pageerror', (e) => s.problems.push(`page error on ${page.url()}: ${e.stack || e}`));
  s.allowRefusals = (statuses = [401, 403, 404]) => {
    s.allowed = statuses;
  };
  s.assertClean = () => {
    assert.deepEqual(s.problems, [], `console errors, CSP violations or page errors:\n${s.problems.join('\n')}`);
  };
  s.close = async () => {
    await context.close();
  };
  return s;
}

/**
 * Opens the console and signs in with `token` through the form, by mouse or
 * keyboard alone. The console's first request asks whether a session
 * exists; before sign-in that is a 401, which the browser logs: allowed
 * here, and no refusal is allowed afterwards.
 */
export async function signIn(s, token, { keyboard = false } = {}) {
  const { page } = s;
  s.allowRefusals([401]);
  await page.goto('/admin');
  const field = page.getByLabel('Admin token');
  await field.waitFor();
  if (keyboard) {
    await tabTo(page, field);
    await page.keyboard.type(token);
    await tabTo(page, page.getByRole('button', { name: 'Sign in' }));
    await page.keyboard.press('Enter');
  } else {
    await field.fill(token);
    await page.getByRole('button', { name: 'Sign in' }).click();
  }
  await page.getByRole('button', { name: 'Sign out' }).waitFor();
  s.allowRefusals([]);
}

/** Follows a link of the console's navigation and waits for the page's heading. */
export async function go(page, link, heading = link) {
  await page.getByRole('navigation').getByRole('link', { name: link, exact: true }).click();
  await page.getByRole('heading', { level: 1, name: heading }).waitFor();
}

/**
 * Presses Tab (Shift+Tab with `back`) until `target` has the focus; fails
 * after `max` presses. The keyboard-only paths use this instead of clicks.
 */
export async function tabTo(page, target, { back = false, max = 60 } = {}) {
  await target.waitFor();
  for (let i = 0; i < max; i++) {
    if (await target.evaluate((el) => el === document.activeElement)) return;
    await page.keyboard.press(back ? 'Shift+Tab' : 'Tab');
  }
  const focused = await page.evaluate(() => document.activeElement?.outerHTML.slice(0, 200));
  assert.fail(`${max} presses of ${back ? 'Shift+Tab' : 'Tab'} never reached ${target}; focus is on ${focused}`);
}

/** Whether `target` has the focus. */
export async function focused(target) {
  return target.evaluate((el) => el === document.activeElement);
}

/**
 * Runs axe-core on the page; fails on any serious or critical violation,
 * listing them. Also fails on text a script leaked by accident ("null",
 * "undefined", "[object Object]", "NaN" shown as a value).
 */
export async function checkA11y(page, what) {
  const leaked = await page.evaluate(() => document.body.innerText.split('\n')
    .map((line) => line.trim())
    .filter((line) => ['null', 'undefined', 'NaN'].includes(line) || /\[object \w+\]|\bundefined\b|\bNaN\b/.test(line)));
  assert.deepEqual(leaked, [], `${what}: text leaked from a script`);
  // evaluate() runs outside the page's CSP, which forbids injected scripts.
  await page.evaluate(axeSource);
  const results = await page.evaluate(() => window.axe.run(document, { resultTypes: ['violations'] }));
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  const list = bad
    .map((v) => `- ${v.impact} ${v.id}: ${v.help}\n${v.nodes.map((n) => `    ${n.target.join(' ')}: ${n.failureSummary?.replace(/\n/g, ' ')}`).join('\n')}`)
    .join('\n');
  assert.equal(bad.length, 0, `axe-core on ${what}: serious or critical violations:\n${list}`);
}

/**
 * Saves a screenshot of the viewport as target/console-screenshots/NAME.png
 * (and host-harness/docs/console with SCIM_CONSOLE_SCREENSHOTS_UPDATE=1),
 * scrolled first so that `top` starts the view, or `bottom` ends it, when
 * given.
 */
export async function screenshot(page, name, { top, bottom } = {}) {
  if (top) await top.evaluate((el) => el.scrollIntoView({ block: 'start' }));
  if (bottom) await bottom.evaluate((el) => el.scrollIntoView({ block: 'end' }));
  mkdirSync(screenshots, { recursive: true });
  const path = join(screenshots, `${name}.png`);
  await page.screenshot({ path, animations: 'disabled', caret: 'hide' });
  if (docs) {
    mkdirSync(docs, { recursive: true });
    copyFileSync(path, join(docs, `${name}.png`));
  }
}

/** A request to the admin API with a tenant's admin token (the CLI's way in, not the browser's). */
export async function api(token, method, path, body) {
  const headers = { authorization: `Bearer ${token}` };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(`${url}${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    // not JSON
  }
  return { status: r.status, text, json };
}

/** `fetch` from inside the page (with its session cookie): status and parsed body. */
export async function pageFetch(page, path, init = {}) {
  return page.evaluate(
    async ({ path, init }) => {
      const r = await fetch(path, init);
      const text = await r.text();
      let json = null;
      try {
        json = JSON.parse(text);
      } catch {
        // not JSON
      }
      return { status: r.status, json, text };
    },
    { path, init },
  );
}
