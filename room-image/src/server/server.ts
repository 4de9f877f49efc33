import { createHash, randomUUID, timingSafeEqual } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import compression from 'compression';
import express, { type Request, type Response, type NextFunction } from 'express';
import { Server, type Socket } from 'socket.io';
import type { RoomConfig } from './config.js';
import { RoomMetrics, type ConnectionRejectReason, type RejectReason } from './metrics.js';
import { MemoryRoomState, type ChatMessage, type RoomState } from './state.js';
import {
  authPayload,
  chatPayload,
  displayName,
  namePayload,
  signalEnvelope,
  streamStatePayload,
  type Result,
} from './validate.js';

export type LogFn = (level: 'info' | 'warn' | 'error', msg: string, fields?: Record<string, unknown>) => void;

export const jsonLogger: LogFn = (level, msg, fields) => {
  process.stdout.write(JSON.stringify({ time: new Date().toISOString(), level, msg, ...fields }) + '\n');
};

export interface ServerOptions {
  /** Directory with the built client (index.html and hashed assets). Defaults to dist/public. */
  publicDir?: string;
  /** Room state store; defaults to in-memory (single replica). */
  state?: RoomState;
  /** Interface to listen on; defaults to all interfaces. Tests pass 127.0.0.1. */
  host?: string;
  /** Port; defaults to config.port. */
  port?: number;
  /** Milliseconds between announcing shutdown and disconnecting clients. */
  drainMs?: number;
  log?: LogFn;
  /** Per-socket message budget (token bucket). */
  flood?: { burst: number; perSecond: number; disconnectAfter: number };
}

export interface RunningServer {
  url: string;
  port: number;
  metrics: RoomMetrics;
  io: Server;
  readonly shuttingDown: boolean;
  /** Stops accepting, tells clients to reconnect, disconnects them and closes the listener. */
  close(): Promise<void>;
}

interface SocketData {
  role: 'broadcaster' | 'viewer';
  name: string;
}

type Ack = (response: { ok: true; [k: string]: unknown } | { ok: false; error: string }) => void;

const PRESENCE_COALESCE_MS = 100;
const KNOWN_EVENTS = new Set(['signal', 'stream:state', 'chat:send', 'name:set']);
const HASHED_ASSET = /-[A-Z0-9]{8}\.(js|css|map|woff2|svg|png)$/;

const defaultPublicDir = (): string => fileURLToPath(new URL('../public/', import.meta.url));

/** Compares secrets in constant time regardless of their lengths. */
export function keysMatch(given: string | undefined, expected: string): boolean {
  const a = createHash('sha256')
    .update(given ?? '')
    .digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b) && given !== undefined;
}

class TokenBucket {
  private tokens: number;
  private last = Date.now();
  constructor(
    private readonly burst: number,
    private readonly perSecond: number,
  ) {
    this.tokens = burst;
  }
  take(): boolean {
    const now = Date.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) / 1000) * this.perSecond);
    this.last = now;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}

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

