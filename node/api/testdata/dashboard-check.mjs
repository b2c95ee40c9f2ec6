// Checks the dashboard (node/api/dashboard.js) against a running Strata
// API: its page and script are served, and its render functions turn the
// API's own /info, /metrics and /cluster/status into a page that names the
// model, the route's stages and (on a cluster member) every node, with no
// undefined or NaN in it. Exits 0 when every check passes, 1 otherwise.
// Needs no npm package.
//
//   STRATA_API_BASE=http://127.0.0.1:8080 node node/api/testdata/dashboard-check.mjs
//
// Environment:
//   STRATA_API_BASE    the API's root URL (default http://127.0.0.1:8080)
//   STRATA_API_KEY     a key of the server's, if it has keys
//   STRATA_EXPECT_NODES  comma-separated peer IDs the cluster view must show

import { bytes, parseMetrics, renderCluster, renderInfo, renderMetrics, sum } from '../dashboard.js';

const base = process.env.STRATA_API_BASE || 'http://127.0.0.1:8080';
const key = process.env.STRATA_API_KEY;
const failures = [];

function check(ok, what) {
  if (!ok) failures.push(what);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`);
}

const get = (path, auth = true) => fetch(base + path, { headers: auth && key ? { Authorization: `Bearer ${key}` } : {} });
const clean = (html) => !/undefined|NaN/.test(html);

async function main() {
  // The page and its script, without a key.
  const page = await get('/dashboard', false);
  const text = await page.text();
  check(page.ok && page.headers.get('content-type')?.startsWith('text/html') && text.includes('src="/dashboard.js"'), 'GET /dashboard serves the page');
  const js = await get('/dashboard.js', false);
  check(js.ok && js.headers.get('content-type')?.startsWith('text/javascript') && (await js.text()).includes('export function renderCluster'), 'GET /dashboard.js serves the script');
  const root = await fetch(base + '/', { redirect: 'manual' });
  check(root.status === 302 && root.headers.get('location') === '/dashboard', 'GET / leads to the dashboard');

  // The render functions over what the API answers.
  const info = await (await get('/info')).json();
  const infoHTML = renderInfo(info);
  check(infoHTML.includes(info.model_id) && clean(infoHTML), `the model (${info.model_id}) is shown`);
  for (const s of info.pipeline.stages) {
    check(infoHTML.includes(`${s.layers[0]}–${s.layers[1]}`), `stage ${s.index} (layers ${s.layers[0]}–${s.layers[1]}) is shown`);
  }
  const metrics = parseMetrics(await (await get('/metrics')).text());
  check(sum(metrics, 'strata_http_requests_total') > 0, `the metrics parse (${sum(metrics, 'strata_http_requests_total')} requests so far)`);
  const metricsHTML = renderMetrics(metrics);
  check(metricsHTML.includes('tokens generated') && metricsHTML.includes('prefix cache') && clean(metricsHTML), 'the gateway metrics render');

  const status = await get('/cluster/status');
  const want = (process.env.STRATA_EXPECT_NODES || '').split(',').filter(Boolean);
  if (want.length) {
    check(status.ok, 'GET /cluster/status answers');
    const st = await status.json();
    const html = renderCluster(st);
    check(clean(html), 'the cluster view has no undefined or NaN');
    for (const id of want) check(html.includes(`title="${id}"`), `node ${id.slice(-8)} is shown`);
    check(html.includes('leader') && html.includes('tok/s'), 'the leader and the nodes\' load are shown');
  } else {
    check(status.status === 404, 'a gateway outside a cluster has no /cluster/status');
  }

  // Text from the API is escaped.
  const hostile = renderCluster({ cluster: '<script>x</script>', nodes: [{ id: '"><img src=x onerror=alert(1)>', state: 'serving', resources: {} }] });
  check(!hostile.includes('<script>') && !hostile.includes('<img'), 'text from the API is escaped');
  check(bytes(0) === '0 B' && bytes(1536) === '1.5 KiB' && bytes(3 * 2 ** 30) === '3.0 GiB', 'byte counts read well');
}

main().then(
  () => {
    if (failures.length) {
      console.log(`${failures.length} check(s) failed`);
      process.exit(1);
    }
  },
  (err) => {
    console.log(`FAIL ${err.stack || err}`);
    process.exit(1);
  },
);
