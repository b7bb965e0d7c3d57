// The library: upload many files (drag and drop or the button), follow each one's stage live
// from GET /api/v1/assets/{id}/events, and list, filter, retry, cancel and delete documents.

import { h, clear, formatBytes, formatTime, announce } from './dom.js';
import * as api from './api.js';

const FINAL = new Set(['ready', 'failed', 'cancelled']);
// Browsers open at most 6 HTTP/1.1 connections per origin: keep most of them for the API.
const MAX_WATCHES = 3;
const MAX_UPLOADS = 2;

export function mountLibrary(section) {
  const library = new Library(section);
  return { show: () => library.load() };
}

class Library {
  constructor(section) {
    this.assets = new Map(); // id -> asset
    this.notes = new Map(); // id -> {text, kind}: duplicate notices and upload results
    this.pending = []; // uploads not answered yet: {key, file, error}
    this.watching = new Set();
    this.waiting = [];
    this.nextPage = null;
    this.fileInput = h('input', { type: 'file', multiple: true, id: 'file-input', class: 'sr-only', onchange: () => this.uploadAll([...this.fileInput.files]) });
    const drop = h('div', { class: 'dropzone', id: 'dropzone' },
      h('p', {}, h('strong', {}, 'Drop files here'), ' or '),
      h('label', { for: 'file-input', class: 'button primary', tabindex: '0', role: 'button',
        onkeydown: (e) => { if (e.key === 'Enter' || e.key === ' ') { e.preventDefault(); this.fileInput.click(); } } }, 'Choose files'),
      this.fileInput,
      h('p', { class: 'muted small' }, 'Text, Markdown, HTML, PDF, DOCX and images. Identical files are stored once.'));
    for (const type of ['dragenter', 'dragover']) {
      drop.addEventListener(type, (e) => { e.preventDefault(); drop.classList.add('over'); });
    }
    for (const type of ['dragleave', 'drop']) drop.addEventListener(type, () => drop.classList.remove('over'));
    drop.addEventListener('drop', (e) => {
      e.preventDefault();
      this.uploadAll([...(e.dataTransfer?.files || [])]);
    });
    this.nameFilter = h('input', { type: 'search', id: 'name-filter', placeholder: 'Filter by name', oninput: () => this.render() });
    this.statusFilter = h('select', { id: 'status-filter', onchange: () => this.load() },
      ['', 'queued', 'processing', 'ready', 'failed', 'cancelled'].map((s) => h('option', { value: s }, s || 'Any status')));
    this.typeFilter = h('select', { id: 'type-filter', onchange: () => this.render() }, h('option', { value: '' }, 'Any type'));
    this.rows = h('tbody');
    this.count = h('p', { class: 'muted small', 'aria-live': 'polite' });
    this.more = h('button', { type: 'button', class: 'ghost', hidden: true, onclick: () => this.load(true) }, 'Load more');
    section.append(h('div', { class: 'page' },
      h('h1', {}, 'Library'),
      drop,
      h('div', { class: 'filters', role: 'search' },
        h('label', { for: 'name-filter', class: 'sr-only' }, 'Filter by name'), this.nameFilter,
        h('label', { for: 'status-filter' }, 'Status'), this.statusFilter,
        h('label', { for: 'type-filter' }, 'Type'), this.typeFilter),
      this.count,
      h('div', { class: 'table-wrap' }, h('table', { class: 'assets' },
        h('thead', {}, h('tr', {}, ['Name', 'Type', 'Size', 'Status', 'Chunks', 'Updated', ''].map((t) => h('th', { scope: 'col' }, t)))),
        this.rows)),
      this.more));
    this.poller = setInterval(() => this.pollUnwatched(), 3000);
  }