export async function startServer(config: RoomConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const log = options.log ?? jsonLogger;
  const state = options.state ?? new MemoryRoomState();
  const publicDir = options.publicDir ?? defaultPublicDir();
  const drainMs = options.drainMs ?? 0;
  const flood = options.flood ?? { burst: 60, perSecond: 20, disconnectAfter: 300 };
  const metrics = new RoomMetrics({ name: config.roomName, namespace: config.roomNamespace });
  let shuttingDown = false;

  const publicConfig = {
    room: config.roomName,
    title: config.title,
    private: config.viewerKey !== undefined,
    maxViewers: config.maxViewers,
    chat: config.chat,
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
    res.setHeader('Cache-Control', 'no-store');
    res
      .status(shuttingDown ? 503 : 200)
      .type('text/plain')
      .send(shuttingDown ? 'shutting down\n' : 'ready\n');
  });
  app.get('/metrics', (_req, res, next) => {
    state.presence().then((p) => {
      metrics.viewers.set(p.viewers);
      metrics.broadcasters.set(p.broadcasterOnline ? 1 : 0);
      res.setHeader('Cache-Control', 'no-store');
      res.type('text/plain; version=0.0.4; charset=utf-8').send(metrics.render());
    }, next);
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
  app.use((_req, res) => {
    res.status(404).type('text/plain').send('not found\n');
  });

  const httpServer: HttpServer = createServer(app);
  const io = new Server(httpServer, {
    serveClient: false,
    maxHttpBufferSize: 256 * 1024,
    pingInterval: 10_000,
    pingTimeout: 5_000,
    connectTimeout: 10_000,
  });

  // Presence changes are coalesced so that a wave of joins costs one broadcast, not one per join.
  let presenceTimer: NodeJS.Timeout | undefined;
  const publishPresence = (): void => {
    if (presenceTimer || shuttingDown) return;
    presenceTimer = setTimeout(() => {
      presenceTimer = undefined;
      state.presence().then(
        (p) => {
          metrics.viewers.set(p.viewers);
          metrics.broadcasters.set(p.broadcasterOnline ? 1 : 0);
          io.emit('presence', p);
        },
        (err: unknown) => log('error', 'presence failed', { error: String(err) }),
      );
    }, PRESENCE_COALESCE_MS);
    presenceTimer.unref();
  };

  io.use((socket, next) => {
    const refuse = (reason: ConnectionRejectReason, message: string): void => {
      metrics.rejectedConnections.add(1, { reason });
      const err = new Error(message) as Error & { data?: unknown };
      err.data = { reason, message };
      next(err);
    };
    void (async () => {
      if (shuttingDown) return refuse('shutting_down', 'The room is restarting, please retry in a moment.');
      const rawAuth: unknown = socket.handshake.auth;
      const rawName =
        typeof rawAuth === 'object' && rawAuth !== null
          ? (rawAuth as Record<string, unknown>)['name']
          : undefined;
      if (rawName !== undefined && rawName !== '' && !displayName(rawName).ok) {
        return refuse('invalid_name', 'That display name is not allowed.');
      }
      const auth = authPayload(rawAuth);
      if (!auth.ok) return refuse('bad_auth', 'Malformed connection request.');
      const { role, key, name } = auth.value;
      if (role === 'broadcaster') {
        if (!keysMatch(key, config.broadcasterKey))
          return refuse('bad_broadcaster_key', 'Invalid broadcaster key.');
        socket.data = { role, name: name ?? 'Host' } satisfies SocketData;
        return next();
      }
      if (config.viewerKey !== undefined && !keysMatch(key, config.viewerKey)) {
        return refuse('bad_viewer_key', 'This room is private: a valid viewer key is required.');
      }
      if (!(await state.tryAddViewer(socket.id, config.maxViewers))) {
        return refuse(
          'room_full',
          `This room is full (${config.maxViewers} viewers). Please try again later.`,
        );
      }
      // Free the seat however the connection ends, even if it closes before 'connection'.
      socket.conn.once('close', () => {
        void state.removeViewer(socket.id).then(publishPresence);
      });
      if (socket.conn.readyState !== 'open') {
        await state.removeViewer(socket.id);
        return next(new Error('connection closed during handshake'));
      }
      socket.data = {
        role,
        name: name ?? `Guest-${randomUUID().slice(0, 4)}`,
      } satisfies SocketData;
      next();
    })().catch((err: unknown) => {
      log('error', 'handshake failed', { error: String(err) });
      next(new Error('Internal error'));
    });
  });

  io.on('connection', (socket: Socket) => {
    void onConnection(socket).catch((err: unknown) => {
      log('error', 'connection handler failed', { error: String(err) });
      socket.disconnect(true);
    });
  });

  async function onConnection(socket: Socket): Promise<void> {
    const data = socket.data as SocketData;
    const bucket = new TokenBucket(
      // The broadcaster signals for every viewer (offer + ICE candidates each), so it gets more.
      data.role === 'broadcaster' ? flood.burst * 40 : flood.burst,
      data.role === 'broadcaster' ? flood.perSecond * 25 : flood.perSecond,
    );
    let floodRejections = 0;

    const reject = (reason: RejectReason, event: string, ack?: Ack): void => {
      metrics.reject(reason);
      if (ack) ack({ ok: false, error: reason });
      else socket.emit('rejected', { event: event.slice(0, 64), reason });
    };

    // Per-packet guard: floods and unknown events never reach a handler.
    socket.use(([event, ...args], next) => {
      const last = args[args.length - 1];
      const ack = typeof last === 'function' ? (last as Ack) : undefined;
      const name = typeof event === 'string' ? event : '';
      if (!bucket.take()) {
        floodRejections++;
        if (ack || floodRejections % 50 === 1) reject('flood', name, ack);
        else metrics.reject('flood'); // no reply per dropped packet: a flood must not be amplified
        if (floodRejections >= flood.disconnectAfter) {
          log('warn', 'disconnecting flooding socket', { role: data.role });
          socket.disconnect(true);
        }
        return;
      }
      if (!KNOWN_EVENTS.has(name)) {
        reject('unknown_event', name, ack);
        return;
      }
      next();
    });
    socket.on('error', () => {
      /* rejections are answered in the guard above */
    });

    const handle = (event: string, fn: (payload: unknown, ack: Ack | undefined) => Promise<void>): void => {
      socket.on(event, (...args: unknown[]) => {
        const last = args[args.length - 1];
        const ack = typeof last === 'function' ? (last as Ack) : undefined;
        const payload = ack ? (args.length > 1 ? args[0] : undefined) : args[0];
        if (args.length > (ack ? 2 : 1)) return reject('invalid_payload', event, ack);
        fn(payload, ack).catch((err: unknown) => {
          log('error', 'handler failed', { event, error: String(err) });
        });
      });
    };

    const check = <T>(r: Result<T>, event: string, ack: Ack | undefined): T | undefined => {
      if (r.ok) return r.value;
      reject(r.reason, event, ack);
      return undefined;
    };

    handle('signal', async (payload, ack) => {
      const env = check(signalEnvelope(payload), 'signal', ack);
      if (!env) return;
      let target: string | undefined;
      if (data.role === 'broadcaster') {
        if (env.to === undefined || !(await state.hasViewer(env.to)))
          return reject('unknown_target', 'signal', ack);
        target = env.to;
      } else {
        if (env.to !== undefined) return reject('not_allowed', 'signal', ack);
        target = await state.broadcaster();
        if (target === undefined) return reject('unknown_target', 'signal', ack);
      }
      metrics.signalingMessages.add(1);
      io.to(target).emit('signal', { from: socket.id, pc: env.pc, data: env.data });
      ack?.({ ok: true });
    });

    handle('stream:state', async (payload, ack) => {
      const live = check(streamStatePayload(payload), 'stream:state', ack);
      if (live === undefined) return;
      if (data.role !== 'broadcaster' || !(await state.setLive(socket.id, live))) {
        return reject('not_allowed', 'stream:state', ack);
      }
      publishPresence();
      ack?.({ ok: true });
    });

    handle('chat:send', async (payload, ack) => {
      if (!config.chat.enabled) return reject('chat_disabled', 'chat:send', ack);
      const text = check(chatPayload(payload, config.chat.maxMessageLength), 'chat:send', ack);
      if (text === undefined) return;
      if (!(await state.takeChatToken(socket.id, config.chat.messagesPerMinute, Date.now()))) {
        return reject('rate_limited', 'chat:send', ack);
      }
      const message: ChatMessage = {
        id: randomUUID(),
        name: data.name,
        role: data.role,
        text,
        ts: Date.now(),
      };
      await state.addMessage(message, config.chat.historySize);
      metrics.chatMessages.add(1);
      io.emit('chat:message', message);
      ack?.({ ok: true, message });
    });

    handle('name:set', async (payload, ack) => {
      const name = namePayload(payload);
      if (!name.ok) {
        metrics.reject(name.reason);
        ack?.({ ok: false, error: 'invalid_name' });
        if (!ack) socket.emit('rejected', { event: 'name:set', reason: name.reason });
        return;
      }
      data.name = name.value;
      ack?.({ ok: true, name: name.value });
    });

    socket.on('disconnect', () => {
      void (async () => {
        await state.forgetUser(socket.id);
        if (data.role === 'viewer') {
          await state.removeViewer(socket.id);
          const b = await state.broadcaster();
          if (b !== undefined) io.to(b).emit('viewer:left', { id: socket.id });
          publishPresence();
        } else if (await state.clearBroadcaster(socket.id)) {
          publishPresence();
        }
      })().catch((err: unknown) => log('error', 'disconnect handler failed', { error: String(err) }));
    });

    const welcome = {
      id: socket.id,
      role: data.role,
      name: data.name,
      title: config.title,
      iceServers: config.iceServers,
      chat: { ...config.chat, history: config.chat.enabled ? await state.history() : [] },
    };

    if (data.role === 'broadcaster') {
      const previous = await state.setBroadcaster(socket.id);
      if (previous !== undefined) {
        io.to(previous).emit('replaced', {});
        io.in(previous).disconnectSockets(true);
      }
      socket.emit('welcome', { ...welcome, viewers: await state.viewerIds() });
      log('info', 'broadcaster connected');
    } else {
      socket.emit('welcome', welcome);
      const b = await state.broadcaster();
      if (b !== undefined) io.to(b).emit('viewer:joined', { id: socket.id });
    }
    publishPresence();
  }

  await new Promise<void>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(options.port ?? config.port, options.host ?? config.listenAddress, () => {
      httpServer.off('error', reject);
      resolve();
    });
  });
  const addr = httpServer.address() as AddressInfo;
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  const url = `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`;

  let closing: Promise<void> | undefined;
  return {
    url,
    port: addr.port,
    metrics,
    io,
    get shuttingDown() {
      return shuttingDown;
    },
    close(): Promise<void> {
      closing ??= (async () => {
        shuttingDown = true;
        clearTimeout(presenceTimer);
        io.emit('server:shutdown', { reconnect: true, retryInMs: 1000 + drainMs });
        if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
        io.disconnectSockets(true);
        await new Promise<void>((resolve) => {
          void io.close(() => resolve());
          httpServer.closeIdleConnections();
        });
        httpServer.closeAllConnections();
      })();
      return closing;
    },
  };
}
