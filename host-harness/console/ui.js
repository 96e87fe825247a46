// What every page shares for talking back to the admin: the live regions
// for progress and errors, the confirmation dialog, and a busy button.

import { h, append, uid } from './dom.js';

const statusRegion = () => document.getElementById('status');
const alertRegion = () => document.getElementById('alert');

/** Announces progress or success (polite live region); an earlier error is cleared. */
export function say(text) {
  const el = statusRegion();
  alertRegion().replaceChildren();
  el.replaceChildren(h('p', null, text));
}

/** Shows an error (assertive `role="alert"` region; an earlier success is cleared); takes text or an error. */
export function fail(error) {
  const el = alertRegion();
  statusRegion().replaceChildren();
  const text = typeof error === 'string' ? error : (error.detail || error.message || String(error));
  const status = error && error.status ? `Error ${error.status}: ` : '';
  el.replaceChildren(h('p', null, status + text));
}

/** Clears both regions (on navigation). */
export function clearMessages() {
  for (const el of [statusRegion(), alertRegion()]) el.replaceChildren();
}

/**
 * Asks for confirmation in a modal `<dialog>`; resolves true on Confirm,
 * false on Cancel or Escape. `body` is text, a node or an array of them.
 */
export function confirm({ title, body, confirmLabel = 'Confirm', danger = false }) {
  return new Promise((resolve) => {
    const titleId = uid('dialog-title');
    const cancel = h('button', { type: 'button', class: 'button' }, 'Cancel');
    const ok = h('button', { type: 'button', class: ['button', danger ? 'danger' : 'primary'] }, confirmLabel);
    const dialog = h('dialog', { class: 'dialog', 'aria-labelledby': titleId },
      h('h2', { id: titleId }, title),
      append(h('div', { class: 'dialog-body' }), [typeof body === 'string' ? h('p', null, body) : body]),
      h('div', { class: 'actions' }, ok, cancel));
    const opener = document.activeElement;
    let answer = false;
    ok.addEventListener('click', () => { answer = true; dialog.close(); });
    cancel.addEventListener('click', () => dialog.close());
    dialog.addEventListener('close', () => {
      dialog.remove();
      if (opener && opener.isConnected && typeof opener.focus === 'function') opener.focus();
      resolve(answer);
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  });
}

/**
 * Runs `work` while `button` shows it is busy (disabled, `aria-busy`);
 * errors are shown in the alert region and answered as `undefined`.
 */
export async function busy(button, work) {
  const buttons = Array.isArray(button) ? button : [button];
  for (const b of buttons) if (b) { b.disabled = true; b.setAttribute('aria-busy', 'true'); }
  try {
    return await work();
  } catch (e) {
    if (e && e.status === 401) return undefined; // the sign-in form is shown
    fail(e);
    return undefined;
  } finally {
    for (const b of buttons) if (b) { b.disabled = false; b.removeAttribute('aria-busy'); }
  }
}

/**
 * Fills `holder` by `work()`; when it fails, the section says so in place
 * (and in the alert region) instead of loading forever.
 */
export async function guard(holder, what, work) {
  try {
    await work();
  } catch (e) {
    if (e && e.status === 401) return;
    holder.replaceChildren(h('p', { class: 'error-text' }, `${what} could not be loaded: ${e.detail || e.message}`));
    fail(e);
  }
}

/** A text shown while a section loads. */
export function loading(what = 'Loading…') {
  return h('p', { class: 'muted loading' }, what);
}
