// The cited passage panel: which document, page and headings a source comes from, the
// passage text (as text, never markup) with the words it shares with the citing sentence
// highlighted, and whether the citation check verified it.

import { h, clear, icon } from './dom.js';
import { contentWords, stem } from './message.js';

export class PassagePanel {
  constructor() {
    this.title = h('h2', { id: 'passage-title', tabindex: '-1' });
    this.content = h('div', { class: 'passage-content' });
    this.closeButton = h('button', { type: 'button', class: 'icon-button', 'aria-label': 'Close passage', onclick: () => this.close() }, icon('close'));
    this.el = h('aside', { class: 'passage-panel', 'aria-labelledby': 'passage-title', hidden: true },
      h('div', { class: 'passage-head' }, this.title, this.closeButton),
      this.content);
    this.returnFocus = null;
    this.el.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') this.close();
    });
  }

  /** Shows source `n` of `sources`; `check` is its citation result, `sentence` the citing text. */
  open({ n, sources, check, sentence, opener }) {
    const source = sources.find((s) => s.index === n);
    const hit = source?.hit;
    this.returnFocus = opener || null;
    clear(this.content);
    this.title.textContent = `Source ${n}`;
    if (!hit) {
      this.content.append(h('p', { class: 'warning' }, `The answer cites [${n}], but there is no source ${n}: the model invented it.`));
    } else {
      const position = hit.position || {};
      const facts = [
        ['Document', hit.filename || 'unknown'],
        position.page ? ['Page', String(position.page)] : null,
        position.headings?.length ? ['Section', position.headings.join(' › ')] : null,
        ['Relevance', Number(hit.score).toFixed(3)],
      ].filter(Boolean);
      this.content.append(
        h('dl', { class: 'facts' }, facts.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)])),
        verdict(check),
        h('blockquote', { class: 'passage-text', dataset: { chunkId: hit.chunk_id || '' } }, highlighted(hit.text || '', sentence)),
      );
    }
    this.el.hidden = false;
    this.el.dataset.source = String(n);
    this.title.focus();
  }

  close() {
    this.el.hidden = true;
    this.returnFocus?.focus();
  }
}

function verdict(check) {
  if (!check) return h('p', { class: 'verdict muted' }, 'Not cited, or not checked yet.');
  if (check.fabricated) return h('p', { class: 'verdict error' }, 'Fabricated: this citation names no source.');
  if (check.quoted) return h('p', { class: 'verdict muted' }, '“ Quoted — these are the passage\'s own words (an extractive answer): nothing was generated, so there was nothing to verify.');
  const support = `${Math.round((check.support || 0) * 100)}% of the citing sentence's words occur in this passage`;
  return check.verified
    ? h('p', { class: 'verdict ok' }, `✓ Verified — ${support}.`)
    : h('p', { class: 'verdict warning' }, `⚠ Not verified — only ${support}.`);
}

/** The passage as text, with words shared with `sentence` in <mark>. */
function highlighted(text, sentence) {
  const wanted = contentWords(sentence || '');
  const out = document.createDocumentFragment();
  for (const part of String(text).split(/(\p{L}[\p{L}\p{N}'-]*)/u)) {
    if (part && wanted.has(stem(part.toLowerCase()))) out.append(h('mark', {}, part));
    else if (part) out.append(document.createTextNode(part));
  }
  return out;
}
