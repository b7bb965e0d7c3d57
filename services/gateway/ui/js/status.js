// The health indicator: polls /readyz (worker, database, and the worker's answer mode) and
// shows a dot in the top bar with the details in a small panel.

import { h, clear } from './dom.js';

const POLL_MS = 15000;
let lastLlm = null;

export function startStatus() {
  const button = document.getElementById('status');
  const panel = document.getElementById('status-panel');
  let latest = null;
  const render = () => renderPanel(panel, latest);
  const poll = async () => {
    try {
      const response = await fetch('/readyz', { headers: { accept: 'application/json' } });
      latest = await response.json();
    } catch (error) {
      latest = { status: 'unreachable', checks: {}, error: error.message };
    }
    if (latest.llm) lastLlm = latest.llm;
    const ready = latest.status === 'ready';
    button.dataset.state = ready ? 'ok' : 'failing';
    button.querySelector('.status-text').textContent = ready ? 'Ready' : latest.status === 'unreachable' ? 'Offline' : 'Degraded';
    button.setAttribute('aria-label', `Service status: ${ready ? 'ready' : 'not ready'}. Show details`);
    render();
  };
  button.addEventListener('click', () => {
    const open = panel.hidden;
    panel.hidden = !open;
    button.setAttribute('aria-expanded', String(open));
    if (open) poll();
  });
  document.addEventListener('keydown', (event) => {
    if (event.key === 'Escape' && !panel.hidden) {
      panel.hidden = true;
      button.setAttribute('aria-expanded', 'false');
      button.focus();
    }
  });
  // Chat answers report their mode too; keep the panel current without a poll.
  window.addEventListener('thinkbank:llm', (event) => {
    lastLlm = event.detail;
    render();
  });
  poll();
  setInterval(poll, POLL_MS);
}

function renderPanel(panel, readiness) {
  clear(panel);
  if (!readiness) return;
  const rows = Object.entries(readiness.checks || {}).map(([name, check]) => h('li', {},
    h('span', { class: `dot ${check.status === 'ok' ? 'ok' : 'failing'}`, 'aria-hidden': 'true' }),
    h('strong', {}, name),
    ' ',
    // Latencies and error texts are shown to operators only; others see the status alone.
    check.status === 'ok'
      ? (typeof check.latency_ms === 'number' ? `ok · ${check.latency_ms.toFixed(1)} ms` : 'ok')
      : (check.error ? `${check.status}: ${check.error}` : check.status)));
  if (readiness.error) rows.push(h('li', {}, h('span', { class: 'dot failing', 'aria-hidden': 'true' }), `gateway unreachable: ${readiness.error}`));
  const llm = lastLlm
    ? (lastLlm.mode === 'extractive' ? 'extractive answers (no LLM configured)' : `${lastLlm.mode} · ${lastLlm.model}`)
    : 'unknown until the first answer';
  rows.push(h('li', {}, h('span', { class: 'dot neutral', 'aria-hidden': 'true' }), h('strong', {}, 'answers'), ' ', llm));
  panel.append(h('h2', {}, 'Status'), h('ul', { class: 'checks' }, rows));
}
