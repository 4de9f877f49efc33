// The operator's own /healthz, /readyz and /metrics (Prometheus text) endpoint.
import http from 'node:http';
import type { Controller } from './controller.js';

export function metricsText(c: Controller): string {
  const lines: string[] = [];
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`);
    for (const [labels, value] of samples) lines.push(`${name}${labels} ${value}`);
  };
  metric('streamroom_operator_reconciles_total', 'counter', 'Room reconciles run.', [
    ['', c.stats.reconciles],
  ]);
  metric('streamroom_operator_reconcile_errors_total', 'counter', 'Room reconciles that failed.', [
    ['', c.stats.reconcileErrors],
  ]);
  metric(
    'streamroom_operator_api_writes_total',
    'counter',
    'Writes sent to the Kubernetes API, by verb.',
    Object.entries(c.kube.writes).map(([verb, n]) => [`{verb="${verb}"}`, n]),
  );
  metric('streamroom_operator_queue_depth', 'gauge', 'Rooms waiting to be reconciled.', [
    ['', c.queue.length],
  ]);
  metric('streamroom_operator_informer_restarts_total', 'counter', 'Watches restarted or relisted.', [
    ['', c.informerRestarts],
  ]);
  return `${lines.join('\n')}\n`;
}

/** Serves the endpoints on host:port; resolves with the bound address. */
export function serveHealth(c: Controller, address: string): Promise<{ server: http.Server; url: string }> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon) || '0.0.0.0';
  const port = Number(address.slice(colon + 1));
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path === '/healthz') return void res.end('ok\n');
    if (path === '/readyz') {
      const { ready, reason } = c.readiness;
      res.statusCode = ready ? 200 : 503;
      return void res.end(`${reason}\n`);
    }
    if (path === '/metrics') {
      res.setHeader('Content-Type', 'text/plain; version=0.0.4');
      return void res.end(metricsText(c));
    }
    res.statusCode = 404;
    res.end('not found\n');
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const a = server.address();
      const bound = typeof a === 'object' && a ? a.port : port;
      resolve({ server, url: `http://${host.includes(':') ? `[${host}]` : host}:${bound}` });
    });
  });
}
