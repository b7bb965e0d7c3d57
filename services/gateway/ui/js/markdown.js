// A small Markdown renderer for answers and passages that builds DOM nodes directly.
//
// Supported: paragraphs, ATX headings, fenced code, lists (nested by indentation), GFM
// tables, block quotes, rules, `code`, **strong**, *em*, ~~del~~, links, autolinks and `[n]`
// citations. Safety is structural: text only ever becomes text nodes, raw HTML stays visible
// text, and a link is made only for http(s) and mailto URLs (with rel="noopener noreferrer");
// anything else (javascript:, data:, vbscript:) is shown as plain text.

import { h } from './dom.js';

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);
const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)/;
const HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const QUOTE = /^ {0,3}>\s?(.*)$/;
const TABLE_DELIMITER = /^\s*\|?\s*:?-+:?\s*(\|\s*:?-+:?\s*)*\|?\s*$/;
const CITATION = /^\[(\d{1,3}(?:\s*,\s*\d{1,3})*)\]/;
const AUTOLINK = /^https?:\/\/[^\s<>"'`]*[^\s<>"'`.,;:!?)\]]/;
const PUNCTUATION = /[!-/:-@[-`{-~]/;

/**
 * Renders `text` into a DocumentFragment. `options.citation(n)` returns the node for `[n]`
 * (default: the text itself).
 */
export function renderMarkdown(text, options = {}) {
  const ctx = { citation: options.citation || ((n) => `[${n}]`) };
  const fragment = document.createDocumentFragment();
  renderBlocks(String(text).replace(/\r\n?/g, '\n').split('\n'), fragment, ctx);
  return fragment;
}

/** A URL that is safe to link to, normalised, or null. */
export function safeUrl(raw) {
  const url = String(raw).trim();
  // Control characters and whitespace inside a scheme are how filters get bypassed.
  if (!url || /[\u0000-\u001f\u007f]/.test(url)) return null;
  try {
    const parsed = new URL(url, window.location.origin);
    return SAFE_PROTOCOLS.has(parsed.protocol) && /^(https?:|mailto:)/i.test(url) ? parsed.href : null;
  } catch {
    return null;
  }
}

function renderBlocks(lines, parent, ctx) {
  let i = 0;
  let paragraph = [];
  const flush = () => {
    if (paragraph.length) parent.append(h('p', {}, inline(paragraph.join('\n'), ctx)));
    paragraph = [];
  };
  while (i < lines.length) {
    const line = lines[i];
    let m;
    if (!line.trim()) {
      flush();
      i++;
    } else if ((m = FENCE.exec(line))) {
      flush();
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length && !lines[i].trim().startsWith(fence)) body.push(lines[i++]);
      i++; // the closing fence (or past the end while the answer is still streaming)
      parent.append(codeBlock(body.join('\n'), m[2]));
    } else if ((m = HEADING.exec(line))) {
      flush();
      parent.append(h(`h${Math.min(m[1].length + 2, 6)}`, {}, inline(m[2], ctx)));
      i++;
    } else if (RULE.test(line) && !(paragraph.length && /^\s*-+\s*$/.test(line))) {
      flush();
      parent.append(h('hr'));
      i++;
    } else if (QUOTE.test(line)) {
      flush();
      const quoted = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { quoted.push(m[1]); i++; }
      const quote = h('blockquote');
      renderBlocks(quoted, quote, ctx);
      parent.append(quote);
    } else if (LIST_ITEM.test(line)) {
      flush();
      i = renderList(lines, i, parent, ctx);
    } else if (line.includes('|') && i + 1 < lines.length && TABLE_DELIMITER.test(lines[i + 1])
      && lines[i + 1].includes('-')) {
      flush();
      i = renderTable(lines, i, parent, ctx);
    } else {
      paragraph.push(line.trim());
      i++;
    }
  }
  flush();
}

function codeBlock(code, lang) {
  const codeEl = h('code', { class: /^[\w+#-]+$/.test(lang) ? `language-${lang}` : null }, code);
  const wrapper = h('div', { class: 'code-block' },
    lang ? h('span', { class: 'code-lang' }, lang) : null,
    h('pre', { tabindex: '0' }, codeEl));
  return wrapper;
}

/** A list starting at `start`; items indented deeper than the first become nested lists. */
function renderList(lines, start, parent, ctx) {
  const first = LIST_ITEM.exec(lines[start]);
  const indent = first[1].length;
  const ordered = /\d/.test(first[2]);
  const list = h(ordered ? 'ol' : 'ul');
  if (ordered && parseInt(first[2], 10) !== 1) list.setAttribute('start', String(parseInt(first[2], 10)));
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || m[1].length < indent) break;
    if (m[1].length > indent) break; // handled by the previous item's nested content
    if (/\d/.test(m[2]) !== ordered) break;
    const content = [m[3]];
    i++;
    // Continuation lines and nested lists: anything indented deeper than this item's marker.
    while (i < lines.length) {
      const next = lines[i];
      const nested = LIST_ITEM.exec(next);
      if (nested && nested[1].length <= indent) break;
      if (!next.trim()) {
        if (i + 1 < lines.length && /^\s+\S/.test(lines[i + 1]) && leading(lines[i + 1]) > indent) {
          content.push('');
          i++;
          continue;
        }
        break;
      }
      if (!nested && leading(next) <= indent && content.length && !lines[i - 1].trim()) break;
      content.push(next.slice(Math.min(leading(next), indent + 2)));
      i++;
    }
    const item = h('li');
    if (content.length === 1) item.append(inline(content[0], ctx));
    else renderBlocks(content, item, ctx);
    list.append(item);
  }
  parent.append(list);
  return i;
}

function leading(line) {
  return line.length - line.trimStart().length;
}

function splitRow(line) {
  let row = line.trim();
  if (row.startsWith('|')) row = row.slice(1);
  if (row.endsWith('|') && !row.endsWith('\\|')) row = row.slice(0, -1);
  return row.split(/(?<!\\)\|/).map((cell) => cell.trim().replace(/\\\|/g, '|'));
}

function renderTable(lines, start, parent, ctx) {
  const header = splitRow(lines[start]);
  const aligns = splitRow(lines[start + 1]).map((cell) => {
    if (cell.startsWith(':') && cell.endsWith(':')) return 'align-center';
    if (cell.endsWith(':')) return 'align-right';
    return null;
  });
  const cell = (tag, text, col) => h(tag, { class: aligns[col] || null }, inline(text, ctx));
  const thead = h('thead', {}, h('tr', {}, header.map((text, col) => cell('th', text, col))));
  const tbody = h('tbody');
  let i = start + 2;
  while (i < lines.length && lines[i].includes('|') && lines[i].trim()) {
    const cells = splitRow(lines[i]);
    tbody.append(h('tr', {}, header.map((_, col) => cell('td', cells[col] || '', col))));
    i++;
  }
  parent.append(h('div', { class: 'table-wrap' }, h('table', {}, thead, tbody)));
  return i;
}

/** Inline Markdown to a fragment. `ctx.inLink` stops links nesting inside links. */
function inline(text, ctx) {
  const out = document.createDocumentFragment();
  let plain = '';
  const flush = () => {
    if (plain) out.append(document.createTextNode(plain));
    plain = '';
  };
  const emit = (node) => { flush(); out.append(node); };
  let i = 0;
  while (i < text.length) {
    const rest = text.slice(i);
    const ch = text[i];
    let m;
    if (ch === '\\' && i + 1 < text.length && PUNCTUATION.test(text[i + 1])) {
      plain += text[i + 1];
      i += 2;
    } else if (ch === '\n') {
      emit(h('br'));
      i++;
    } else if (ch === '`' && (m = /^(`+)([\s\S]*?[^`])\1(?!`)/.exec(rest))) {
      emit(h('code', {}, m[2].replace(/^ (.*) $/, '$1')));
      i += m[0].length;
    } else if (ch === '[' && (m = CITATION.exec(rest))) {
      flush();
      m[1].split(',').map((n) => parseInt(n.trim(), 10)).forEach((n) => {
        const node = ctx.citation(n);
        out.append(node instanceof Node ? node : document.createTextNode(node));
      });
      i += m[0].length;
    } else if ((ch === '[' || (ch === '!' && text[i + 1] === '[')) && (m = linkAt(text, ch === '!' ? i + 1 : i))) {
      const image = ch === '!';
      const href = ctx.inLink ? null : safeUrl(m.url);
      const label = image ? `🖼 ${m.label || m.url}` : m.label;
      const content = inline(label, { ...ctx, inLink: true });
      emit(href
        ? h('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank', title: m.title || null }, content)
        : h('span', { class: 'link-blocked', title: 'link not followed' }, content));
      i = m.end;
    } else if ((ch === '*' || ch === '_' || ch === '~') && (m = emphasisAt(text, i))) {
      emit(h(m.tag, {}, inline(m.inner, ctx)));
      i = m.end;
    } else if (ch === 'h' && !ctx.inLink && /^https?:\/\//.test(rest) && !/\w/.test(text[i - 1] || '')
      && (m = AUTOLINK.exec(rest))) {
      const href = safeUrl(m[0]);
      emit(href ? h('a', { href, rel: 'noopener noreferrer nofollow', target: '_blank' }, m[0]) : m[0]);
      i += m[0].length;
    } else {
      plain += ch;
      i++;
    }
  }
  flush();
  return out;
}

