// The gateway's HTTP API: JSON calls and Server-Sent Events over fetch (chat is a POST, and
// EventSource cannot send the Authorization header), with the token from auth.js and one
// retry after signing in when the gateway answers 401.

import { authHeaders, signIn } from './auth.js';

/** An HTTP failure in the API's error shape: `code`, `message`, `status`, `requestId`. */
export class ApiError extends Error {
  constructor(status, body) {
    const detail = body?.error || {};
    super(detail.message || `HTTP ${status}`);
    this.status = status;
    this.code = detail.code || 'http_error';
    this.requestId = detail.request_id || '';
  }
}

/** fetch() with credentials; on 401, asks the user to sign in and retries once. */
export async function send(path, options = {}) {
  for (let attempt = 0; ; attempt++) {
    const headers = { ...(options.headers || {}), ...authHeaders() };
    const response = await fetch(path, { ...options, headers, credentials: 'same-origin' });
    if (response.status !== 401 || attempt > 0) {
      if (!response.ok) {
        const body = await response.json().catch(() => null);
        throw new ApiError(response.status, body);
      }
      return response;
    }
    const body = await response.json().catch(() => null);
    const signedIn = await signIn(body?.error?.message || 'This thinkbank needs you to sign in.');
    if (!signedIn) throw new ApiError(401, body);
  }
}

export async function getJson(path, options = {}) {
  const response = await send(path, options);
  return response.status === 204 ? null : response.json();
}

export function postJson(path, body, options = {}) {
  return getJson(path, {
    ...options,
    method: options.method || 'POST',
    headers: { 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
  });
}

/**
 * Reads a text/event-stream response, calling `onEvent({event, data, id})` for each event
 * as it arrives (data parsed as JSON when it is JSON). Resolves when the stream ends.
 */
export async function readSse(response, onEvent) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  const parser = new SseParser(onEvent);
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    parser.feed(value);
  }
  parser.feed('\n\n');
}

/** The SSE wire format (WHATWG HTML §9.2): fields per line, a blank line ends an event. */
export class SseParser {
  constructor(onEvent) {
    this.onEvent = onEvent;
    this.buffer = '';
    this.reset();
  }

  reset() {
    this.event = '';
    this.data = [];
    this.id = '';
  }

  feed(text) {
    this.buffer += text;
    const lines = this.buffer.split(/\r\n|\r|\n/);
    this.buffer = lines.pop();
    for (const line of lines) this.line(line);
  }

  line(line) {
    if (line === '') {
      if (this.data.length) {
        const raw = this.data.join('\n');
        let data = raw;
        try { data = JSON.parse(raw); } catch { /* not JSON: keep the text */ }
        this.onEvent({ event: this.event || 'message', data, id: this.id });
      }
      this.reset();
      return;
    }
    if (line.startsWith(':')) return;
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (field === 'event') this.event = value;
    else if (field === 'data') this.data.push(value);
    else if (field === 'id') this.id = value;
  }
}

/** Opens an SSE stream (GET or POST with a JSON body) and relays its events. */
export async function stream(path, { body, signal, onEvent }) {
  const options = body === undefined
    ? { method: 'GET', headers: { accept: 'text/event-stream' }, signal }
    : {
      method: 'POST',
      headers: { 'content-type': 'application/json', accept: 'text/event-stream' },
      body: JSON.stringify(body),
      signal,
    };
  const response = await send(path, options);
  await readSse(response, onEvent);
}

/** Uploads one file as multipart; resolves with `{asset, deduplicated}`. */
export function upload(file) {
  const form = new FormData();
  form.append('file', file, file.name);
  return getJson('/api/v1/assets', { method: 'POST', body: form });
}
