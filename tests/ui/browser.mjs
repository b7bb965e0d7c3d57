// The thinkbank UI in headless Chromium, against the real gateway and worker that
// services/gateway/tests/ui_browser.rs started (with the fake OpenAI-compatible LLM scripted
// in the same order as the questions asked here). Run by that test; exits non-zero on failure.
//
// Covers: upload with live progress to READY, duplicates, refusals and failures with retry;
// search in every mode with highlights and explain; a streamed answer painted incrementally,
// rendered Markdown, verified / unverified / fabricated citations and the cited passage; copy,
// rename, regenerate, Stop, delete; hostile documents and model output rendered inert; the
// sign-in dialog and the token kept out of URLs; screenshots of every page in both themes.

import { writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import {
  API_KEY, ARTIFACTS, BASE, log, assert, assertEqual, eventually, launch, watchForTrouble, screenshots,
  recordAnswerPaints, paintedFrames, apiGet, required,
} from './lib.mjs';

const STOP_QUESTION = process.env.THINKBANK_UI_STOP_QUESTION || 'Tell me everything about tides';
const TIDES = '# Tides\n\nOcean tides are caused mainly by the gravitational pull of the Moon on the Earth. '
  + 'The Sun adds a smaller pull, so the highest tides come at new and full moon. Most coasts see two high tides a day.\n';
const COFFEE = 'Espresso is brewed by forcing hot water through finely ground coffee beans under high pressure.\n';
const EVIL_NAME = 'payload <img src=x onerror=window.__pwned=9>.md';
const EVIL = '# Payload samples\n\nThis hostile content document must stay inert. <script>window.__pwned = "doc"</script>\n'
  + '<img src=x onerror="window.__pwned=\'img\'"> [bad link](javascript:window.__pwned=\'link\')\n'
  + '<a href="javascript:alert(1)" onclick="window.__pwned=\'a\'">anchor</a>\n';

const file = (name, text, mimeType = 'text/plain') => ({ name, mimeType, buffer: Buffer.from(text) });

async function rowStatus(page, filename) {
  return page.evaluate((name) => {
    const row = [...document.querySelectorAll('#view-library tbody tr')].find((r) => r.dataset.filename === name);
    return row ? row.dataset.status : null;
  }, filename);
}

async function library(page) {
  log('library: upload, live progress, duplicates, refusals, failures');
  await page.click('nav a[data-view="library"]');
  await page.waitForSelector('#dropzone');
  // Every status each row shows, in order: the live progress as the user sees it.
  await page.evaluate(() => {
    window.__rowStatuses = {};
    const record = () => {
      for (const row of document.querySelectorAll('#view-library tbody tr[data-filename]')) {
        const seen = (window.__rowStatuses[row.dataset.filename] ||= []);
        if (seen.at(-1) !== row.dataset.status) seen.push(row.dataset.status);
      }
    };
    new MutationObserver(record).observe(document.querySelector('#view-library tbody'), { childList: true, subtree: true, attributes: true });
  });
  await page.setInputFiles('#file-input', [
    file('tides.md', TIDES, 'text/markdown'),
    file('coffee.txt', COFFEE),
    file(EVIL_NAME, EVIL, 'text/markdown'),
    file('broken.pdf', '%PDF-1.7\n1 0 obj << /Type /Catalog >> garbage without an end', 'application/pdf'),
  ]);
  for (const name of ['tides.md', 'coffee.txt', EVIL_NAME]) {
    await eventually(`${name} to reach ready`, async () => (await rowStatus(page, name)) === 'ready', 60000);
  }
  const seen = await page.evaluate(() => window.__rowStatuses['tides.md']);
  log(`tides.md went through: ${seen.join(' → ')}`);
  assertEqual(seen[0], 'uploading', 'a row appears while the file uploads');
  assertEqual(seen.at(-1), 'ready', 'the row reaches ready without a reload');
  assert(seen.some((st) => st === 'queued' || st === 'processing'), `the row shows the asset in progress: ${seen}`);
  const failed = await eventually('broken.pdf to fail', async () => (await rowStatus(page, 'broken.pdf')) === 'failed', 60000);
  assert(failed, 'the truncated PDF fails');
  const reason = await page.textContent('#view-library tr[data-filename="broken.pdf"] .reason');
  assert(reason && reason.length > 5, `a failure shows its reason, got ${JSON.stringify(reason)}`);
  const brokenBefore = (await apiGet('/api/v1/assets?page_size=200')).assets.find((a) => a.filename === 'broken.pdf');
  await page.click('#view-library tr[data-filename="broken.pdf"] button:has-text("Retry")');
  await eventually('the retried PDF to run and fail again', async () => {
    const asset = (await apiGet('/api/v1/assets?page_size=200')).assets.find((a) => a.filename === 'broken.pdf');
    return asset.status === 'failed' && asset.updated_at !== brokenBefore.updated_at
      && (await rowStatus(page, 'broken.pdf')) === 'failed';
  }, 60000);

  // Drag and drop: the same path as the button.
  await page.evaluate(() => {
    const data = new DataTransfer();
    data.items.add(new File(['# Lighthouses\n\nKeepers trimmed the lamp wicks every night.\n'], 'dropped.md', { type: 'text/markdown' }));
    const zone = document.getElementById('dropzone');
    for (const type of ['dragenter', 'dragover', 'drop']) {
      zone.dispatchEvent(new DragEvent(type, { dataTransfer: data, bubbles: true, cancelable: true }));
    }
  });
  await eventually('the dropped file to reach ready', async () => (await rowStatus(page, 'dropped.md')) === 'ready', 60000);

  // The same bytes again: a duplicate notice instead of a second document.
  await page.setInputFiles('#file-input', [file('tides.md', TIDES, 'text/markdown')]);
  await page.waitForSelector('#view-library tr[data-filename="tides.md"] .note.info');
  const rows = await page.$$eval('#view-library tbody tr[data-filename="tides.md"]', (r) => r.length);
  assertEqual(rows, 1, 'a duplicate upload does not add a row');
  // An archive is refused at upload, with the gateway's reason.
  await page.setInputFiles('#file-input', [{ name: 'archive.zip', mimeType: 'application/zip', buffer: Buffer.from('PK\u0003\u0004\u0014\u0000\u0000\u0000\u0008\u0000rest of a zip') }]);
  await page.waitForSelector('#view-library tr[data-filename="archive.zip"][data-status="refused"] .reason');

  // Filters: names as you type, status, type.
  await page.fill('#name-filter', 'tid');
  const named = await page.$$eval('#view-library tbody tr[data-id]', (r) => r.map((x) => x.dataset.filename));
  assertEqual(named.join(), 'tides.md', 'search-as-you-type over names');
  await page.fill('#name-filter', '');
  await page.selectOption('#type-filter', 'text/markdown');
  const typed = await page.$$eval('#view-library tbody tr[data-id]', (r) => r.map((x) => x.dataset.filename).sort());
  assertEqual(typed.join('|'), [EVIL_NAME, 'dropped.md', 'tides.md'].sort().join('|'), 'type filter');
  await page.selectOption('#type-filter', '');
  await page.selectOption('#status-filter', 'failed');
  await eventually('the status filter', async () => {
    const names = await page.$$eval('#view-library tbody tr[data-id]', (r) => r.map((x) => x.dataset.filename));
    return names.join() === 'broken.pdf';
  });
  await page.selectOption('#status-filter', '');
  await page.waitForSelector('#view-library tr[data-filename="coffee.txt"]');
  await screenshots(page, 'library');
}

async function search(page) {
  log('search: modes, highlights, explain');
  await page.click('nav a[data-view="search"]');
  await page.fill('#search-query', 'gravitational pull');
  await page.selectOption('#search-mode', 'keyword');
  await page.check('#search-explain');
  await page.press('#search-query', 'Enter');
  await page.waitForSelector('#view-search .hit');
  assertEqual(await page.textContent('#view-search .hit .filename'), 'tides.md', 'keyword search finds the document');
  assert(await page.$$eval('#view-search .hit .snippet mark', (m) => m.length) >= 1, 'snippets highlight the query terms');
  const keywordRank = await page.textContent('#view-search .hit table.explain tbody tr:nth-child(2) td');
  assertEqual(keywordRank, '1', 'explain shows the keyword rank');
  for (const mode of ['vector', 'hybrid']) {
    await page.selectOption('#search-mode', mode);
    await eventually(`${mode} results`, async () => (await page.textContent('#view-search .page > p.muted'))?.includes(mode));
    assert(await page.$$eval('#view-search .hit', (h) => h.length) >= 1, `${mode} search finds hits`);
  }
  await page.fill('#search-query', 'gravitational pull of the Moon');
  await page.press('#search-query', 'Enter');
  await page.waitForSelector('#view-search .hit table.explain');
  await screenshots(page, 'search');
  // A hostile document's snippet is text.
  await page.fill('#search-query', 'hostile content');
  await page.selectOption('#search-mode', 'keyword');
  await eventually('the payload document in results', async () =>
    (await page.$$eval('#view-search .hit .filename', (f) => f.map((x) => x.textContent))).includes(EVIL_NAME));
}

async function ask(page, question) {
  await page.fill('#question', question);
  await page.press('#question', 'Enter');
}

async function answersDone(page, count) {
  await page.waitForFunction((n) => document.querySelectorAll('#view-chat article.assistant[data-state="done"]').length >= n, count, { timeout: 30000 });
}

async function chat(page) {
  log('chat: streaming, Markdown, citations, passage, copy');
  await page.click('nav a[data-view="chat"]');
  await page.waitForSelector('#question');
  await recordAnswerPaints(page);
  await ask(page, 'What causes ocean tides?');
  await answersDone(page, 1);
  const frames = await paintedFrames(page);
  const streamingPaints = new Set(frames.filter((f) => f.state === 'streaming' && f.text).map((f) => f.text));
  log(`answer painted in ${streamingPaints.size} steps before the final event`);
  assert(streamingPaints.size >= 2, `tokens arrive incrementally: ${streamingPaints.size} paints before the final event`);
  const answer = '#view-chat article.assistant';
  for (const selector of ['strong', 'ul li', 'table td', 'pre code.language-rust']) {
    assert(await page.$(`${answer} .answer-body ${selector}`), `the answer's Markdown renders ${selector}`);
  }
  assert(await page.$(`${answer} .cite.verified[data-source="1"]`), 'a supported citation is marked verified');
  assert(await page.$(`${answer} .cite.unverified[data-source="2"]`), 'an unsupported citation is visibly marked');
  assert(await page.$(`${answer} .cite.fabricated[data-source="9"]`), 'a citation naming no source is marked fabricated');

  await page.click(`${answer} .cite.verified[data-source="1"]`);
  await page.waitForSelector('.passage-panel:not([hidden]) .passage-text');
  const facts = await page.textContent('.passage-panel .facts');
  assert(facts.includes('tides.md'), `the passage names its document: ${facts}`);
  assert((await page.textContent('.passage-panel .verdict')).includes('Verified'), 'the passage says the citation was verified');
  const marked = await page.$$eval('.passage-panel .passage-text mark', (m) => m.map((x) => x.textContent.toLowerCase()));
  assert(marked.includes('gravitational') && marked.includes('moon'), `the cited words are highlighted: ${marked}`);

  await page.click(`${answer} button:has-text("Copy")`);
  await page.waitForSelector(`${answer} button:has-text("Copied")`);
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  assert(copied.startsWith('Tides are caused by the **gravitational pull'), `copy puts the answer's Markdown on the clipboard: ${copied.slice(0, 60)}`);

  await page.click('#status');
  await page.waitForSelector('#status-panel:not([hidden])');
  const status = await page.textContent('#status-panel');
  assert(status.includes('worker') && status.includes('database') && status.includes('generative · fake-llm'), `status panel: ${status}`);
  await page.click('#status');
  const sidebar = await page.$eval('.conversations', (el) => el.scrollWidth - el.clientWidth);
  assert(sidebar <= 0, `the conversation list fits its column (${sidebar}px too wide)`);
  await screenshots(page, 'chat');
  await page.click('.passage-panel button[aria-label="Close passage"]');
}

async function conversations(page) {
  log('conversations: rename, regenerate');
  const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2] || '');
  assert(id, `the open conversation is in the URL: ${page.url()}`);
  const item = `.conversation-items li[data-id="${id}"]`;
  await page.waitForSelector(item);
  await page.click(`${item} button[title="Rename"]`);
  await page.fill(`${item} input`, 'Tides briefing');
  await page.press(`${item} input`, 'Enter');
  await page.waitForSelector(`${item} .conversation-title:has-text("Tides briefing")`);
  assertEqual((await apiGet(`/api/v1/conversations/${id}`)).conversation.title, 'Tides briefing', 'the rename is stored');

  await page.click('#view-chat article.assistant button:has-text("Regenerate")');
  await answersDone(page, 2);
  const second = await page.textContent('#view-chat article.assistant:nth-of-type(4) .answer-body');
  assert(second.startsWith('Regenerated'), `regenerate asks again: ${second}`);
  assertEqual((await apiGet(`/api/v1/conversations/${id}`)).messages.length, 4, 'the regenerated exchange is stored');
}

