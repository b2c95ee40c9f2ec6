// Strata's dashboard: what a gateway serves, the cluster it belongs to and
// its metrics, refreshed every few seconds from the API's own routes (/info,
// /metrics and, on a cluster member, /cluster/status). The render functions
// are pure (JSON and text in, HTML out) so that they run under Node.js in
// the tests; start() wires them to the page, in a browser.

const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

// short is a peer ID as strata status prints it: its last 8 characters.
const short = (id) => String(id ?? '').slice(-8);

// bytes formats a byte count with a binary unit.
export function bytes(n) {
  if (!(n > 0)) return '0 B';
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return `${n.toFixed(i && n < 10 ? 1 : 0)} ${units[i]}`;
}

// parseMetrics reads Prometheus' text format into a map from a sample's
// name and labels, as written, to its value.
export function parseMetrics(text) {
  const m = new Map();
  for (const line of String(text).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    if (at < 0) continue;
    const v = Number(line.slice(at + 1));
    if (!Number.isNaN(v)) m.set(line.slice(0, at), v);
  }
  return m;
}

// sum adds the samples of a metric over all its labels, or those whose
// labels include match (such as 'code="200"').
export function sum(metrics, name, match = '') {
  let s = 0;
  for (const [k, v] of metrics) {
    if ((k === name || k.startsWith(name + '{')) && k.includes(match)) s += v;
  }
  return s;
}

// meanOf is a histogram's mean in milliseconds, or '' before any sample.
function meanOf(metrics, name) {
  const n = sum(metrics, name + '_count');
  return n > 0 ? (1000 * sum(metrics, name + '_sum') / n).toFixed(1) + ' ms' : '';
}

const table = (head, rows) =>
  `<table><thead><tr>${head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>` +
  rows.map((r) => `<tr>${r.map((c) => `<td>${c}</td>`).join('')}</tr>`).join('') +
  '</tbody></table>';

// renderInfo shows the model and the gateway's route through the stages
// (TGI's /info with Strata's pipeline).
export function renderInfo(info) {
  const stages = info?.pipeline?.stages ?? [];
  return `<h2>${esc(info.model_id)}</h2>` +
    `<p>${esc(info.architecture)} · ${esc(info.layers)} layers · context ${esc(info.max_total_tokens)} tokens · ` +
    `vocabulary ${esc(info.vocab_size)} · Strata ${esc(info.version)}</p>` +
    '<h3>Route</h3>' +
    table(['stage', 'layers', 'peer', 'state'], stages.map((s) => [
      esc(s.index), `${esc(s.layers?.[0])}–${esc(s.layers?.[1])}`,
      `<span title="${esc(s.peer)}">${esc(short(s.peer))}</span>`, esc(s.state ?? ''),
    ]));
}

// renderMetrics shows the gateway's traffic, from its /metrics.
export function renderMetrics(metrics) {
  const cells = [
    ['requests', sum(metrics, 'strata_http_requests_total')],
    ['errors (5xx)', sum(metrics, 'strata_http_requests_total', 'code="5')],
    ['in flight', sum(metrics, 'strata_http_requests_in_flight')],
    ['queued', sum(metrics, 'strata_queue_depth')],
    ['prompt tokens', sum(metrics, 'strata_prompt_tokens_total')],
    ['tokens generated', sum(metrics, 'strata_generated_tokens_total')],
    ['time to first token', meanOf(metrics, 'strata_time_to_first_token_seconds')],
    ['between tokens', meanOf(metrics, 'strata_inter_token_latency_seconds')],
    ['KV cache', `${bytes(sum(metrics, 'strata_kv_cache_bytes'))} of ${bytes(sum(metrics, 'strata_kv_cache_capacity_bytes'))}`],
    ['prefix cache', `${sum(metrics, 'strata_prefix_cache_sessions')} sessions, ${sum(metrics, 'strata_prefix_cache_positions')} positions; ` +
      `${sum(metrics, 'strata_prefix_cached_tokens_total')} prompt tokens reused in ${sum(metrics, 'strata_prefix_cache_hits_total')} requests`],
    ['failovers', sum(metrics, 'strata_failovers_total')],
  ];
  return '<h3>This gateway</h3><dl>' + cells.map(([k, v]) => `<div><dt>${esc(k)}</dt><dd>${esc(v)}</dd></div>`).join('') + '</dl>';
}

