// The operator's own /healthz, /readyz and /metrics (metrics.ts) endpoint.
import http from 'node:http';
import type { Controller } from './controller.js';

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
      c.metrics.text().then(
        (text) => {
          res.setHeader('Content-Type', c.metrics.contentType);
          res.end(text);
        },
        (err: unknown) => {
          res.statusCode = 500;
          res.end(`${String(err)}\n`);
        },
      );
      return;
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
