// One chat message on screen: the user's question, or an answer rendered from Markdown with
// its `[n]` citations as buttons (marked verified, quoted, unverified or fabricated once the final
// event has checked them), its sources, and copy / regenerate actions.

import { h, clear, perFrame } from './dom.js';
import { renderMarkdown } from './markdown.js';

export function userMessage(text) {
  return h('article', { class: 'message user', 'aria-label': 'Your question' },
    h('div', { class: 'bubble' }, text));
}

/**
 * An answer. `model` holds {content, sources, citations, finish_reason, answer_mode, model};
 * call `update()` after changing it (renders at most once per frame while streaming) and
 * `finish()` when it is complete. `onCite(n, button)` opens a source.
 */
export class AnswerView {
  constructor({ onCite, onCopy, onRegenerate }) {
    this.model = { content: '', sources: [], citations: [], finish_reason: null };
    this.onCite = onCite;
    this.body = h('div', { class: 'answer-body markdown', 'aria-live': 'polite', 'aria-busy': 'true' });
    this.notice = h('p', { class: 'answer-notice', hidden: true });
    this.sourcesEl = h('div', { class: 'sources' });
    this.meta = h('p', { class: 'answer-meta muted' });
    this.copyButton = h('button', { type: 'button', class: 'ghost small', onclick: () => onCopy(this) }, 'Copy');
    this.regenButton = h('button', { type: 'button', class: 'ghost small', onclick: () => onRegenerate(this) }, 'Regenerate');
    this.actions = h('div', { class: 'answer-actions', hidden: true }, this.copyButton, this.regenButton);
    this.el = h('article', { class: 'message assistant', dataset: { state: 'streaming' }, 'aria-label': 'Answer' },
      h('div', { class: 'bubble' },
        this.body,
        h('p', { class: 'typing', 'aria-hidden': 'true' }, h('span'), h('span'), h('span')),
        this.notice,
        this.sourcesEl,
        this.meta,
        this.actions));
    this.update = perFrame(() => this.render());
  }

  /** The answer text as the user sees it, for copying. */
  text() {
    return this.model.content;
  }

  setNotice(text, kind) {
    this.notice.hidden = !text;
    this.notice.textContent = text || '';
    this.notice.className = `answer-notice ${kind || ''}`;
  }

  render() {
    const { content, citations, sources } = this.model;
    const checked = new Map(citations.map((c) => [c.source_index, c]));
    const known = new Set(sources.map((s) => s.index));
    const citation = (n) => citeButton(n, known.has(n), checked.get(n), this.onCite, sourceName(sources, n));
    clear(this.body).append(renderMarkdown(content, { citation }));
    this.renderSources();
  }

  renderSources() {
    const { sources, citations } = this.model;
    clear(this.sourcesEl);
    if (!sources.length) return;
    const cited = new Set(citations.map((c) => c.source_index));
    const chips = sources.map((source) => {
      const hit = source.hit || {};
      const page = hit.position?.page ? ` · p. ${hit.position.page}` : '';
      return h('li', {}, h('button', {
        type: 'button',
        class: `source-chip${cited.has(source.index) ? ' cited' : ''}`,
        onclick: (event) => this.onCite(source.index, event.currentTarget),
        'aria-label': `Source ${source.index}: ${hit.filename || 'unknown'}${page}`,
      }, h('span', { class: 'n' }, String(source.index)), `${hit.filename || 'unknown'}${page}`));
    });
    this.sourcesEl.append(h('details', { class: 'sources-list' },
      h('summary', {}, `${sources.length} source${sources.length === 1 ? '' : 's'}`),
      h('ol', {}, chips)));
  }

  /** Marks the answer complete (or cut short) and shows its summary and actions. */
  finish(final) {
    if (final) {
      Object.assign(this.model, {
        citations: final.citations || [],
        finish_reason: final.finish_reason,
        answer_mode: final.answer_mode,
        model: final.model,
        abstained: !!final.abstained,
      });
    }
    this.render();
    this.el.dataset.state = 'done';
    this.body.setAttribute('aria-busy', 'false');
    this.actions.hidden = false;
    const parts = [];
    if (this.model.answer_mode === 'extractive') parts.push('extractive answer (quoted from your documents)');
    else if (this.model.model) parts.push(this.model.model);
    if (this.model.abstained) parts.push('nothing relevant found; the sources below are the closest passages');
    const unverified = this.model.citations.filter((c) => !c.verified && !c.quoted).length;
    if (unverified) parts.push(`${unverified} citation${unverified === 1 ? '' : 's'} not verified`);
    if (final?.timings?.total_ms) parts.push(`${(final.timings.total_ms / 1000).toFixed(1)} s`);
    this.meta.textContent = parts.join(' · ');
    if (this.model.finish_reason === 'cancelled') this.setNotice('Stopped.', 'stopped');
    else if (this.model.finish_reason === 'length') this.setNotice('The answer hit the length limit.', 'warning');
    else if (this.model.finish_reason === 'error') this.setNotice('The answer broke off.', 'error');
  }

  setRegenerable(enabled) {
    this.regenButton.hidden = !enabled;
  }
}

function sourceName(sources, n) {
  const source = sources.find((s) => s.index === n);
  return source?.hit?.filename || '';
}

function citeButton(n, exists, check, onCite, filename) {
  let state = 'pending';
  let label = `Source ${n}${filename ? `: ${filename}` : ''}`;
  if (!exists || check?.fabricated) {
    state = 'fabricated';
    label = `Citation ${n} names no source`;
  } else if (check && check.verified) {
    state = 'verified';
    label += ' (verified)';
  } else if (check && check.quoted) {
    // The source's own words: nothing was generated, so nothing was verified.
    state = 'quoted';
    label += ' (quoted)';
  } else if (check) {
    state = 'unverified';
    label += ` (not verified: ${Math.round((check.support || 0) * 100)}% support)`;
  }
  const button = h('button', {
    type: 'button',
    class: `cite ${state}`,
    'aria-label': label,
    title: label,
    dataset: { source: String(n) },
    disabled: state === 'fabricated',
  }, String(n));
  if (state === 'unverified') button.append(h('span', { class: 'cite-flag', 'aria-hidden': 'true' }, '?'));
  button.addEventListener('click', () => onCite(n, button));
  return button;
}

const STOP_WORDS = new Set(('the and for are was were with that this from have has had not but its'
  + ' you your they their them then than into onto over under what which when where who why how'
  + ' can could would should will shall may might must does did done been being also such these'
  + ' those there here about after before while each other some any all most more very just only').split(' '));

/** Lower-cased content words, plural `s` stripped: how the citation check compares text. */
export function contentWords(text) {
  const words = String(text).toLowerCase().match(/\p{L}[\p{L}\p{N}'-]*/gu) || [];
  return new Set(words.filter((w) => w.length > 2 && !STOP_WORDS.has(w)).map(stem));
}

export function stem(word) {
  return word.length > 3 && word.endsWith('s') && !word.endsWith('ss') ? word.slice(0, -1) : word;
}

/** The sentence a citation button belongs to: the text before it in its block, last sentence. */
export function citingSentence(button) {
  const block = button.closest('p, li, td, th, blockquote, h3, h4, h5, h6');
  if (!block) return '';
  const range = document.createRange();
  range.setStart(block, 0);
  range.setEndBefore(button);
  const before = range.toString().replace(/\s*(\d+\??\s*)+$/, '');
  const sentences = before.split(/(?<=[.!?])\s+/).filter((s) => s.replace(/[\d\s?]/g, ''));
  return sentences.at(-1) || before;
}
