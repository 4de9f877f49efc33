/** Composes the room server: express app, socket.io with handshake, guard and feature modules. */
import { createServer, type Server as HttpServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Server, type ServerOptions as SocketIoOptions } from 'socket.io';
import type { IceServer, Welcome } from '../protocol.js';
import { handshake } from './auth.js';
import { createBackplane, type Backplane } from './backplane.js';
import { dropWhenStalled } from './backpressure.js';
import { chatWelcome, registerChat } from './chat.js';
import { ChatFanout } from './chat-fanout.js';
import type { RoomConfig } from './config.js';
import type { RoomContext, RoomServer, RoomSocket } from './context.js';
import { DEFAULT_FLOOD, guardSocket, type FloodLimits } from './guard.js';
import { createApp, createMetricsApp, transportsFor } from './http.js';
import { createLive, MemoryActivity, RedisActivity } from './live.js';
import { createLogger, type Log } from './log.js';
import { createMedia, type Media } from './media.js';
import { RoomMetrics } from './metrics.js';
import { originGuard } from './origin.js';
import { presencePublisher } from './presence.js';
import { applyTick, joinRoom, leaveRoom, registerSignaling } from './signaling.js';
import { turnCredential } from './turn.js';
import { MemoryRoomState, type RoomState } from './state.js';
import { chatStreamName } from './redis-state.js';
import { startChatRelay, type ChatRelay } from './chat-relay.js';

export { keysMatch } from './auth.js';
export { createLogger, type Log } from './log.js';

export interface ServerOptions {
  /** Directory with the built client (index.html and hashed assets). Defaults to dist/public. */
  publicDir?: string;
  /**
   * Room state store for a single replica; defaults to in-memory. Ignored when the config names a
   * Redis (the backplane then brings its own shared state).
   */
  state?: RoomState;
  /** Interface to listen on; defaults to all interfaces. Tests pass 127.0.0.1. */
  host?: string;
  /** Port; defaults to config.port. */
  port?: number;
  /** Port of /metrics; defaults to config.metricsPort. */
  metricsPort?: number;
  /** Milliseconds between announcing shutdown and disconnecting clients. */
  drainMs?: number;
  log?: Log;
  /** Per-socket message budget (token bucket). */
  flood?: FloodLimits;
  /** How long a joined socket filters out what its history had (see chat-fanout.ts). */
  chatCatchUpMs?: number;
  /** socket.io options over the room's (the chat bench compares parsers and per-message deflate). */
  socketIo?: Partial<SocketIoOptions>;
}

export interface RunningServer {
  url: string;
  port: number;
  /** Base URL of the metrics port (`${metricsUrl}/metrics`). */
  metricsUrl: string;
  metricsPort: number;
  metrics: RoomMetrics;
  io: RoomServer;
  /** SFU rooms: the media relay and its connections. */
  media: Media | undefined;
  readonly shuttingDown: boolean;
  /** Stops accepting, tells clients to reconnect, disconnects them and closes the listener. */
  close(): Promise<void>;
}

const defaultPublicDir = (): string => fileURLToPath(new URL('../public/', import.meta.url));

