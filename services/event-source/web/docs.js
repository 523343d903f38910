// The API reference at /docs: renders this server's own OpenAPI document (operations,
// parameters, schemas, answers) and lets each operation be tried. Works offline: it fetches
// nothing but /openapi.json and the operations themselves.
'use strict';

const TOKEN_KEY = 'quotes.token';

const tokenInput = document.getElementById('docs-token');
tokenInput.value = sessionStorage.getItem(TOKEN_KEY) || '';
tokenInput.addEventListener('change', () => {
  const value = tokenInput.value.trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
});

let spec = null;

function resolve(schema) {
  let seen = 0;
  while (schema && schema.$ref && seen++ < 20) {
    const name = schema.$ref.split('/').pop();
    schema = spec.components.schemas[name];
  }
  return schema || {};
}

// A schema as a nested list: each property with its type, constraints and description.
function schemaView(schema, depth = 0) {
  const s = resolve(schema);
  if (depth > 6) return h('span', {}, '…');
  const facts = [];
  const type = Array.isArray(s.type) ? s.type.join(' | ') : s.type;
  if (type) facts.push(type);
  if (s.format) facts.push(s.format);
  if (s.enum) facts.push(`one of ${s.enum.join(', ')}`);
  if (s.pattern) facts.push(`pattern ${s.pattern}`);
  for (const k of ['minimum', 'maximum', 'minLength', 'maxLength', 'minItems', 'maxItems']) {
    if (s[k] !== undefined) facts.push(`${k} ${s[k]}`);
  }
  const parts = [h('span', { class: 'mono' }, facts.join(', '))];
  if (s.description) parts.push(h('div', { class: 'hint' }, s.description));
  if (s.properties) {
    const required = new Set(s.required || []);
    parts.push(h('ul', {}, Object.entries(s.properties).map(([name, prop]) =>
      h('li', {}, h('strong', { class: 'mono' }, name), required.has(name) ? ' (required) ' : ' ', schemaView(prop, depth + 1)))));
  }
  if (s.items) parts.push(h('div', {}, 'items: ', schemaView(s.items, depth + 1)));
  for (const k of ['oneOf', 'anyOf', 'allOf']) {
    if (s[k]) parts.push(h('div', {}, `${k}: `, h('ul', {}, s[k].map((x) => h('li', {}, schemaView(x, depth + 1))))));
  }
  return h('div', {}, parts);
}

function example(schema) {
  const s = resolve(schema);
  if (s.example !== undefined) return s.example;
  return undefined;
}

