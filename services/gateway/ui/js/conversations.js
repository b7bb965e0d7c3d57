// The conversation list: new, open (continue), rename (PATCH /api/v1/conversations/{id}) and
// delete, most recently updated first.

import { h, clear, formatTime, announce, icon } from './dom.js';
import * as api from './api.js';

export class ConversationList {
  constructor({ onOpen, onNew, onDeleted }) {
    this.onOpen = onOpen;
    this.onDeleted = onDeleted;
    this.selected = null;
    this.items = h('ul', { class: 'conversation-items' });
    this.error = h('p', { class: 'form-error', role: 'alert', hidden: true });
    this.el = h('aside', { class: 'conversations', 'aria-label': 'Conversations' },
      h('button', { type: 'button', class: 'primary new-chat', id: 'new-chat', onclick: onNew }, icon('plus'), 'New chat'),
      h('h2', { class: 'sr-only' }, 'Conversations'),
      this.error,
      this.items);
  }

  select(id) {
    this.selected = id;
    for (const li of this.items.children) {
      const current = li.dataset.id === id;
      li.classList.toggle('selected', current);
      const open = li.querySelector('.conversation-open');
      if (current) open?.setAttribute('aria-current', 'true');
      else open?.removeAttribute('aria-current');
    }
  }

  async refresh(selected = this.selected) {
    this.selected = selected;
    try {
      const data = await api.getJson('/api/v1/conversations?page_size=100');
      this.error.hidden = true;
      clear(this.items).append(...data.conversations.map((c) => this.item(c)));
      if (!data.conversations.length) this.items.append(h('li', { class: 'muted empty' }, 'No conversations yet.'));
      this.select(this.selected);
    } catch (error) {
      this.error.hidden = false;
      this.error.textContent = `Cannot load conversations: ${error.message}`;
    }
  }

  item(conversation) {
    const title = conversation.title || 'Untitled';
    const open = h('button', {
      type: 'button', class: 'conversation-open', title,
      onclick: () => this.onOpen(conversation.id),
    }, h('span', { class: 'conversation-title' }, title),
    h('span', { class: 'conversation-time muted' }, formatTime(conversation.updated_at)));
    const li = h('li', { dataset: { id: conversation.id } });
    const rename = h('button', {
      type: 'button', class: 'icon-button small', 'aria-label': `Rename “${title}”`, title: 'Rename',
      onclick: () => this.startRename(li, conversation),
    }, icon('pencil'));
    const remove = h('button', {
      type: 'button', class: 'icon-button small', 'aria-label': `Delete “${title}”`, title: 'Delete',
      onclick: () => this.confirmDelete(li, conversation),
    }, icon('trash'));
    li.append(open, h('span', { class: 'conversation-actions' }, rename, remove));
    return li;
  }

  startRename(li, conversation) {
    const input = h('input', { type: 'text', value: conversation.title, 'aria-label': 'New title', maxlength: '200' });
    const form = h('form', { class: 'rename-form' }, input,
      h('button', { type: 'submit', class: 'small primary' }, 'Save'),
      h('button', { type: 'button', class: 'small', onclick: () => this.refresh() }, 'Cancel'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const title = input.value.trim();
      if (!title) return;
      try {
        await api.postJson(`/api/v1/conversations/${encodeURIComponent(conversation.id)}`, { title }, { method: 'PATCH' });
        announce('Conversation renamed.');
      } catch (error) {
        announce(`Rename failed: ${error.message}`);
      }
      this.refresh();
    });
    input.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') { event.stopPropagation(); this.refresh(); }
    });
    clear(li).append(form);
    input.focus();
    input.select();
  }

  confirmDelete(li, conversation) {
    const yes = h('button', {
      type: 'button', class: 'small danger',
      onclick: async () => {
        try {
          await api.send(`/api/v1/conversations/${encodeURIComponent(conversation.id)}`, { method: 'DELETE' });
          announce('Conversation deleted.');
          this.onDeleted(conversation.id);
        } catch (error) {
          announce(`Delete failed: ${error.message}`);
        }
        this.refresh();
      },
    }, 'Delete');
    const no = h('button', { type: 'button', class: 'small', onclick: () => this.refresh() }, 'Cancel');
    clear(li).append(h('div', { class: 'confirm', role: 'group', 'aria-label': 'Confirm delete' },
      h('span', {}, `Delete “${conversation.title || 'Untitled'}”?`), yes, no));
    no.focus();
  }
}