export async function startServer(config: RoomConfig, options: ServerOptions = {}): Promise<RunningServer> {
  const log = options.log ?? createLogger();
  const backplane: Backplane | undefined = config.redis ? createBackplane(config.redis, log) : undefined;
  const state = backplane?.state ?? options.state ?? new MemoryRoomState();
  const publicDir = options.publicDir ?? defaultPublicDir();
  const drainMs = options.drainMs ?? 0;
  const flood = options.flood ?? DEFAULT_FLOOD;
  const metrics = new RoomMetrics({ name: config.roomName, namespace: config.roomNamespace }, !!backplane);
  let shuttingDown = false;
  const isShuttingDown = (): boolean => shuttingDown;
  // (the chat relay, started further down, is not ready either until it knows where it reads from)
  const chatRef: { relay?: ChatRelay } = {};
  const unavailableReason = (): string | undefined =>
    backplane?.unavailableReason() ??
    (chatRef.relay?.positioned() === false ? 'chat between replicas not connected' : undefined);
  // (the relay needs the socket.io server, which needs the express app: looked up per request)
  const mediaRef: { media?: Media } = {};
  const pending = new Set<Promise<unknown>>();
  const track = (work: Promise<unknown>): void => {
    pending.add(work);
    void work.finally(() => pending.delete(work));
  };

  // GET /live on the metrics port: the room's live facts for the operator (live.ts)
  const live = createLive({
    state,
    log,
    activity:
      backplane && config.redis
        ? new RedisActivity(backplane.client, config.redis.keyPrefix)
        : new MemoryActivity(),
  });
  const appContext = {
    config,
    state,
    metrics,
    isShuttingDown,
    unavailableReason,
    localSockets: () => io.of('/').sockets.values(),
    media: () => mediaRef.media,
    live,
  };
  const httpServer: HttpServer = createServer(createApp(appContext, publicDir));
  const metricsServer: HttpServer = createServer(createMetricsApp(appContext));
  const origins = originGuard(config.allowedOrigins, () =>
    metrics.rejectedConnections.add(1, { reason: 'bad_origin' }),
  );
  const io: RoomServer = new Server(httpServer, {
    serveClient: false,
    maxHttpBufferSize: 256 * 1024,
    pingInterval: 10_000,
    pingTimeout: 5_000,
    connectTimeout: 10_000,
    // Several replicas: WebSocket only, so no request of a session depends on reaching the same pod.
    transports: transportsFor(config),
    allowRequest: origins.allowRequest,
    ...(backplane ? { adapter: backplane.adapter } : {}),
    ...options.socketIo,
  });
  origins.guardUpgrades(httpServer);
  live.attach(io);
  const notifyPeers = backplane ? () => io.serverSideEmit('streamroom:presence') : undefined;
  const presence = presencePublisher({ io, state, metrics, log, isShuttingDown }, notifyPeers);
  io.on('streamroom:presence', () => {
    presence.refresh();
    media?.presenceChanged();
  });
  const media = config.media.mode === 'SFU' ? createMedia({ config, io, log, state }) : undefined;
  mediaRef.media = media;
  const chat = new ChatFanout({
    io,
    tickMs: config.chatBatchMs,
    ...(options.chatCatchUpMs !== undefined ? { catchUpMs: options.chatCatchUpMs } : {}),
    // Several replicas: one entry per tick on the room's chat stream (chat-relay.ts).
    ...(backplane && config.redis
      ? {
          publish: (messages) =>
            void backplane.state.publishChat(relay!.origin, messages).catch((err: unknown) => {
              log.warn({ err }, 'publishing chat to the other replicas failed');
            }),
        }
      : {}),
  });
  const relay =
    backplane && config.redis
      ? startChatRelay({
          url: config.redis.url,
          stream: chatStreamName(config.redis.keyPrefix),
          log,
          onBatch: (messages) => chat.receive(messages),
        })
      : undefined;
  chatRef.relay = relay;
  const ctx: RoomContext = {
    config,
    state,
    metrics,
    io,
    log,
    media,
    isShuttingDown,
    unavailableReason,
    publishPresence: presence.publish,
    track,
    chat,
  };

  io.use(handshake(ctx));
  io.on('connection', (socket) => {
    void onConnection(ctx, socket, flood).catch((err: unknown) => {
      log.warn({ err }, 'connection handler failed');
      socket.disconnect(true);
    });
  });
  backplane?.start((r) => {
    track(
      applyTick(ctx, r).then(
        (changed) => (changed ? presence.publish() : presence.refresh()),
        (err: unknown) => log.warn({ err }, 'applying the heartbeat failed'),
      ),
    );
  });

  const listenAddress = options.host ?? config.listenAddress;
  const addr = await listen(httpServer, options.port ?? config.port, listenAddress);
  const metricsAddr = await listen(metricsServer, options.metricsPort ?? config.metricsPort, listenAddress);
  live.start();

  let closing: Promise<void> | undefined;
  return {
    url: baseUrl(addr),
    port: addr.port,
    metricsUrl: baseUrl(metricsAddr),
    metricsPort: metricsAddr.port,
    metrics,
    io,
    media,
    get shuttingDown() {
      return shuttingDown;
    },
    close(): Promise<void> {
      closing ??= (async () => {
        shuttingDown = true;
        chat.flush(); // what was accepted goes out before the sockets are told to leave
        // Only this replica's sockets: the rest of the room stays where it is.
        io.local.emit('server:shutdown', { reconnect: true, retryInMs: 1000 });
        if (drainMs > 0) await new Promise((r) => setTimeout(r, drainMs));
        io.local.disconnectSockets(true);
        // Let the leave handlers finish their writes to the shared state (bounded in time).
        const deadline = Date.now() + 2000;
        while (pending.size > 0 && Date.now() < deadline) {
          const rest = new Promise((r) => setTimeout(r, deadline - Date.now()));
          await Promise.race([Promise.allSettled([...pending]), rest]);
        }
        if (backplane) {
          await backplane.release();
          notifyPeers?.();
        }
        presence.stop();
        live.stop();
        chat.close();
        await new Promise<void>((resolve) => {
          void io.close(() => resolve());
          httpServer.closeIdleConnections();
        });
        httpServer.closeAllConnections();
        await new Promise<void>((resolve) => {
          metricsServer.close(() => resolve());
          metricsServer.closeAllConnections();
        });
        await Promise.all([backplane?.close(), media?.close(), relay?.close()]);
      })();
      return closing;
    },
  };
}