async function stop(page) {
  log('chat: Stop mid-answer');
  await page.click('#new-chat');
  await page.waitForSelector('.empty-chat');
  await ask(page, STOP_QUESTION);
  await page.waitForFunction(() => {
    const body = document.querySelector('#view-chat article.assistant .answer-body');
    return body && body.textContent.split('tide').length > 3;
  }, null, { timeout: 30000 });
  await page.click('#stop');
  await answersDone(page, 1);
  await page.waitForSelector('#view-chat article.assistant .answer-notice.stopped');
  const before = await page.textContent('#view-chat article.assistant .answer-body');
  await page.waitForTimeout(700);
  assertEqual(await page.textContent('#view-chat article.assistant .answer-body'), before, 'no token arrives after Stop');
  const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2] || '');
  await eventually('the stopped answer to be stored as cancelled', async () =>
    (await apiGet(`/api/v1/conversations/${id}`)).messages[1]?.finish_reason === 'cancelled');
  assert(await page.isVisible('#send'), 'the composer is ready again after Stop');
}

async function inert(page) {
  log('safety: hostile documents and model output stay inert');
  await page.click('#new-chat');
  await ask(page, 'What does the payload document say?');
  await answersDone(page, 1);
  const report = await page.evaluate(() => {
    const main = document.querySelector('main');
    const anchors = [...main.querySelectorAll('a')];
    return {
      pwned: window.__pwned ?? null,
      scripts: main.querySelectorAll('script').length,
      images: main.querySelectorAll('img').length,
      handlers: [...main.querySelectorAll('*')].flatMap((el) => [...el.attributes].filter((a) => a.name.startsWith('on')).map((a) => `${el.tagName}.${a.name}`)),
      badLinks: anchors.filter((a) => !/^(https?:|mailto:)/.test(a.getAttribute('href') || '')).map((a) => a.getAttribute('href')),
      unsafeRel: anchors.filter((a) => !/noopener/.test(a.rel) || !/noreferrer/.test(a.rel)).length,
      blocked: main.querySelectorAll('.answer-body .link-blocked').length,
      text: document.querySelector('#view-chat article.assistant .answer-body').textContent,
    };
  });
  assert(report.text.includes('<script>') && report.text.includes('onerror='), 'raw HTML from the model is shown as text');
  assertEqual(report.scripts, 0, 'no script element was created');
  assertEqual(report.images, 0, 'no image element was created');
  assertEqual(report.handlers.join(), '', 'no inline event handler was created');
  assertEqual(report.badLinks.join(), '', 'no javascript:/data: link was created');
  assertEqual(report.unsafeRel, 0, 'every link has rel="noopener noreferrer"');
  assert(report.blocked >= 2, `unsafe links are rendered as plain text (${report.blocked})`);
  assert(await page.$('#view-chat .answer-body a[href="https://example.com/docs"]'), 'a safe link stays a link');

  // The hostile document's passage, opened from its source chip, is text too.
  await page.click('#view-chat .sources-list summary');
  await page.click(`#view-chat .source-chip:has-text("payload")`);
  const passage = await page.textContent('.passage-panel .passage-text');
  assert(passage.includes('<script>'), 'the passage shows the document\'s markup as text');
  assertEqual(await page.evaluate(() => document.querySelectorAll('main script, main img').length), 0, 'the passage created no elements from the document');
  assertEqual(await page.evaluate(() => window.__pwned ?? null), null, 'no payload ran');
  await page.click('.passage-panel button[aria-label="Close passage"]');

  log('conversations: delete');
  const id = decodeURIComponent(new URL(page.url()).hash.split('/')[2] || '');
  const item = `.conversation-items li[data-id="${id}"]`;
  await page.click(`${item} button[title="Delete"]`);
  await page.click(`${item} button:has-text("Delete")`);
  await page.waitForSelector(item, { state: 'detached' });
  const response = await fetch(new URL(`/api/v1/conversations/${id}`, BASE), { headers: { authorization: `Bearer ${API_KEY}` } });
  assertEqual(response.status, 404, 'the deleted conversation is gone');
}

