/**
 * Room configuration, read from the environment variables the StreamRoom operator sets on the room
 * container. `loadConfig` is pure: it only reads the object it is given and throws a `ConfigError`
 * naming the offending variable.
 */

import { isIP } from 'node:net';
import { fileURLToPath } from 'node:url';
import { MEDIA_MODES, type IceServer, type MediaMode } from '../protocol.js';

export type { IceServer };

export interface ChatConfig {
  enabled: boolean;
  historySize: number;
  maxMessageLength: number;
  messagesPerMinute: number;
}

export interface RoomConfig {
  port: number;
  /** Port of /metrics (not exposed by the room's Service); 0 = any free port. */
  metricsPort: number;
  /** Interface to bind both ports (LISTEN_ADDRESS); undefined = all interfaces, as a pod needs. */
  listenAddress: string | undefined;
  roomName: string;
  roomNamespace: string;
  title: string;
  broadcasterKey: string;
  /** Set only when the room is private. */
  viewerKey: string | undefined;
  /** 0 means unlimited. */
  maxViewers: number;
  chat: ChatConfig;
  /** Chat messages gather this long and go to each client as one frame (CHAT_BATCH_MS). */
  chatBatchMs: number;
  iceServers: IceServer[];
  shutdownTimeoutSeconds: number;
  /** Shared state of a multi-replica room; undefined = single replica, state in memory. */
  redis: RedisConfig | undefined;
  media: MediaConfig;
  limits: LimitsConfig;
  /** Proxies (IPs or CIDRs) whose X-Forwarded-For is believed for the per-address limits. */
  trustedProxies: string[];
  /** Origins besides the room's own whose pages may open a socket (`https://host[:port]`). */
  allowedOrigins: string[];
}

/** Bounds against visitors who try to exhaust the room (see the README, "Limits"). */
export interface LimitsConfig {
  /** UTF-8 bytes of chat history kept (and sent in every welcome). */
  chatHistoryBytes: number;
  /** Viewer seats one client address may hold, room-wide; 0 = unlimited. */
  viewersPerAddress: number;
  /** New user ids one client address gets per minute (beyond, it shares one); 0 = unlimited. */
  newUsersPerAddressPerMinute: number;
}

export interface MediaConfig {
  /** SFU: the video goes through this pod's relay; PeerToPeer: from the broadcaster to each viewer. */
  mode: MediaMode;
  /** The relay (SFU only): room-image/media, started by the room server. */
  relay: RelayConfig;
  /** TURN rooms: browsers reach the relays through the cluster's TURN gateway. */
  turn: TurnConfig | undefined;
}

/** The cluster's TURN gateway (TURN rooms): its URLs, and this room's key to mint credentials with. */
export interface TurnConfig {
  urls: string[];
  /** The room's own key (derived from the gateway's secret by the operator). */
  key: string;
  /** How long a visitor's credential lasts. */
  ttlSeconds: number;
}

export interface RelayConfig {
  /** The streamroom-relay binary. */
  path: string;
  /** The one UDP port of all media (0: any free port). */
  udpPort: number;
  /** ICE-TCP port for networks that block UDP (0: off). */
  tcpPort: number;
  listenAddress: string;
  /** Addresses to advertise instead of the interfaces' (a node's address, NAT 1:1). */
  announceAddresses: string[];
  /** Also offer loopback candidates (a browser on the same machine, in tests). */
  includeLoopback: boolean;
}

export interface RedisConfig {
  /** `redis://` or `rediss://` URL (may hold a password: never log it). */
  url: string;
  /** Prefix of every key, stream and channel of this room, e.g. `streamroom:<namespace>:<name>:`. */
  keyPrefix: string;
}

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    message: string,
  ) {
    super(`${variable}: ${message}`);
    this.name = 'ConfigError';
  }
}

type Env = Readonly<Record<string, string | undefined>>;

/** Told about a value that was adjusted rather than refused (the server logs it). */
export type ConfigWarning = (variable: string, message: string) => void;

const MIN_KEY_LENGTH = 8;

function str(env: Env, name: string): string | undefined {
  const v = env[name];
  if (v === undefined) return undefined;
  const t = v.trim();
  return t === '' ? undefined : t;
}