  async load(more = false) {
    const params = new URLSearchParams({ page_size: '200' });
    if (this.statusFilter.value) params.set('status', this.statusFilter.value);
    if (more && this.nextPage) params.set('page_token', this.nextPage);
    try {
      const data = await api.getJson(`/api/v1/assets?${params}`);
      if (!more) this.assets.clear();
      for (const asset of data.assets) this.assets.set(asset.id, asset);
      this.nextPage = data.next_page_token;
      this.more.hidden = !this.nextPage;
      for (const asset of data.assets) if (!FINAL.has(asset.status)) this.watch(asset.id);
      this.render();
    } catch (error) {
      this.count.textContent = `Cannot load the library: ${error.message}`;
    }
  }

  uploadAll(files) {
    this.fileInput.value = '';
    const queue = files.map((file) => ({ key: `${file.name}-${Math.random()}`, file, error: null }));
    this.pending.push(...queue);
    this.render();
    const worker = async () => {
      for (let job = queue.shift(); job; job = queue.shift()) await this.uploadOne(job);
    };
    for (let i = 0; i < Math.min(MAX_UPLOADS, queue.length); i++) worker();
  }

  async uploadOne(job) {
    try {
      const { asset, deduplicated } = await api.upload(job.file);
      this.pending = this.pending.filter((p) => p !== job);
      this.assets.set(asset.id, asset);
      if (deduplicated) {
        this.notes.set(asset.id, { text: `Already in your library (same bytes as “${asset.filename}”); not stored again.`, kind: 'info' });
        announce(`${job.file.name} is already in the library.`);
      } else {
        announce(`${job.file.name} uploaded.`);
      }
      if (!FINAL.has(asset.status)) this.watch(asset.id);
    } catch (error) {
      job.error = error.message;
      announce(`${job.file.name} was refused: ${error.message}`);
    }
    this.render();
  }

  /** Follows an asset's progress over SSE (bounded; the rest are polled). */
  watch(id) {
    if (this.watching.has(id) || this.waiting.includes(id)) return;
    if (this.watching.size >= MAX_WATCHES) { this.waiting.push(id); return; }
    this.watching.add(id);
    api.stream(`/api/v1/assets/${encodeURIComponent(id)}/events`, {
      onEvent: ({ event, data }) => {
        if (event === 'asset' && data) { this.assets.set(data.id, data); this.renderSoon(); }
      },
    }).catch(() => { /* the poller takes over */ }).finally(() => {
      this.watching.delete(id);
      const next = this.waiting.shift();
      if (next) this.watch(next);
      this.renderSoon();
    });
  }

  async pollUnwatched() {
    const stale = [...this.assets.values()].filter((a) => !FINAL.has(a.status) && !this.watching.has(a.id));
    for (const asset of stale.slice(0, 10)) {
      try {
        this.assets.set(asset.id, await api.getJson(`/api/v1/assets/${encodeURIComponent(asset.id)}`));
      } catch (error) {
        if (error.status === 404) this.assets.delete(asset.id);
      }
    }
    if (stale.length) this.render();
  }

  renderSoon() {
    if (this.renderTimer) return;
    this.renderTimer = setTimeout(() => { this.renderTimer = null; this.render(); }, 50);
  }

  async act(asset, action) {
    try {
      if (action === 'delete') {
        await api.send(`/api/v1/assets/${encodeURIComponent(asset.id)}`, { method: 'DELETE' });
        this.assets.delete(asset.id);
        this.notes.delete(asset.id);
        announce(`${asset.filename} deleted.`);
      } else {
        const updated = await api.postJson(`/api/v1/assets/${encodeURIComponent(asset.id)}/${action}`, {});
        this.assets.set(updated.id, updated);
        this.notes.delete(asset.id);
        if (!FINAL.has(updated.status)) this.watch(updated.id);
      }
    } catch (error) {
      this.notes.set(asset.id, { text: `${action} failed: ${error.message}`, kind: 'error' });
    }
    this.render();
  }

