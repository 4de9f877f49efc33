/**
 * The express apps: the public one (page, hashed static assets, health, readiness, public config)
 * and the metrics one, served on a port of its own that the room's Service does not expose.
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import compression from 'compression';
import express, { type Express, type NextFunction, type Request, type Response } from 'express';
import type { RoomConfig } from './config.js';
import type { RoomContext, SocketData } from './context.js';
import type { RoomLive } from './live.js';
import type { Media } from './media.js';
import { recordPresence } from './presence.js';

/** Names esbuild gives hashed bundles and their companions: app-ABCD1234.js, .js.map, .js.LEGAL.txt. */
const HASHED_ASSET = /-[A-Z0-9]{8}\.(js|css)(\.map|\.LEGAL\.txt)?$/;

function securityHeaders(_req: Request, res: Response, next: NextFunction): void {
  res.setHeader(
    'Content-Security-Policy',
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; media-src 'self' blob: mediastream:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
  );
  res.setHeader('X-Content-Type-Options', 'nosniff');
  res.setHeader('Referrer-Policy', 'no-referrer');
  res.setHeader('Permissions-Policy', 'camera=(self), microphone=(self), display-capture=(self)');
  next();
}

/** Socket.io transports the server accepts (see the README: "Transports"). */
export function transportsFor(config: RoomConfig): ('websocket' | 'polling')[] {
  return config.redis ? ['websocket'] : ['websocket', 'polling'];
}

type AppContext = Pick<
  RoomContext,
  'config' | 'state' | 'metrics' | 'isShuttingDown' | 'unavailableReason'
> & {
  /** This replica's sockets (socket.io attaches after the app, so this is looked up per request). */
  localSockets(): Iterable<{ data: unknown }>;
  /** SFU rooms: the media relay (also created after the app). */
  media(): Media | undefined;
  /** `GET /live` on the metrics port (live.ts). */
  live?: Pick<RoomLive, 'handler'>;
};

/** Counts this replica's own sockets by role. */
function countLocalSockets({ localSockets, metrics }: AppContext): void {
  const counts = { viewer: 0, broadcaster: 0 };
  for (const socket of localSockets()) {
    const role = (socket.data as Partial<SocketData>).role;
    if (role) counts[role]++;
  }
  for (const [role, n] of Object.entries(counts)) metrics.replicaSockets.set(n, { role });
}

export function createApp(ctx: AppContext, publicDir: string): Express {
  const { config, isShuttingDown, unavailableReason } = ctx;
  const publicConfig = {
    room: config.roomName,
    title: config.title,
    private: config.viewerKey !== undefined,
    maxViewers: config.maxViewers,
    chat: config.chat,
    media: { mode: config.media.mode },
    // Whether the page may fall back to HTTP long-polling when WebSocket is blocked.
    transports: transportsFor(config),
    // A private room hands its ICE servers (TURN credentials) only to authenticated sockets.
    iceServers: config.viewerKey === undefined ? config.iceServers : undefined,
  };

  const app = express();
  app.disable('x-powered-by');
  app.use(securityHeaders);
  app.use(compression());
  app.get('/healthz', (_req, res) => {
    res.setHeader('Cache-Control', 'no-store');
    res.type('text/plain').send('ok\n');
  });
  app.get('/readyz', (_req, res) => {
    // a replica that cannot carry video (its relay is restarting) takes no new viewers meanwhile;
    // the reasons name no host, port or error (anyone may read this)
    const reason = isShuttingDown()
      ? 'shutting down'
      : (unavailableReason() ?? ctx.media()?.unavailableReason());
    res.setHeader('Cache-Control', 'no-store');
    res
      .status(reason === undefined ? 200 : 503)
      .type('text/plain')
      .send(reason === undefined ? 'ready\n' : `not ready: ${reason}\n`);
  });
  app.get('/config.json', (_req, res) => {
    res.setHeader('Cache-Control', 'no-cache');
    res.json(publicConfig);
  });
  const indexHtml = path.join(publicDir, 'index.html');
  app.get('/', (_req, res) => {
    if (!existsSync(indexHtml)) {
      res.status(503).type('text/plain').send('client bundle not built\n');
      return;
    }
    res.sendFile(indexHtml, { cacheControl: false, headers: { 'Cache-Control': 'no-cache' } });
  });
  app.use(
    express.static(publicDir, {
      index: false,
      cacheControl: false,
      dotfiles: 'ignore',
      setHeaders: (res, file) => {
        res.setHeader(
          'Cache-Control',
          HASHED_ASSET.test(path.basename(file)) ? 'public, max-age=31536000, immutable' : 'no-cache',
        );
      },
    }),
  );
  app.use(notFound);
  return app;
}

function notFound(_req: Request, res: Response): void {
  res.status(404).type('text/plain').send('not found\n');
}

/** `GET /metrics` (Prometheus text), alone on the metrics port. */
export function createMetricsApp(ctx: AppContext): Express {
  const { state, metrics, unavailableReason } = ctx;
  const app = express();
  app.disable('x-powered-by');
  app.get('/metrics', (_req, res) => {
    const send = (): void => {
      countLocalSockets(ctx);
      metrics.backplaneConnected.set(unavailableReason() === undefined ? 1 : 0);
      res.setHeader('Cache-Control', 'no-store');
      res.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
    };
    // Without the shared state the room-wide gauges keep their last values.
    const media = ctx.media();
    const relay = media
      ? media.relay.stats().then(
          (s) => metrics.recordRelay(true, media.relay.restarts, s),
          () => metrics.recordRelay(media.relay.running, media.relay.restarts, undefined),
        )
      : undefined;
    Promise.allSettled([state.presence().then((p) => recordPresence(metrics, p)), relay]).finally(send);
  });
  if (ctx.live) app.get('/live', ctx.live.handler);
  app.use(notFound);
  return app;
}
