// The waker: while a room hibernates its Service points at the operator's leader (an EndpointSlice
// `<room>-waker`, builders.ts), and this server answers its URL. Every page of the room gets the same
// "waking up" page, with no key in it (a broadcaster's `#key=` stays in the URL fragment, which no
// server sees, and is still there when the page reloads). The page asks to wake the room
// (POST /.streamroom/wake), every second until the room serves, then reloads: the reload reaches the
// room itself once the operator has removed the waker's slice. The answer that says so closes its
// connection: a kept-alive connection stays with the waker whatever the Service's endpoints are now
// (kube-proxy's NAT is per connection), so a reload over it would get this page again, and again.
//
// Which room a request is for comes from its Host header (the room's URL: a NodePort's port, a
// ClusterIP Service's DNS name, an Ingress host, a load balancer's address). Floods are harmless: a
// wake request for a room already waking changes nothing, at most --max-waking rooms wake at once
// (others are told to retry), a suspended room is never woken, and no request body is read.
import { createHash } from 'node:crypto';
import http from 'node:http';

export type WakeState = 'hibernating' | 'waking' | 'ready' | 'suspended' | 'busy';

export interface WakerRooms {
  /** The room (`namespace/name`) a Host header names, among rooms that can hibernate. */
  roomForHost(host: string): string | undefined;
  /** Asks the room to wake (idempotent) and says where it stands. */
  wake(key: string): WakeState;
  /** Whether this operator is the one that wakes rooms (the leader). */
  readonly leading: boolean;
}

/** The path the page posts to (on the room's own origin, so it reaches the waker while the room sleeps). */
export const WAKE_PATH = '/.streamroom/wake';
/** Every answer of the waker carries it: the page knows it still talks to the waker. */
export const WAKER_HEADER = 'x-streamroom-waker';

const SCRIPT = `
(function () {
  var status = document.getElementById('status');
  var say = { hibernating: 'Waking the room up…', waking: 'Waking the room up…', busy: 'Many rooms are waking up; yours is next…', suspended: 'This room is closed for now.' };
  function tick() {
    fetch(${JSON.stringify(WAKE_PATH)}, { method: 'POST', cache: 'no-store' }).then(function (r) {
      if (!r.headers.get(${JSON.stringify(WAKER_HEADER)})) { location.reload(); return; }
      return r.json().then(function (s) {
        document.documentElement.dataset.state = s.state;
        if (s.state === 'ready') { status.textContent = 'The room is up: opening it…'; setTimeout(function () { location.reload(); }, 500); return; }
        status.textContent = say[s.state] || say.waking;
        if (s.state !== 'suspended') setTimeout(tick, 1000);
      });
    }).catch(function () { setTimeout(tick, 1000); });
  }
  tick();
})();
`;
const SCRIPT_HASH = createHash('sha256').update(SCRIPT).digest('base64');

const PAGE = `<!doctype html>
<html lang="en" data-state="hibernating">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Waking up…</title>
<style>
body { font-family: system-ui, sans-serif; background: #111; color: #eee; display: grid; place-items: center; min-height: 100vh; margin: 0; }
main { text-align: center; }
.dot { display: inline-block; width: .6em; height: .6em; border-radius: 50%; background: #6cf; animation: pulse 1s infinite alternate; }
@keyframes pulse { from { opacity: .2 } to { opacity: 1 } }
</style>
</head>
<body>
<main id="waking">
<h1><span class="dot"></span> This room is waking up</h1>
<p id="status">Waking the room up…</p>
<p><small>It was asleep because nobody was here. This takes a few seconds; the page moves on by itself.</small></p>
</main>
<script>${SCRIPT}</script>
</body>
</html>
`;

const NOT_FOUND = `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>No such room</title></head><body><p>No room answers at this address.</p></body></html>\n`;

function send(
  res: http.ServerResponse,
  status: number,
  type: string,
  body: string,
  extra: Record<string, string> = {},
) {
  res.writeHead(status, {
    'Content-Type': type,
    'Cache-Control': 'no-store',
    'X-Content-Type-Options': 'nosniff',
    'Referrer-Policy': 'no-referrer',
    [WAKER_HEADER]: '1',
    ...extra,
  });
  res.end(body);
}

