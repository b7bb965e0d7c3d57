// Helpers for the browser test: launching Debian's chromium through playwright-core, assertions
// with readable messages, polling, screenshots in both themes, and in-page recorders.

import { chromium } from 'playwright-core';
import { mkdirSync } from 'node:fs';
import path from 'node:path';

export const BASE = required('THINKBANK_UI_URL');
/** The admin key the test signs in with first (and sends on its own calls). */
export const API_KEY = required('THINKBANK_UI_API_KEY');
export const ARTIFACTS = required('THINKBANK_UI_ARTIFACTS');
const CHROMIUM = process.env.THINKBANK_CHROMIUM || '/usr/bin/chromium';

export function required(name) {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (the Rust test services/gateway/tests/ui_browser.rs sets it)`);
  return value;
}

export function log(...args) {
  console.log(`[ui] ${args.join(' ')}`);
}

export function assert(condition, message) {
  if (!condition) throw new Error(`assertion failed: ${message}`);
}

export function assertEqual(actual, expected, message) {
  if (actual !== expected) {
    throw new Error(`assertion failed: ${message}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Polls `fn` until it returns a truthy value (returned), failing after `timeoutMs`. */
export async function eventually(what, fn, timeoutMs = 20000) {
  const deadline = Date.now() + timeoutMs;
  let last;
  for (;;) {
    try {
      const value = await fn();
      if (value) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${last.message}` : ''}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

export async function launch() {
  // Playwright makes a fresh temporary profile (--user-data-dir) for every launch.
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--no-sandbox', '--disable-gpu', '--disable-quic', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--no-first-run',
    ],
  });
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: { width: 1280, height: 800 },
    colorScheme: 'light',
    reducedMotion: 'reduce',
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: BASE });
  return { browser, context };
}

/** Fails the test on any script error, CSP violation, or JS dialog (alert/confirm/prompt). */
export async function watchForTrouble(page) {
  const trouble = [];
  page.on('pageerror', (error) => trouble.push(`page error: ${error.message}`));
  page.on('dialog', async (dialog) => {
    trouble.push(`unexpected ${dialog.type()} dialog: ${dialog.message()}`);
    await dialog.dismiss();
  });
  page.on('console', (message) => {
    if (message.type() === 'error' && !/Failed to load resource/.test(message.text())) {
      trouble.push(`console error: ${message.text()}`);
    }
  });
  await page.addInitScript(() => {
    window.__cspViolations = [];
    document.addEventListener('securitypolicyviolation', (event) => {
      window.__cspViolations.push(`${event.violatedDirective}: ${event.blockedURI}`);
    });
  });
  return trouble;
}

/** Screenshots the page in the light and the dark theme: `<name>-light.png`, `<name>-dark.png`. */
export async function screenshots(page, name) {
  mkdirSync(ARTIFACTS, { recursive: true });
  for (const scheme of ['light', 'dark']) {
    await page.emulateMedia({ colorScheme: scheme });
    await page.waitForTimeout(250);
    const file = path.join(ARTIFACTS, `${name}-${scheme}.png`);
    await page.screenshot({ path: file });
    log('screenshot', path.basename(file));
  }
  await page.emulateMedia({ colorScheme: 'light' });
}

/**
 * Starts recording, once per animation frame (each paint), the text of the newest answer and
 * whether it is still streaming. Read the frames with `paintedFrames(page)`.
 */
export async function recordAnswerPaints(page) {
  await page.evaluate(() => {
    const frames = [];
    window.__answerFrames = frames;
    let last = null;
    const tick = () => {
      const answers = document.querySelectorAll('#view-chat article.assistant');
      const answer = answers[answers.length - 1];
      if (answer && window.__answerFrames === frames) {
        const text = answer.querySelector('.answer-body').textContent;
        const state = answer.dataset.state;
        if (text !== last) {
          frames.push({ text, state });
          last = text;
        }
      }
      if (window.__answerFrames === frames) requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}

export function paintedFrames(page) {
  return page.evaluate(() => window.__answerFrames || []);
}

/** A JSON call to the gateway from the test (not through the UI), for checking what it stored. */
export async function apiGet(pathname) {
  const response = await fetch(new URL(pathname, BASE), { headers: { authorization: `Bearer ${API_KEY}` } });
  assert(response.ok, `GET ${pathname} answered ${response.status}`);
  return response.json();
}
