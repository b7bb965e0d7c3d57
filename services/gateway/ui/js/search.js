// The search view: a query in hybrid, vector or keyword mode, hits with their highlighted
// snippets, and an "explain" table of each hit's ranks, scores and fused contributions.

import { h, clear, markedText } from './dom.js';
import * as api from './api.js';

export function mountSearch(section) {
  const view = new SearchView(section);
  return { show: () => view.input.focus() };
}

class SearchView {
  constructor(section) {
    this.input = h('input', { type: 'search', id: 'search-query', placeholder: 'Search your documents…', required: true });
    this.mode = h('select', { id: 'search-mode' },
      h('option', { value: 'hybrid' }, 'Hybrid'),
      h('option', { value: 'vector' }, 'Vector'),
      h('option', { value: 'keyword' }, 'Keyword'));
    this.explain = h('input', { type: 'checkbox', id: 'search-explain' });
    this.results = h('div', { class: 'results', 'aria-live': 'polite' });
    this.summary = h('p', { class: 'muted small' });
    const form = h('form', { class: 'search-form', role: 'search', onsubmit: (e) => { e.preventDefault(); this.run(); } },
      h('label', { for: 'search-query', class: 'sr-only' }, 'Query'),
      this.input,
      h('label', { for: 'search-mode', class: 'sr-only' }, 'Mode'),
      this.mode,
      h('label', { class: 'check' }, this.explain, ' Explain'),
      h('button', { type: 'submit', class: 'primary' }, 'Search'));
    this.mode.addEventListener('change', () => this.input.value.trim() && this.run());
    this.explain.addEventListener('change', () => this.input.value.trim() && this.run());
    section.append(h('div', { class: 'page' }, h('h1', {}, 'Search'), form, this.summary, this.results));
  }

  async run() {
    const query = this.input.value.trim();
    if (!query) return;
    const serial = (this.serial = (this.serial || 0) + 1);
    this.results.setAttribute('aria-busy', 'true');
    try {
      const data = await api.postJson('/api/v1/search', {
        query, mode: this.mode.value, top_k: 20, explain: this.explain.checked,
      });
      if (serial !== this.serial) return;
      this.render(data);
    } catch (error) {
      if (serial !== this.serial) return;
      clear(this.results).append(h('p', { class: 'form-error', role: 'alert' }, error.message));
      this.summary.textContent = '';
    } finally {
      this.results.setAttribute('aria-busy', 'false');
    }
  }

  render(data) {
    clear(this.results);
    const ms = data.timings?.total_ms;
    this.summary.textContent = `${data.hits.length} hit${data.hits.length === 1 ? '' : 's'} · ${data.mode}${ms ? ` · ${ms.toFixed(0)} ms` : ''}`;
    if (!data.hits.length) {
      this.results.append(h('p', { class: 'muted' }, 'Nothing found. Try other words, or another mode.'));
      return;
    }
    this.results.append(h('ol', { class: 'hits' }, data.hits.map((hit, i) => this.hit(hit, i + 1, data.mode))));
  }

  hit(hit, rank, mode) {
    const position = hit.position || {};
    const where = [
      position.page ? `page ${position.page}` : null,
      position.headings?.length ? position.headings.join(' › ') : null,
    ].filter(Boolean).join(' · ');
    const snippet = hit.snippet || hit.text || '';
    const full = h('details', { class: 'hit-full' }, h('summary', {}, 'Full passage'), h('p', { class: 'passage-text' }, hit.text || ''));
    return h('li', { class: 'hit', dataset: { assetId: hit.asset_id } },
      h('div', { class: 'hit-head' },
        h('span', { class: 'rank' }, `#${rank}`),
        h('strong', { class: 'filename' }, hit.filename),
        h('span', { class: 'muted small' }, hit.media_type || ''),
        h('span', { class: 'score', title: `${mode} score` }, Number(hit.score).toFixed(4))),
      where ? h('p', { class: 'where muted small' }, where) : null,
      h('p', { class: 'snippet' }, markedText(snippet)),
      full,
      hit.explain ? explainTable(hit.explain) : null);
  }
}

function explainTable(e) {
  const fmt = (v, digits = 4) => (v === null || v === undefined ? '—' : Number(v).toFixed(digits));
  const row = (leg, rank, raw, rawName, contribution) => h('tr', {},
    h('th', { scope: 'row' }, leg),
    h('td', {}, rank ?? '—'),
    h('td', {}, raw === null || raw === undefined ? '—' : `${fmt(raw)} (${rawName})`),
    h('td', {}, fmt(contribution, 5)));
  return h('table', { class: 'explain' },
    h('caption', {}, 'Why this rank'),
    h('thead', {}, h('tr', {}, ['Leg', 'Rank', 'Raw score', 'Contribution'].map((t) => h('th', { scope: 'col' }, t)))),
    h('tbody', {},
      row('vector', e.vector_rank, e.vector_distance, 'cosine distance', e.vector_contribution),
      row('keyword', e.keyword_rank, e.keyword_score, 'ts_rank_cd', e.keyword_contribution)));
}
