// The shell: hash routing between the three views (#/chat[/id], #/library, #/search), the
// theme switch and the sign-in button. Each view is built on first visit and kept alive, so
// an answer keeps streaming and uploads keep progressing while another view is shown.

import * as auth from './auth.js';
import { h, icon } from './dom.js';
import { startStatus } from './status.js';
import { mountChat } from './chat.js';
import { mountLibrary } from './library.js';
import { mountSearch } from './search.js';

const views = {
  chat: { mount: mountChat, instance: null },
  library: { mount: mountLibrary, instance: null },
  search: { mount: mountSearch, instance: null },
};

function route() {
  const [name = 'chat', ...rest] = window.location.hash.replace(/^#\/?/, '').split('/');
  const viewName = views[name] ? name : 'chat';
  for (const [key, view] of Object.entries(views)) {
    const section = document.getElementById(`view-${key}`);
    const active = key === viewName;
    section.hidden = !active;
    document.querySelector(`.tabs a[data-view="${key}"]`)?.toggleAttribute('aria-current', active);
    if (active) {
      document.querySelector(`.tabs a[data-view="${key}"]`)?.setAttribute('aria-current', 'page');
      if (!view.instance) view.instance = view.mount(section);
      view.instance.show?.(rest.map(decodeURIComponent));
    }
  }
  document.title = `${viewName[0].toUpperCase()}${viewName.slice(1)} · thinkbank`;
}

const THEMES = ['system', 'light', 'dark'];

function setupTheme() {
  const button = document.getElementById('theme-toggle');
  const glyphs = { system: 'system', light: 'sun', dark: 'moon' };
  const apply = (theme) => {
    if (theme === 'system') delete document.documentElement.dataset.theme;
    else document.documentElement.dataset.theme = theme;
    button.setAttribute('aria-label', `Theme: ${theme}. Change theme`);
    button.title = `Theme: ${theme}`;
    button.replaceChildren(icon(glyphs[theme]));
  };
  let current = document.documentElement.dataset.theme || 'system';
  apply(current);
  button.addEventListener('click', () => {
    current = THEMES[(THEMES.indexOf(current) + 1) % THEMES.length];
    try {
      if (current === 'system') localStorage.removeItem('thinkbank.theme');
      else localStorage.setItem('thinkbank.theme', current);
    } catch {
      // Storage disabled: the choice lasts for this page only.
    }
    apply(current);
  });
}

function setupAuthButton() {
  const button = document.getElementById('auth-button');
  const render = (signedIn) => {
    const label = signedIn ? 'Sign out' : 'Sign in';
    button.replaceChildren(icon(signedIn ? 'logout' : 'user'), h('span', { class: 'label' }, label));
    button.setAttribute('aria-label', label);
    button.title = signedIn ? 'Forget the stored credentials' : 'Sign in with an API key or a password';
    button.dataset.signedIn = String(signedIn);
  };
  render(Boolean(auth.token()));
  auth.onChange(render);
  button.addEventListener('click', () => {
    if (auth.token()) auth.signOut();
    else auth.signIn();
  });
}

setupTheme();
setupAuthButton();
startStatus();
window.addEventListener('hashchange', route);
route();