  render() {
    const name = this.nameFilter.value.trim().toLowerCase();
    const type = this.typeFilter.value;
    const all = [...this.assets.values()].sort((a, b) => (b.created_at || '').localeCompare(a.created_at || ''));
    this.renderTypes(all);
    const shown = all.filter((a) => (!name || a.filename.toLowerCase().includes(name)) && (!type || a.media_type === type));
    clear(this.rows);
    for (const job of this.pending) {
      if (name && !job.file.name.toLowerCase().includes(name)) continue;
      this.rows.append(this.pendingRow(job));
    }
    for (const asset of shown) this.rows.append(this.row(asset));
    if (!shown.length && !this.pending.length) {
      this.rows.append(h('tr', {}, h('td', { colspan: '7', class: 'muted empty' }, all.length ? 'No document matches the filters.' : 'No documents yet: drop some files above.')));
    }
    this.count.textContent = `${shown.length} of ${all.length} document${all.length === 1 ? '' : 's'}${this.nextPage ? ' (more on the server)' : ''}`;
  }

  renderTypes(all) {
    const types = [...new Set(all.map((a) => a.media_type).filter(Boolean))].sort();
    const current = this.typeFilter.value;
    const existing = [...this.typeFilter.options].map((o) => o.value).slice(1);
    if (existing.join() === types.join()) return;
    clear(this.typeFilter).append(h('option', { value: '' }, 'Any type'), ...types.map((t) => h('option', { value: t }, t)));
    this.typeFilter.value = types.includes(current) ? current : '';
  }

  pendingRow(job) {
    const status = job.error
      ? h('td', {}, h('span', { class: 'badge failed' }, 'refused'), h('p', { class: 'reason' }, job.error))
      : h('td', {}, h('span', { class: 'badge processing' }, 'uploading'), h('progress', { 'aria-label': `Uploading ${job.file.name}` }));
    const dismiss = job.error
      ? h('button', { type: 'button', class: 'small', onclick: () => { this.pending = this.pending.filter((p) => p !== job); this.render(); } }, 'Dismiss')
      : null;
    return h('tr', { class: 'pending', dataset: { filename: job.file.name, status: job.error ? 'refused' : 'uploading' } },
      h('th', { scope: 'row' }, job.file.name), h('td', {}, job.file.type || '—'), h('td', {}, formatBytes(job.file.size)),
      status, h('td', {}, '—'), h('td', {}, ''), h('td', { class: 'row-actions' }, dismiss));
  }

  row(asset) {
    const note = this.notes.get(asset.id);
    const inProgress = !FINAL.has(asset.status);
    const percent = Math.round((asset.progress || 0) * 100);
    const status = h('td', {},
      h('span', { class: `badge ${asset.status}` }, asset.status),
      inProgress ? h('span', { class: 'stage' }, ` ${asset.stage} · ${percent}%`) : null,
      inProgress ? h('progress', { max: '100', value: String(percent), 'aria-label': `${asset.filename}: ${asset.stage} ${percent}%` }) : null,
      asset.status === 'failed' && asset.error ? h('p', { class: 'reason' }, asset.error) : null,
      note ? h('p', { class: `note ${note.kind}` }, note.text) : null);
    const button = (label, action, cls = 'small') => h('button', {
      type: 'button', class: cls, 'aria-label': `${label} ${asset.filename}`,
      onclick: () => this.act(asset, action),
    }, label);
    const actions = [];
    if (inProgress) actions.push(button('Cancel', 'cancel'));
    if (asset.status === 'failed' || asset.status === 'cancelled') actions.push(button('Retry', 'reprocess'));
    actions.push(button('Delete', 'delete', 'small danger-ghost'));
    return h('tr', { dataset: { id: asset.id, filename: asset.filename, status: asset.status } },
      h('th', { scope: 'row' }, asset.filename),
      h('td', {}, asset.media_type || '—'),
      h('td', {}, formatBytes(asset.size_bytes)),
      status,
      h('td', {}, asset.status === 'ready' ? String(asset.chunk_count) : '—'),
      h('td', {}, formatTime(asset.updated_at)),
      h('td', { class: 'row-actions' }, actions));
  }
}