async function signInWithKey(page, requests) {
  log('sign-in: the first API call answers 401, the dialog opens, the API key goes into the Authorization header');
  await page.waitForSelector('dialog.modal[open] #signin-key');
  await screenshots(page, 'signin');
  await page.fill('#signin-key', API_KEY);
  requests.length = 0;
  await page.click('dialog.modal button[type="submit"]');
  await page.waitForSelector('dialog.modal', { state: 'detached' });
  const call = await eventually('an API call after sign-in', () => requests.find((r) => r.url.includes('/api/v1/') && r.authorization));
  assertEqual(call.authorization, `Bearer ${API_KEY}`, 'API calls carry the key');
  const storage = await page.evaluate(() => ({ session: sessionStorage.getItem('thinkbank.token'), local: JSON.stringify(localStorage) }));
  assertEqual(storage.session, API_KEY, 'the key is in sessionStorage');
  assert(!storage.local.includes(API_KEY), 'the key is not in localStorage');
}

async function signOutThenInWithPassword(page, requests) {
  log('sign-out forgets the key; the next call answers 401 and a password sign-in gets an access token');
  await page.click('#auth-button');
  assertEqual(await page.evaluate(() => sessionStorage.getItem('thinkbank.token')), null, 'signing out forgets the token');
  await page.click('nav a[data-view="search"]');
  await page.click('nav a[data-view="library"]');
  await page.waitForSelector('dialog.modal[open] #signin-user');
  await page.fill('#signin-user', required('THINKBANK_UI_USER'));
  await page.fill('#signin-pass', 'not the password');
  await page.click('dialog.modal button[type="submit"]');
  await page.waitForSelector('dialog.modal .form-error:has-text("wrong username or password")');
  await page.fill('#signin-pass', required('THINKBANK_UI_PASSWORD'));
  requests.length = 0;
  await page.click('dialog.modal button[type="submit"]');
  await page.waitForSelector('dialog.modal', { state: 'detached' });
  const call = await eventually('an API call after the password sign-in', () => requests.find((r) => r.url.includes('/api/v1/assets') && r.authorization));
  assert(call.authorization.startsWith('Bearer eyJ'), `API calls carry the access token (a JWT): ${call.authorization.slice(0, 12)}…`);
  const jwt = await page.evaluate(() => sessionStorage.getItem('thinkbank.token'));
  assert(jwt && jwt.startsWith('eyJ'), 'the access token is in sessionStorage');
  await page.waitForSelector('#view-library tr[data-filename="coffee.txt"]');
  assert(requests.every((r) => !r.url.includes(API_KEY) && !r.url.includes(jwt)), 'no credential ever appears in a URL');
}