/** `[label](url "title")` starting at `start` ('['), or null. */
function linkAt(text, start) {
  let depth = 0;
  let close = -1;
  for (let j = start; j < text.length; j++) {
    if (text[j] === '\\') { j++; continue; }
    if (text[j] === '[') depth++;
    else if (text[j] === ']' && --depth === 0) { close = j; break; }
  }
  if (close < 0 || text[close + 1] !== '(') return null;
  let parens = 0;
  let end = -1;
  for (let j = close + 1; j < text.length; j++) {
    if (text[j] === '(') parens++;
    else if (text[j] === ')' && --parens === 0) { end = j; break; }
  }
  if (end < 0) return null;
  const target = text.slice(close + 2, end).trim();
  const m = /^<?([^\s>]*)>?(?:\s+["'(](.*)["')])?$/.exec(target);
  if (!m) return null;
  return { label: text.slice(start + 1, close), url: m[1], title: m[2] || '', end: end + 1 };
}

/** `**strong**`, `*em*`, `_em_`, `__strong__` or `~~del~~` starting at `i`, or null. */
function emphasisAt(text, i) {
  const ch = text[i];
  const run = ch === '~' ? (text.startsWith('~~', i) ? '~~' : null) : (text[i + 1] === ch ? ch + ch : ch);
  if (!run) return null;
  const after = text[i + run.length];
  if (!after || /\s/.test(after)) return null;
  // Underscores inside words (snake_case) are not emphasis.
  if (ch === '_' && /\w/.test(text[i - 1] || '')) return null;
  let j = i + run.length;
  while ((j = text.indexOf(run, j + 1)) !== -1) {
    const before = text[j - 1];
    const next = text[j + run.length];
    const sameRunContinues = run.length === 1 && next === ch;
    if (!/\s/.test(before) && !sameRunContinues && !(ch === '_' && /\w/.test(next || ''))) {
      const tag = ch === '~' ? 'del' : run.length === 2 ? 'strong' : 'em';
      return { tag, inner: text.slice(i + run.length, j), end: j + run.length };
    }
  }
  return null;
}