/** Wires an authenticated socket: guard and handlers first (synchronously), then the welcome. */
async function onConnection(ctx: RoomContext, socket: RoomSocket, flood: FloodLimits): Promise<void> {
  const data = socket.data;
  dropWhenStalled(ctx, socket);
  const handlers = guardSocket(ctx, socket, flood);
  registerSignaling(ctx, socket, handlers);
  registerChat(ctx, socket, handlers);
  socket.on('disconnect', () => {
    ctx.chat.leave(socket);
    ctx.track(
      leaveRoom(ctx, socket).catch((err: unknown) => ctx.log.warn({ err }, 'disconnect handler failed')),
    );
  });

  // From before the history is read until the welcome: see chat-fanout.ts.
  ctx.chat.beginJoin(socket);
  const { chat, seq } = await chatWelcome(ctx);
  const welcome: Welcome = {
    id: socket.id,
    role: data.role,
    name: data.name,
    user: data.userToken,
    title: ctx.config.title,
    iceServers: iceServersFor(ctx.config, data.user),
    media: { mode: ctx.config.media.mode },
    chat,
  };
  await joinRoom(ctx, socket, welcome, () => ctx.chat.completeJoin(socket, seq));
}

/** The ICE servers a visitor gets: the room's own, and in TURN rooms a credential of its own. */
function iceServersFor(config: RoomContext['config'], user: string): IceServer[] {
  const turn = config.media.turn;
  if (!turn) return config.iceServers;
  const room = `${config.roomNamespace}/${config.roomName}`;
  return [...config.iceServers, turnCredential(turn, room, user, Date.now())];
}

/** A URL to reach a listening address (a wildcard address is reached on loopback). */
function baseUrl(addr: AddressInfo): string {
  const host = addr.family === 'IPv6' ? `[${addr.address}]` : addr.address;
  return `http://${host === '0.0.0.0' || host === '[::]' ? '127.0.0.1' : host}:${addr.port}`;
}

function listen(httpServer: HttpServer, port: number, host: string | undefined): Promise<AddressInfo> {
  return new Promise<AddressInfo>((resolve, reject) => {
    httpServer.once('error', reject);
    httpServer.listen(port, host, () => {
      httpServer.off('error', reject);
      resolve(httpServer.address() as AddressInfo);
    });
  });
}