// renderCluster shows a member's view of the cluster (/cluster/status):
// every node with its role, layers and load.
export function renderCluster(st) {
  const load = new Map((st.load ?? []).map((l) => [l.node, l]));
  const layers = new Map();
  for (const a of st.assignments ?? []) {
    layers.set(a.node, [...(layers.get(a.node) ?? []), `${a.lo}–${a.hi}`]);
  }
  const rows = (st.nodes ?? []).map((n) => {
    const l = load.get(n.id);
    const role = [n.id === st.leader ? 'leader' : n.voter ? 'voter' : '', n.volunteer ? 'volunteer' : ''].filter(Boolean).join(', ');
    const gpus = (n.resources?.gpus ?? []).map((g) => `${esc(g.name)} ${bytes(g.memory_total)}`).join('<br>');
    const loadCells = !l ? ['', '', '', '', ''] : l.err ? [`<span class="bad">${esc(l.err)}</span>`, '', '', '', ''] : [
      `${l.stage_tokens_per_sec.toFixed(1)} tok/s, ${(100 * l.stage_busy).toFixed(0)}% busy`,
      `${esc(l.sessions)} · ${bytes(l.kv_bytes)}`,
      `${l.generated_per_sec.toFixed(1)} tok/s`,
      `${esc(l.running)} / ${esc(l.queued)}`,
      l.rtt_ms ? `${l.rtt_ms.toFixed(1)} ms` : '',
    ];
    return [
      `<span title="${esc(n.id)}">${esc(short(n.id))}</span>${n.id === st.self ? ' (this)' : ''}`,
      `<span class="${n.state === 'dead' ? 'bad' : n.state === 'serving' ? 'good' : ''}">${esc(n.state)}</span>` +
        (n.state === 'loading' && n.progress ? ` ${(100 * n.progress).toFixed(0)}%` : ''),
      esc(role), esc((layers.get(n.id) ?? []).join(', ')),
      `${esc(n.resources?.cpu_cores)} cores, ${bytes(n.resources?.ram_bytes)}` + (gpus ? '<br>' + gpus : ''),
      esc(n.reach ?? ''), ...loadCells,
    ];
  });
  const warn = (st.uncovered ?? []).length
    ? `<p class="bad">Layers no node serves: ${esc(st.uncovered.join(', '))}. Requests fail until a node takes them.</p>` : '';
  const revoked = (st.revoked ?? []).length
    ? '<h3>Revoked</h3>' + table(['node', 'at', 'reason', 'by'], st.revoked.map((r) => [
      `<span title="${esc(r.node)}">${esc(short(r.node))}</span>`, esc(r.at), esc(r.reason ?? ''), esc(short(r.by)),
    ])) : '';
  return `<h3>Cluster ${esc(st.cluster)}</h3>` +
    `<p>map index ${esc(st.index)} · epoch ${esc(st.epoch)} · ${esc((st.nodes ?? []).length)} nodes` +
    (st.model ? ` · model ${esc(st.model.name)} (${esc(st.model.layers)} layers)` : '') + '</p>' + warn +
    table(['node', 'state', 'role', 'layers', 'resources', 'reach', 'stage', 'KV sessions', 'generated', 'running / queued', 'round trip'], rows) +
    revoked;
}

// start polls the API and fills the page, asking for an API key when the
// server wants one.
export function start(doc, every = 3000) {
  const out = doc.getElementById('out');
  const form = doc.getElementById('key');
  const get = async (path) => {
    const key = sessionStorage.getItem('strata-api-key');
    const r = await fetch(path, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
    if (r.status === 401) throw Object.assign(new Error('an API key is needed'), { auth: true });
    return r;
  };
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    sessionStorage.setItem('strata-api-key', form.elements.k.value);
    form.hidden = true;
    tick();
  });
  async function tick() {
    try {
      const [info, metrics, status] = await Promise.all([
        get('/info').then((r) => r.json()),
        get('/metrics').then((r) => r.text()),
        get('/cluster/status').then((r) => (r.ok ? r.json() : null)),
      ]);
      out.innerHTML = renderInfo(info) + renderMetrics(parseMetrics(metrics)) + (status ? renderCluster(status) : '');
      doc.getElementById('when').textContent = new Date().toLocaleTimeString();
    } catch (e) {
      if (e.auth) form.hidden = false;
      doc.getElementById('when').textContent = `not updated: ${e.message}`;
    }
  }
  tick();
  setInterval(tick, every);
}

if (typeof document !== 'undefined') start(document);
