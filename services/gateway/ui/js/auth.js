// Credentials: one bearer token (an API key `tb_…` or a JWT from POST /api/v1/auth/login),
// kept in sessionStorage only — never in localStorage, cookies or a URL — and sent on every
// API call. A 401 opens the sign-in dialog; the call is retried once the user signed in.

import { h } from './dom.js';

const KEY = 'thinkbank.token';
let pendingSignIn = null;
const listeners = new Set();

export function token() {
  try {
    return sessionStorage.getItem(KEY) || '';
  } catch {
    return '';
  }
}

function setToken(value) {
  try {
    if (value) sessionStorage.setItem(KEY, value);
    else sessionStorage.removeItem(KEY);
  } catch {
    // Storage disabled: the token lives only as long as this call chain; nothing to do.
  }
  for (const fn of listeners) fn(Boolean(value));
}

export function onChange(fn) {
  listeners.add(fn);
}

export function signOut() {
  setToken('');
}

/** Headers carrying the token, if there is one. */
export function authHeaders() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

/**
 * Shows the sign-in dialog; resolves true once a token is stored, false when dismissed.
 * Concurrent 401s share one dialog.
 */
export function signIn(reason = '') {
  if (!pendingSignIn) {
    pendingSignIn = openDialog(reason).finally(() => { pendingSignIn = null; });
  }
  return pendingSignIn;
}

function openDialog(reason) {
  return new Promise((resolve) => {
    const error = h('p', { class: 'form-error', role: 'alert' });
    const keyInput = h('input', { id: 'signin-key', type: 'password', autocomplete: 'off', placeholder: 'tb_…' });
    const userInput = h('input', { id: 'signin-user', type: 'text', autocomplete: 'username' });
    const passInput = h('input', { id: 'signin-pass', type: 'password', autocomplete: 'current-password' });
    // Usernames are unique per tenant: accounts outside the default tenant name theirs.
    const tenantInput = h('input', { id: 'signin-tenant', type: 'text', autocomplete: 'organization', placeholder: 'optional' });
    const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
    const cancel = h('button', { type: 'button', value: 'cancel' }, 'Cancel');
    const form = h('form', { class: 'signin', method: 'dialog' },
      h('h2', {}, 'Sign in to thinkbank'),
      reason ? h('p', { class: 'muted' }, reason) : null,
      h('label', { for: 'signin-key' }, 'API key'),
      keyInput,
      h('p', { class: 'divider' }, h('span', {}, 'or')),
      h('label', { for: 'signin-user' }, 'Username'),
      userInput,
      h('label', { for: 'signin-pass' }, 'Password'),
      passInput,
      h('label', { for: 'signin-tenant' }, 'Tenant'),
      tenantInput,
      error,
      h('div', { class: 'actions' }, cancel, submit),
    );
    const dialog = h('dialog', { class: 'modal', 'aria-labelledby': 'signin-title' }, form);
    form.querySelector('h2').id = 'signin-title';
    let signedIn = false;
    const close = () => { dialog.close(); };
    cancel.addEventListener('click', close);
    dialog.addEventListener('close', () => { dialog.remove(); resolve(signedIn); });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      error.textContent = '';
      const key = keyInput.value.trim();
      if (key) {
        setToken(key);
        signedIn = true;
        close();
        return;
      }
      if (!userInput.value || !passInput.value) {
        error.textContent = 'Enter an API key, or a username and password.';
        return;
      }
      submit.disabled = true;
      try {
        const response = await fetch('/api/v1/auth/login', {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            username: userInput.value,
            password: passInput.value,
            ...(tenantInput.value.trim() ? { tenant: tenantInput.value.trim() } : {}),
          }),
        });
        const body = await response.json().catch(() => ({}));
        if (!response.ok || !body.access_token) {
          error.textContent = body?.error?.message || `Sign-in failed (HTTP ${response.status}).`;
          return;
        }
        setToken(body.access_token);
        signedIn = true;
        close();
      } catch (e) {
        error.textContent = `Sign-in failed: ${e.message}`;
      } finally {
        submit.disabled = false;
      }
    });
    document.body.append(dialog);
    dialog.showModal();
    keyInput.focus();
  });
}