async function deleteDocument(page) {
  log('library: delete');
  await page.click('#view-library tr[data-filename="coffee.txt"] button:has-text("Delete")');
  await page.waitForSelector('#view-library tr[data-filename="coffee.txt"]', { state: 'detached' });
  const left = (await apiGet('/api/v1/assets?page_size=200')).assets.map((a) => a.filename);
  assert(!left.includes('coffee.txt'), `the deleted document is gone: ${left}`);
}

async function phone(page) {
  log('phone width');
  // Conversations belong to the principal that started them: the user signed in by password
  // has none yet, so it starts one before the layout is checked.
  await page.click('nav a[data-view="chat"]');
  await page.click('#new-chat');
  await ask(page, 'What causes ocean tides?');
  await answersDone(page, 1);
  await page.setViewportSize({ width: 390, height: 844 });
  await page.click('.conversations-toggle');
  await page.waitForSelector('.conversations .conversation-items li');
  await page.click('.conversations .conversation-open');
  await answersDone(page, 1);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert(overflow <= 0, `no horizontal scrolling at phone width (${overflow}px too wide)`);
  await screenshots(page, 'chat-phone');
}

/** The bytes the first visit transfers (compressed as served), for the README's figure. */
async function writeFirstLoad(fetched) {
  // One entry per file: the favicon is requested twice (the second time from the cache).
  const byPath = new Map();
  for (const f of fetched) if (!byPath.has(f.path) || byPath.get(f.path).bytes < f.bytes) byPath.set(f.path, f);
  const files = [...byPath.values()];
  const total = files.reduce((sum, f) => sum + f.bytes, 0);
  assert(files.length >= 10 && files.every((f) => f.bytes > 0), `the first load fetched ${JSON.stringify(fetched)}`);
  assert(files.filter((f) => f.path.endsWith('.js')).every((f) => f.encoding === 'gzip'), 'scripts are served gzip-compressed');
  log(`first load: ${files.length} files, ${total} bytes transferred (compressed)`);
  writeFileSync(path.join(ARTIFACTS, 'first-load.json'), `${JSON.stringify({ total_bytes: total, files: files.sort((a, b) => a.path.localeCompare(b.path)) }, null, 2)}\n`);
}