/** The waker's request handler (also used directly by tests). */
export function wakerHandler(rooms: WakerRooms): http.RequestListener {
  return (req, res) => {
    // nothing a visitor sends is read: a request with a body is refused before it is read
    const length = Number(req.headers['content-length'] ?? 0);
    if (length > 0 || req.headers['transfer-encoding']) {
      send(res, 413, 'text/plain', 'no body\n', { Connection: 'close' });
      req.destroy();
      return;
    }
    const path = (req.url ?? '/').split('?')[0];
    const key = rooms.roomForHost(String(req.headers.host ?? ''));
    if (path === WAKE_PATH) {
      if (req.method !== 'POST') return send(res, 405, 'text/plain', 'POST only\n', { Allow: 'POST' });
      if (!key) return send(res, 404, 'application/json', '{"state":"unknown"}');
      if (!rooms.leading)
        return send(res, 503, 'application/json', '{"state":"busy"}', { 'Retry-After': '1' });
      const state = rooms.wake(key);
      const code = state === 'busy' ? 503 : state === 'suspended' ? 409 : 200;
      const extra: Record<string, string> =
        state === 'busy' ? { 'Retry-After': '2' } : state === 'ready' ? { Connection: 'close' } : {};
      return send(res, code, 'application/json', JSON.stringify({ state }), extra);
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return send(res, 405, 'text/plain', 'GET only\n', { Allow: 'GET, HEAD' });
    }
    if (!key) return send(res, 404, 'text/html; charset=utf-8', NOT_FOUND);
    // the room's page, its scripts, socket.io: all get the page (a script or a socket retries later)
    send(res, 503, 'text/html; charset=utf-8', req.method === 'HEAD' ? '' : PAGE, {
      'Retry-After': '2',
      'Content-Security-Policy': `default-src 'none'; script-src 'sha256-${SCRIPT_HASH}'; style-src 'unsafe-inline'; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'`,
    });
  };
}

/** Serves the waker on host:port; resolves with the server and the port it is bound to. */
export function serveWaker(
  rooms: WakerRooms,
  address: string,
): Promise<{ server: http.Server; port: number }> {
  const colon = address.lastIndexOf(':');
  const host = address.slice(0, colon) || '0.0.0.0';
  const port = Number(address.slice(colon + 1));
  const server = http.createServer(wakerHandler(rooms));
  // a slow client holds nothing for long
  server.headersTimeout = 10_000;
  server.requestTimeout = 15_000;
  server.keepAliveTimeout = 5_000;
  server.maxHeadersCount = 50;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      const a = server.address();
      resolve({ server, port: typeof a === 'object' && a ? a.port : port });
    });
  });
}

/**
 * The hosts under which a room is reached, for the waker's lookup: its URL's host (with its port
 * when not the scheme's default), for a NodePort room its node port on any address (`:port`), for a
 * ClusterIP room its Service's DNS names, for an Ingress room its host.
 */
export function roomHosts(room: {
  name: string;
  namespace: string;
  url?: string;
  exposeType: string;
  port: number;
  nodePort?: number;
  ingressHost?: string;
  clusterDomain: string;
}): string[] {
  const hosts: string[] = [];
  if (room.url) {
    try {
      hosts.push(new URL(room.url).host.toLowerCase());
    } catch {
      // not a URL: nothing to add
    }
  }
  if (room.exposeType === 'NodePort' && room.nodePort) hosts.push(`:${room.nodePort}`);
  if (room.exposeType === 'ClusterIP' || room.exposeType === 'Ingress') {
    const suffix = room.port === 80 ? '' : `:${room.port}`;
    for (const n of [
      `${room.name}.${room.namespace}.svc.${room.clusterDomain}`,
      `${room.name}.${room.namespace}.svc`,
      `${room.name}.${room.namespace}`,
    ])
      hosts.push(`${n}${suffix}`);
  }
  if (room.ingressHost) hosts.push(room.ingressHost.toLowerCase());
  return hosts;
}

/** Finds the room of a Host header in an index made from roomHosts(). */
export function lookupHost(index: Map<string, string>, hostHeader: string): string | undefined {
  const host = hostHeader.trim().toLowerCase();
  if (!host) return undefined;
  const exact = index.get(host);
  if (exact) return exact;
  const m = /^(\[[^\]]+\]|[^:]+)(?::(\d+))?$/.exec(host);
  if (!m) return undefined;
  if (m[2]) return index.get(`:${m[2]}`) ?? (m[2] === '80' ? index.get(m[1]!) : undefined);
  return index.get(`${m[1]}:80`);
}