function operationView(path, method, op, index) {
  const id = `op-${index}`;
  const params = (op.parameters || []).map((p) => ({ ...p, schema: resolve(p.schema) }));
  const inputs = params.map((p) => {
    const inputId = `${id}-${p.in}-${p.name}`;
    const value = p.example ?? (p.schema.example ?? '');
    return {
      p,
      input: h('input', { id: inputId, value: String(value), autocomplete: 'off', 'aria-describedby': `${inputId}-hint` }),
      label: h('label', { for: inputId }, `${p.name} (${p.in}${p.required ? ', required' : ''})`),
      hint: h('span', { class: 'hint', id: `${inputId}-hint` }, p.description || ''),
    };
  });
  const bodySchema = op.requestBody && op.requestBody.content && op.requestBody.content['application/json'];
  const body = bodySchema
    ? h('textarea', { id: `${id}-body`, rows: 12, class: 'mono', spellcheck: 'false' }, JSON.stringify(example(bodySchema.schema) ?? {}, null, 2))
    : null;
  const output = h('pre', { class: 'mono', id: `${id}-output`, 'aria-live': 'polite' });
  const tryIt = async (e) => {
    e.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    const headers = { Accept: 'application/json, application/problem+json' };
    for (const { p, input } of inputs) {
      const value = input.value.trim();
      if (value === '') continue;
      if (p.in === 'path') url = url.replace(`{${p.name}}`, encodeURIComponent(value));
      else if (p.in === 'query') query.set(p.name, value);
      else if (p.in === 'header') headers[p.name] = value;
    }
    if (String(query)) url += `?${query}`;
    const token = tokenInput.value.trim();
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method: method.toUpperCase(), headers };
    if (body) {
      headers['Content-Type'] = 'application/json';
      init.body = body.value;
    }
    const stream = (op.responses['200'] && op.responses['200'].content && op.responses['200'].content['text/event-stream']);
    output.textContent = `${init.method} ${url} …`;
    const controller = new AbortController();
    try {
      const response = await fetch(url, { ...init, signal: controller.signal });
      const lines = [`${response.status} ${response.statusText}`];
      response.headers.forEach((v, k) => lines.push(`${k}: ${v}`));
      let text;
      if (stream && response.ok) {
        // A stream: show what arrives in the first three seconds.
        setTimeout(() => controller.abort(), 3000);
        text = '';
        const reader = response.body.getReader();
        const decoder = new TextDecoder();
        try {
          for (;;) {
            const { value, done } = await reader.read();
            if (done) break;
            text += decoder.decode(value, { stream: true });
          }
        } catch {
          text += '\n(stopped after 3 s)';
        }
      } else {
        text = await response.text();
        try { text = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
      }
      output.textContent = `${lines.join('\n')}\n\n${text}`;
    } catch (err) {
      output.textContent = `The request failed: ${err.message}`;
    }
  };
  const responses = Object.entries(op.responses || {}).map(([status, response]) => {
    const content = response.content || {};
    const [type, media] = Object.entries(content)[0] || [];
    return h('li', {}, h('strong', {}, status), ` ${response.description || ''}`, type ? h('span', { class: 'hint' }, type) : null,
      media && media.schema && type !== 'application/problem+json' ? h('details', {}, h('summary', {}, 'Schema'), schemaView(media.schema)) : null);
  });
  return h('section', { class: 'card', id, 'aria-labelledby': `${id}-title` },
    h('h3', { id: `${id}-title` }, h('span', { class: 'status' }, method.toUpperCase()), ' ', h('span', { class: 'mono' }, path)),
    op.summary ? h('p', {}, op.summary) : null,
    op.description && op.description !== op.summary ? h('p', { class: 'hint' }, op.description) : null,
    op.security && op.security.length ? h('p', { class: 'hint' }, 'Needs a bearer token.') : null,
    bodySchema ? h('details', {}, h('summary', {}, 'Request body'), schemaView(bodySchema.schema)) : null,
    h('h4', {}, 'Answers'), h('ul', {}, responses),
    h('form', { onsubmit: tryIt },
      h('h4', {}, 'Try it'),
      h('div', { class: 'grid' }, inputs.map(({ label, hint, input }) => h('div', { class: 'field' }, label, hint, input))),
      body ? h('div', { class: 'field' }, h('label', { for: `${id}-body` }, 'Body (JSON)'), body) : null,
      h('p', { class: 'actions' }, h('button', { type: 'submit' }, `Send ${method.toUpperCase()}`))),
    output);
}

async function load() {
  const target = document.getElementById('operations');
  try {
    const response = await fetch('/openapi.json');
    spec = await response.json();
  } catch (err) {
    document.getElementById('docs-status').textContent = `Cannot load /openapi.json: ${err.message}`;
    return;
  }
  const byTag = new Map();
  let index = 0;
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const method of ['get', 'post', 'put', 'patch', 'delete']) {
      const op = item[method];
      if (!op) continue;
      const tag = (op.tags && op.tags[0]) || 'other';
      if (!byTag.has(tag)) byTag.set(tag, []);
      byTag.get(tag).push(operationView(path, method, op, index++));
    }
  }
  const tags = new Map((spec.tags || []).map((t) => [t.name, t.description]));
  document.getElementById('docs-status').textContent = `${spec.info.title} ${spec.info.version || ''}: ${index} operations`;
  target.replaceChildren(
    h('p', {}, `${spec.info.title} ${spec.info.version || ''}`),
    ...[...byTag.entries()].map(([tag, ops]) => h('section', { 'aria-labelledby': `tag-${tag}` },
      h('h2', { id: `tag-${tag}` }, tag, tags.get(tag) ? h('span', { class: 'hint' }, ` ${tags.get(tag)}`) : null),
      ops)));
}

load();
