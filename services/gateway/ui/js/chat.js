// The chat view: the conversation list, the messages of the open conversation, and the
// composer. Answers stream from POST /api/v1/chat (sources, deltas, final, error, done);
// Stop calls POST /api/v1/chat/{id}/stop, which really stops the worker and the LLM.

import { h, clear, announce, copyText, icon } from './dom.js';
import * as api from './api.js';
import { AnswerView, userMessage, citingSentence } from './message.js';
import { PassagePanel } from './passage.js';
import { ConversationList } from './conversations.js';

export function mountChat(section) {
  const chat = new ChatView(section);
  return { show: (args) => chat.show(args[0] || null) };
}

class ChatView {
  constructor(section) {
    this.section = section;
    this.conversationId = null;
    this.running = null; // {controller, conversationId, answer}
    this.lastQuestion = '';
    this.answers = [];
    this.passage = new PassagePanel();
    this.list = new ConversationList({
      onOpen: (id) => { window.location.hash = `#/chat/${encodeURIComponent(id)}`; },
      onNew: () => { window.location.hash = '#/chat'; this.open(null); },
      onDeleted: (id) => {
        if (id !== this.conversationId) return;
        window.location.hash = '#/chat';
        this.open(null);
      },
    });
    this.messages = h('div', { class: 'messages', role: 'region', 'aria-label': 'Conversation' });
    this.empty = h('div', { class: 'empty-chat' },
      h('h1', {}, 'Ask your documents'),
      h('p', { class: 'muted' }, 'Answers are written from your library and cite their sources as [n]. Click a citation to read the passage.'));
    this.input = h('textarea', {
      id: 'question', rows: '1', placeholder: 'Ask a question…', autocomplete: 'off',
      'aria-describedby': 'composer-hint',
    });
    this.sendButton = h('button', { type: 'submit', class: 'primary', id: 'send' }, 'Send');
    this.stopButton = h('button', { type: 'button', class: 'danger', id: 'stop', hidden: true, onclick: () => this.stop() }, 'Stop');
    this.form = h('form', { class: 'composer', onsubmit: (event) => { event.preventDefault(); this.submit(); } },
      h('label', { for: 'question', class: 'sr-only' }, 'Question'),
      this.input,
      this.sendButton,
      this.stopButton,
      h('p', { id: 'composer-hint', class: 'hint muted' }, 'Enter to send · Shift+Enter for a new line · Esc to stop'));
    this.input.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.input.addEventListener('input', () => this.autosize());
    section.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && this.running && this.passage.el.hidden) this.stop();
    });
    const toggle = h('button', {
      type: 'button', class: 'ghost small conversations-toggle', 'aria-expanded': 'false',
      onclick: (event) => {
        const open = section.classList.toggle('show-conversations');
        event.currentTarget.setAttribute('aria-expanded', String(open));
      },
    }, icon('menu'), 'Conversations');
    section.append(h('div', { class: 'chat-layout' },
      this.list.el,
      h('div', { class: 'chat-main' }, toggle, this.messages, this.form),
      this.passage.el));
    this.list.refresh();
  }

  autosize() {
    this.input.style.height = 'auto';
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  /** `#/chat/<id>` opens that conversation; plain `#/chat` returns to the one already open. */
  show(id) {
    if (id && id !== this.conversationId) this.open(id);
    else if (!id && this.conversationId) history.replaceState(null, '', `#/chat/${encodeURIComponent(this.conversationId)}`);
    else if (!id && !this.messages.childElementCount) this.open(null);
    this.input.focus();
  }

  async open(id) {
    this.section.classList.remove('show-conversations');
    this.conversationId = id;
    this.answers = [];
    this.lastQuestion = '';
    this.passage.close();
    this.list.select(id);
    clear(this.messages);
    if (!id) {
      this.messages.append(this.empty);
      return;
    }
    try {
      const data = await api.getJson(`/api/v1/conversations/${encodeURIComponent(id)}`);
      if (this.conversationId !== id) return;
      for (const message of data.messages) {
        if (message.role === 'user') {
          this.messages.append(userMessage(message.content));
          this.lastQuestion = message.content;
        } else {
          const answer = this.newAnswer();
          Object.assign(answer.model, message);
          answer.finish({ citations: message.citations, finish_reason: message.finish_reason, answer_mode: message.answer_mode, model: message.model });
        }
      }
      this.markLastRegenerable();
      this.scrollToEnd();
    } catch (error) {
      this.messages.append(h('p', { class: 'form-error', role: 'alert' }, `Cannot open the conversation: ${error.message}`));
    }
  }

  newAnswer() {
    const answer = new AnswerView({
      onCite: (n, button) => this.cite(answer, n, button),
      onCopy: async (view) => {
        const ok = await copyText(view.text());
        view.copyButton.textContent = ok ? 'Copied' : 'Copy failed';
        setTimeout(() => { view.copyButton.textContent = 'Copy'; }, 1500);
      },
      onRegenerate: () => this.ask(this.lastQuestion),
    });
    this.answers.push(answer);
    this.messages.append(answer.el);
    return answer;
  }

  markLastRegenerable() {
    this.answers.forEach((a, i) => a.setRegenerable(i === this.answers.length - 1 && !this.running));
  }

  cite(answer, n, button) {
    const check = answer.model.citations.find((c) => c.source_index === n);
    const sentence = button.classList.contains('cite') ? citingSentence(button) : '';
    this.passage.open({ n, sources: answer.model.sources, check, sentence, opener: button });
  }

  submit() {
    const question = this.input.value.trim();
    if (!question || this.running) return;
    this.input.value = '';
    this.autosize();
    this.ask(question);
  }

  async ask(question) {
    if (this.running || !question) return;
    this.empty.remove();
    this.lastQuestion = question;
    this.messages.append(userMessage(question));
    const answer = this.newAnswer();
    const controller = new AbortController();
    const run = { controller, conversationId: this.conversationId, answer, stopped: false };
    this.running = run;
    this.setRunning(true);
    this.scrollToEnd();
    const body = { question };
    if (this.conversationId) body.conversation_id = this.conversationId;
    let final = null;
    try {
      await api.stream('/api/v1/chat', {
        body,
        signal: controller.signal,
        onEvent: ({ event, data }) => {
          if (event === 'sources') {
            answer.model.sources = data.sources || [];
            run.conversationId = data.conversation_id;
            if (!this.conversationId && this.running === run) {
              this.conversationId = data.conversation_id;
              history.replaceState(null, '', `#/chat/${encodeURIComponent(data.conversation_id)}`);
              this.list.refresh(data.conversation_id);
            }
            answer.update();
          } else if (event === 'delta') {
            answer.model.content += data.text;
            answer.update();
            this.scrollToEnd(true);
          } else if (event === 'final') {
            final = data;
            window.dispatchEvent(new CustomEvent('thinkbank:llm', { detail: { mode: data.answer_mode, model: data.model } }));
          } else if (event === 'error') {
            const code = data?.error?.code;
            if (code === 'cancelled') answer.model.finish_reason = 'cancelled';
            else answer.setNotice(`Error: ${data?.error?.message || 'the answer broke off'}`, 'error');
          }
        },
      });
    } catch (error) {
      if (error.name === 'AbortError') answer.model.finish_reason = 'cancelled';
      else answer.setNotice(`Error: ${error.message}`, 'error');
    }
    answer.finish(final);
    if (run.stopped) answer.setNotice('Stopped.', 'stopped');
    this.running = null;
    this.setRunning(false);
    this.markLastRegenerable();
    announce(run.stopped ? 'Answer stopped.' : 'Answer complete.');
    this.list.refresh(this.conversationId);
  }

  async stop() {
    const run = this.running;
    if (!run || run.stopped) return;
    run.stopped = true;
    this.stopButton.disabled = true;
    // The stop endpoint cancels the answer on the worker (and the LLM request); before the
    // conversation is known, or if this gateway no longer holds the stream, closing the
    // connection cancels it too.
    if (run.conversationId) {
      try {
        await api.send(`/api/v1/chat/${encodeURIComponent(run.conversationId)}/stop`, { method: 'POST' });
        return;
      } catch {
        // fall through to aborting the connection
      }
    }
    run.controller.abort();
  }

  setRunning(running) {
    this.sendButton.hidden = running;
    this.stopButton.hidden = !running;
    this.stopButton.disabled = false;
    this.form.dataset.running = String(running);
    if (running) this.stopButton.focus({ preventScroll: true });
    else if (document.activeElement === this.stopButton || document.activeElement === document.body) this.input.focus();
  }

  /** Keeps the newest text in view, unless the user scrolled up to read (`gentle`). */
  scrollToEnd(gentle = false) {
    const el = this.messages;
    const nearBottom = el.scrollHeight - el.scrollTop - el.clientHeight < 120;
    if (!gentle || nearBottom) el.scrollTop = el.scrollHeight;
  }
}