const { browser, context } = await launch();
const page = await context.newPage();
const trouble = await watchForTrouble(page);
const requests = [];
page.on('request', (request) => requests.push({ url: request.url(), authorization: request.headers().authorization }));
mkdirSync(ARTIFACTS, { recursive: true });
const firstLoad = [];
page.on('requestfinished', async (request) => {
  const url = new URL(request.url());
  if (url.pathname === '/' || url.pathname.startsWith('/ui/')) {
    const response = await request.response();
    const sizes = await request.sizes();
    firstLoad.push({ path: url.pathname, encoding: response?.headers()['content-encoding'] || 'identity', bytes: sizes.responseBodySize });
  }
});
try {
  const response = await page.goto('/', { waitUntil: 'networkidle' });
  await writeFirstLoad(firstLoad.splice(0));
  const csp = response.headers()['content-security-policy'] || '';
  assert(csp.includes("default-src 'self'") && csp.includes("script-src 'self'"), `a strict CSP: ${csp}`);
  await page.waitForSelector('#status[data-state="ok"]');
  await signInWithKey(page, requests);
  await screenshots(page, 'chat-empty');
  await library(page);
  await search(page);
  await chat(page);
  await conversations(page);
  await stop(page);
  await inert(page);
  await signOutThenInWithPassword(page, requests);
  await deleteDocument(page);
  await phone(page);
  const violations = await page.evaluate(() => window.__cspViolations);
  assertEqual(violations.join(), '', 'the UI works under its CSP without violations');
  assertEqual(trouble.join('\n'), '', 'no script errors, console errors or dialogs');
  log('all browser checks passed');
} catch (error) {
  await page.screenshot({ path: `${process.env.THINKBANK_UI_ARTIFACTS}/failure.png.tmp`, type: 'png' }).catch(() => {});
  console.error(error.stack || String(error));
  if (trouble.length) console.error(`page trouble:\n${trouble.join('\n')}`);
  process.exitCode = 1;
} finally {
  await browser.close();
}