function int(env: Env, name: string, def: number, min: number, max: number): number {
  const raw = str(env, name);
  if (raw === undefined) return def;
  if (!/^-?\d+$/.test(raw)) throw new ConfigError(name, `must be an integer, got ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n < min || n > max) throw new ConfigError(name, `must be between ${min} and ${max}, got ${n}`);
  return n;
}

function bool(env: Env, name: string, def: boolean): boolean {
  const raw = str(env, name);
  if (raw === undefined) return def;
  const l = raw.toLowerCase();
  if (l === 'true') return true;
  if (l === 'false') return false;
  throw new ConfigError(name, `must be "true" or "false", got ${JSON.stringify(raw)}`);
}

function key(env: Env, name: string, required: true): string;
function key(env: Env, name: string, required: false): string | undefined;
function key(env: Env, name: string, required: boolean): string | undefined {
  // Keys are not trimmed beyond surrounding whitespace (a Secret mounted as env often ends in "\n").
  const v = str(env, name);
  if (v === undefined) {
    if (required) throw new ConfigError(name, 'is required');
    return undefined;
  }
  if (v.length < MIN_KEY_LENGTH) throw new ConfigError(name, `must be at least ${MIN_KEY_LENGTH} characters`);
  if (v.length > 512) throw new ConfigError(name, 'must be at most 512 characters');
  return v;
}

const ICE_URL = /^(stun|stuns|turn|turns):[^\s]+$/;

function iceServers(env: Env): IceServer[] {
  const raw = str(env, 'ICE_SERVERS');
  if (raw === undefined) return [];
  let parsed: unknown;
  try {
    parsed = JSON.parse(raw);
  } catch {
    throw new ConfigError('ICE_SERVERS', 'is not valid JSON');
  }
  if (!Array.isArray(parsed)) throw new ConfigError('ICE_SERVERS', 'must be a JSON array');
  if (parsed.length > 16) throw new ConfigError('ICE_SERVERS', 'must have at most 16 entries');
  return parsed.map((entry: unknown, i): IceServer => {
    const where = `ICE_SERVERS[${i}]`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new ConfigError('ICE_SERVERS', `${where} must be an object`);
    }
    const e = entry as Record<string, unknown>;
    for (const k of Object.keys(e)) {
      if (k !== 'urls' && k !== 'username') {
        throw new ConfigError(
          'ICE_SERVERS',
          `${where} has unknown field ${JSON.stringify(k)} (credentials go in ICE_SERVER_${i}_CREDENTIAL)`,
        );
      }
    }
    const urls = e['urls'];
    const list = typeof urls === 'string' ? [urls] : urls;
    if (!Array.isArray(list) || list.length === 0 || !list.every((u) => typeof u === 'string')) {
      throw new ConfigError('ICE_SERVERS', `${where}.urls must be a string or a non-empty array of strings`);
    }
    for (const u of list as string[]) {
      if (!ICE_URL.test(u))
        throw new ConfigError('ICE_SERVERS', `${where}.urls has an invalid URL ${JSON.stringify(u)}`);
    }
    const server: IceServer = { urls: typeof urls === 'string' ? urls : [...(list as string[])] };
    const username = e['username'];
    if (username !== undefined) {
      if (typeof username !== 'string')
        throw new ConfigError('ICE_SERVERS', `${where}.username must be a string`);
      server.username = username;
    }
    const credential = env[`ICE_SERVER_${i}_CREDENTIAL`];
    if (credential !== undefined && credential !== '') server.credential = credential.trim();
    return server;
  });
}

/** Checks the URL's shape only; the message never repeats the value (it may hold a password). */
function redisUrl(env: Env): string | undefined {
  const raw = str(env, 'ROOM_REDIS_URL');
  if (raw === undefined) return undefined;
  const hint = 'must look like redis://[:password@]host:port[/db] (or rediss:// for TLS)';
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    throw new ConfigError('ROOM_REDIS_URL', `is not a URL: it ${hint}`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new ConfigError('ROOM_REDIS_URL', hint);
  }
  if (url.hostname === '') throw new ConfigError('ROOM_REDIS_URL', `has no host: it ${hint}`);
  if (!/^(\/\d{0,5})?$/.test(url.pathname) || url.search !== '' || url.hash !== '') {
    throw new ConfigError('ROOM_REDIS_URL', `may only name a database number after the host: it ${hint}`);
  }
  return raw;
}

const KEY_PREFIX = /^[\x21-\x7e]{1,200}$/;

function redis(env: Env, namespace: string, name: string): RedisConfig | undefined {
  const url = redisUrl(env);
  const prefix = str(env, 'ROOM_REDIS_KEY_PREFIX');
  if (prefix !== undefined && !KEY_PREFIX.test(prefix)) {
    throw new ConfigError('ROOM_REDIS_KEY_PREFIX', 'must be 1-200 printable characters without spaces');
  }
  if (url === undefined) return undefined;
  return { url, keyPrefix: prefix ?? `streamroom:${namespace}:${name}:` };
}

/** The CRD's maxLength of spec.title (Kubernetes counts characters: Unicode code points). */
const MAX_TITLE_CHARACTERS = 120;

/**
 * The page title: at most MAX_TITLE_CHARACTERS characters, as the StreamRoom allows. A longer one
 * (set by hand) is cut at the last whole grapheme that fits, with a warning: a title is never a
 * reason not to start.
 */
function title(env: Env, roomName: string, warn: ConfigWarning): string {
  const raw = str(env, 'ROOM_TITLE') ?? roomName;
  const characters = [...raw].length;
  if (characters <= MAX_TITLE_CHARACTERS) return raw;
  let cut = '';
  let kept = 0;
  for (const { segment } of new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(raw)) {
    const n = [...segment].length;
    if (kept + n > MAX_TITLE_CHARACTERS) break;
    cut += segment;
    kept += n;
  }
  warn(
    'ROOM_TITLE',
    `has ${characters} characters, truncated to ${MAX_TITLE_CHARACTERS} characters (the StreamRoom allows at most ${MAX_TITLE_CHARACTERS})`,
  );
  // A single grapheme longer than the limit (a pile of combining marks): cut between characters.
  return cut || [...raw].slice(0, MAX_TITLE_CHARACTERS).join('');
}

/** `ROOM_TRUSTED_PROXIES`: IP addresses or CIDR blocks, comma-separated. */
function trustedProxies(env: Env): string[] {
  const raw = str(env, 'ROOM_TRUSTED_PROXIES');
  if (raw === undefined) return [];
  return raw.split(',').map((entry) => {
    const e = entry.trim();
    const [ip = '', prefix, ...rest] = e.split('/');
    const family = isIP(ip);
    const bits = family === 6 ? 128 : 32;
    const validPrefix = prefix === undefined || (/^\d{1,3}$/.test(prefix) && Number(prefix) <= bits);
    if (family === 0 || !validPrefix || rest.length > 0) {
      throw new ConfigError(
        'ROOM_TRUSTED_PROXIES',
        `must be a comma-separated list of IP addresses or CIDR blocks, got ${JSON.stringify(e)}`,
      );
    }
    return e;
  });
}

/** `ROOM_ALLOWED_ORIGINS`: origins (`scheme://host[:port]`), comma-separated, kept normalized. */
function allowedOrigins(env: Env): string[] {
  const raw = str(env, 'ROOM_ALLOWED_ORIGINS');
  if (raw === undefined) return [];
  return raw.split(',').map((entry) => {
    const e = entry.trim();
    let url: URL | undefined;
    try {
      url = new URL(e);
    } catch {
      url = undefined;
    }
    const bare = url && url.username === '' && url.password === '' && url.search === '' && url.hash === '';
    if (!url || !bare || !['http:', 'https:'].includes(url.protocol) || !['', '/'].includes(url.pathname)) {
      throw new ConfigError(
        'ROOM_ALLOWED_ORIGINS',
        `must be a comma-separated list of origins like https://example.com, got ${JSON.stringify(e)}`,
      );
    }
    return url.origin;
  });
}

const DEFAULT_RELAY_PATH = fileURLToPath(new URL('../../media/dist/streamroom-relay', import.meta.url));
const IP = /^(\d{1,3}(\.\d{1,3}){3}|[0-9a-fA-F:]+)$/;

function addresses(env: Env, name: string): string[] {
  const raw = str(env, name);
  if (raw === undefined) return [];
  const list = raw.split(',').map((a) => a.trim());
  for (const a of list) {
    if (!IP.test(a))
      throw new ConfigError(name, `must be a comma-separated list of IP addresses, got ${JSON.stringify(a)}`);
  }
  return list;
}

function media(env: Env): MediaConfig {
  const mode = str(env, 'ROOM_MEDIA_MODE') ?? 'SFU';
  if (!(MEDIA_MODES as readonly string[]).includes(mode)) {
    throw new ConfigError(
      'ROOM_MEDIA_MODE',
      `must be one of ${MEDIA_MODES.join(', ')}, got ${JSON.stringify(mode)}`,
    );
  }
  const listenAddress = str(env, 'ROOM_RELAY_LISTEN_ADDRESS') ?? '0.0.0.0';
  if (!IP.test(listenAddress)) throw new ConfigError('ROOM_RELAY_LISTEN_ADDRESS', 'must be an IP address');
  const turnUrls = (str(env, 'ROOM_TURN_URLS') ?? '')
    .split(',')
    .map((u) => u.trim())
    .filter(Boolean);
  for (const u of turnUrls) {
    if (!/^turns?:[^\s]+$/.test(u))
      throw new ConfigError('ROOM_TURN_URLS', `has an invalid URL ${JSON.stringify(u)}`);
  }
  const turnKey = str(env, 'ROOM_TURN_KEY');
  if (turnUrls.length > 0 && turnKey === undefined)
    throw new ConfigError('ROOM_TURN_KEY', 'is required with ROOM_TURN_URLS');
  return {
    mode: mode as MediaMode,
    turn: turnUrls.length
      ? { urls: turnUrls, key: turnKey!, ttlSeconds: int(env, 'ROOM_TURN_TTL_SECONDS', 4 * 3600, 60, 86_400) }
      : undefined,
    relay: {
      path: str(env, 'ROOM_RELAY_PATH') ?? DEFAULT_RELAY_PATH,
      udpPort: int(env, 'ROOM_RELAY_UDP_PORT', 0, 0, 65535),
      tcpPort: int(env, 'ROOM_RELAY_TCP_PORT', 0, 0, 65535),
      listenAddress,
      announceAddresses: addresses(env, 'ROOM_RELAY_ANNOUNCE_ADDRESSES'),
      includeLoopback: bool(env, 'ROOM_RELAY_INCLUDE_LOOPBACK', false),
    },
  };
}

export function loadConfig(env: Env, warn: ConfigWarning = () => undefined): RoomConfig {
  const roomName = str(env, 'ROOM_NAME') ?? 'room';
  const broadcasterKey = key(env, 'ROOM_BROADCASTER_KEY', true);
  const viewerKey = key(env, 'ROOM_VIEWER_KEY', false);
  const roomNamespace = str(env, 'ROOM_NAMESPACE') ?? 'default';
  const port = int(env, 'PORT', 8080, 0, 65535);
  const metricsPort = int(env, 'ROOM_METRICS_PORT', 9090, 0, 65535);
  if (metricsPort !== 0 && metricsPort === port)
    throw new ConfigError('ROOM_METRICS_PORT', 'must differ from PORT');
  return {
    port,
    metricsPort,
    listenAddress: str(env, 'LISTEN_ADDRESS'),
    roomName,
    roomNamespace,
    title: title(env, roomName, warn),
    broadcasterKey,
    viewerKey,
    maxViewers: int(env, 'ROOM_MAX_VIEWERS', 0, 0, 1_000_000),
    chat: {
      enabled: bool(env, 'CHAT_ENABLED', true),
      historySize: int(env, 'CHAT_HISTORY_SIZE', 50, 0, 1000),
      maxMessageLength: int(env, 'CHAT_MAX_MESSAGE_LENGTH', 500, 1, 10_000),
      messagesPerMinute: int(env, 'CHAT_MESSAGES_PER_MINUTE', 20, 1, 6000),
    },
    chatBatchMs: int(env, 'CHAT_BATCH_MS', 50, 1, 1000),
    iceServers: iceServers(env),
    shutdownTimeoutSeconds: int(env, 'SHUTDOWN_TIMEOUT_SECONDS', 20, 1, 3600),
    redis: redis(env, roomNamespace, roomName),
    media: media(env),
    limits: {
      // Every welcome carries the history, and a stalled client is dropped past 2 MiB (backpressure.ts).
      chatHistoryBytes: int(env, 'CHAT_HISTORY_MAX_BYTES', 256 * 1024, 1024, 1024 * 1024),
      viewersPerAddress: int(env, 'ROOM_MAX_VIEWERS_PER_ADDRESS', 20, 0, 1_000_000),
      newUsersPerAddressPerMinute: int(env, 'ROOM_NEW_USERS_PER_ADDRESS_PER_MINUTE', 30, 0, 100_000),
    },
    trustedProxies: trustedProxies(env),
    allowedOrigins: allowedOrigins(env),
  };
}
