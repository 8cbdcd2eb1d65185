// A model's answer as HTML, safely: Markdown (headings, lists, tables, code)
// rendered by markdown-it with raw HTML off (a model's "<script>" stays text),
// then sanitised by DOMPurify (no event handlers, no javascript: links, no
// styles), so nothing the model writes runs in the console. Code blocks are
// highlighted (a few common languages) and carry a copy button; the page
// handles the button's click (see copyCode).
import MarkdownIt from 'markdown-it';
import DOMPurify from 'dompurify';
import hljs from 'highlight.js/lib/core';
import bash from 'highlight.js/lib/languages/bash';
import c from 'highlight.js/lib/languages/c';
import cpp from 'highlight.js/lib/languages/cpp';
import css from 'highlight.js/lib/languages/css';
import go from 'highlight.js/lib/languages/go';
import java from 'highlight.js/lib/languages/java';
import javascript from 'highlight.js/lib/languages/javascript';
import json from 'highlight.js/lib/languages/json';
import python from 'highlight.js/lib/languages/python';
import rust from 'highlight.js/lib/languages/rust';
import shell from 'highlight.js/lib/languages/shell';
import sql from 'highlight.js/lib/languages/sql';
import typescript from 'highlight.js/lib/languages/typescript';
import xml from 'highlight.js/lib/languages/xml';
import yaml from 'highlight.js/lib/languages/yaml';
import 'highlight.js/styles/github.css';

for (const [name, lang] of Object.entries({ bash, c, cpp, css, go, java, javascript, json, python, rust, shell, sql, typescript, xml, yaml }))
  hljs.registerLanguage(name, lang);
hljs.registerAliases(['sh', 'zsh', 'console'], { languageName: 'bash' });
hljs.registerAliases(['py'], { languageName: 'python' });
hljs.registerAliases(['js'], { languageName: 'javascript' });
hljs.registerAliases(['ts'], { languageName: 'typescript' });
hljs.registerAliases(['html', 'vue'], { languageName: 'xml' });
hljs.registerAliases(['yml'], { languageName: 'yaml' });

const md = new MarkdownIt({ html: false, linkify: true, breaks: true });
const escape = md.utils.escapeHtml;

// ```lang fences: a header with the language and a copy button, then the highlighted code
md.renderer.rules.fence = (tokens, i, options, env) => {
  const tok = tokens[i];
  const lang = (tok.info || '').trim().split(/\s+/)[0].toLowerCase();
  const known = lang && hljs.getLanguage(lang);
  const code = known ? hljs.highlight(tok.content, { language: lang, ignoreIllegals: true }).value : escape(tok.content);
  return `<div class="code-block"><div class="code-head"><span class="code-lang">${escape(lang)}</span>`
    + `<button type="button" class="code-copy">${escape(env?.copy || 'Copy')}</button></div>`
    + `<pre><code class="hljs${known ? ` language-${escape(lang)}` : ''}">${code}</code></pre></div>`;
};

// links open elsewhere, without handing this page over
DOMPurify.addHook('afterSanitizeAttributes', (node) => {
  if (node.tagName === 'A') { node.setAttribute('target', '_blank'); node.setAttribute('rel', 'noopener noreferrer nofollow'); }
});
const PURIFY = { FORBID_TAGS: ['style', 'form', 'input', 'textarea', 'select', 'iframe', 'object', 'embed', 'svg', 'math'],
  FORBID_ATTR: ['style'], ALLOW_DATA_ATTR: false, ADD_ATTR: ['target'] };

// Markdown text -> sanitised HTML; `copy` is the copy button's label.
export function renderMarkdown(text, copy) {
  return DOMPurify.sanitize(md.render(text || '', { copy }), PURIFY);
}

// An answer's reasoning, as DeepSeek-R1 and Qwen3 write it: "<think>…</think>"
// at the start of the content (unclosed while the model still thinks).
export function splitThink(text) {
  const m = /^\s*<think>([\s\S]*?)(<\/think>|$)/.exec(text || '');
  if (!m) return { think: '', answer: text || '', thinking: false };
  return { think: m[1].trim(), answer: text.slice(m[0].length).replace(/^\s+/, ''), thinking: !m[2] };
}

// The code of the copy button clicked inside `root` (event delegation), or null.
export function copiedCode(event) {
  const btn = event.target.closest?.('.code-copy');
  return btn ? btn.closest('.code-block')?.querySelector('code')?.textContent ?? '' : null;
}
