/**
 * One Redis ACL user per room on the shared Redis (`--shared-redis-url`).
 *
 * Only the operator holds the admin URL. Each room gets a user that may touch nothing but the keys
 * and pub/sub channels under its own prefix (`streamroom:<namespace>:<name>:`), and only with the
 * commands the room server (room-image/src/server/redis-state.ts, redis-scripts.ts, backplane.ts)
 * and its socket.io Redis Streams adapter send. Requires Redis 6.2 or later (channel rules).
 */
import { createHash } from 'node:crypto';
import { createClient } from '@redis/client';

const NAMESPACE = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const NAME = /^(?=.{1,253}$)[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
/** What the room server accepts as a key prefix: printable ASCII, no spaces. */
const KEY_PREFIX = /^[\x21-\x7e]{1,200}$/;

function checkRoom(namespace: string, name: string): void {
  if (!NAMESPACE.test(namespace)) {
    throw new Error(`invalid room namespace ${JSON.stringify(namespace)}: must be a DNS label`);
  }
  if (!NAME.test(name)) {
    throw new Error(`invalid room name ${JSON.stringify(name)}: must be a DNS subdomain name`);
  }
}

/**
 * The prefix of every key, stream and channel of a room on a shared Redis (the operator hands it
 * to the room as ROOM_REDIS_KEY_PREFIX; builders.ts `redisKeyPrefix`). Kubernetes names hold no
 * ':', so no room's prefix is the start of another's.
 */
export function roomKeyPrefix(namespace: string, name: string): string {
  checkRoom(namespace, name);
  return `streamroom:${namespace}:${name}:`;
}

/** The Redis ACL user of a room, e.g. `room:team-a:demo`. */
export function aclUserName(namespace: string, name: string): string {
  checkRoom(namespace, name);
  return `room:${namespace}:${name}`;
}

function parseRedisUrl(url: string, what: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`${what} is not a URL`); // the URL may hold a password: never echo it
  }
  if (parsed.protocol !== 'redis:' && parsed.protocol !== 'rediss:') {
    throw new Error(`${what} must be a redis:// or rediss:// URL`);
  }
  return parsed;
}

/**
 * The URL a room connects with: the admin URL (same scheme, so TLS stays on, host, port and
 * database) with the room's user and password instead of the admin credentials.
 */
export function roomRedisUrl(adminUrl: string, namespace: string, name: string, password: string): string {
  const url = parseRedisUrl(adminUrl, 'the shared Redis URL');
  if (password === '') throw new Error('the room Redis password is empty');
  url.username = encodeURIComponent(aclUserName(namespace, name));
  url.password = encodeURIComponent(password);
  return url.href;
}

/**
 * Commands node-redis sends while connecting that only newer Redis versions know (CLIENT SETINFO
 * since 7.2, CLIENT MAINT_NOTIFICATIONS since 8.2). node-redis ignores their failure; they are
 * granted where the server has them, as ACL SETUSER refuses to name an unknown command.
 */
export const VERSION_DEPENDENT_COMMANDS = ['client|setinfo', 'client|maint_notifications'] as const;
export type VersionDependentCommand = (typeof VERSION_DEPENDENT_COMMANDS)[number];

/**
 * Everything a room sends, in ACL names. Not granted because the room does not use them, though
 * the adapter can send them: connection state recovery (SET, MULTI/GET/DEL/EXEC, XRANGE),
 * fetchSockets and serverSideEmit with an acknowledgement (PUBSUB NUMSUB, which Redis does not
 * limit to the user's channels, so it would reveal other rooms' subscriber counts), sharded
 * pub/sub (SPUBLISH, SSUBSCRIBE).
 */
const ROOM_COMMANDS: readonly string[] = [
  // The node-redis handshake: HELLO 3 AUTH user password (Redis lets every user run these two
  // anyway), SELECT when the URL names a database, then the version-dependent CLIENT subcommands.
  'hello',
  'auth',
  'select',
  ...VERSION_DEPENDENT_COMMANDS,
  // RedisRoomState outside its scripts: removing viewers, reading the chat history.
  'zrem',
  'lrange',
  // The state's Lua scripts: EVALSHA, then EVAL when Redis lacks the script (NOSCRIPT). Redis
  // checks each command a script calls against these same rules, so these are listed as well:
  'evalsha',
  'eval',
  'time', // every script reads the Redis clock
  'zadd',
  'zscore',
  'zcount',
  'zcard',
  'zrangebyscore',
  'zremrangebyscore',
  'hget',
  'hmget',
  'hset',
  'hincrby', // the chat's room-wide sequence number
  'hdel',
  'rpush',
  'ltrim',
  'del',
  'pexpire',
  // The socket.io Redis Streams adapter: broadcasts, socket joins and disconnects go through the
  // stream (XADD with MAXLEN ~ trimming, a blocking XREAD loop); serverSideEmit and the replies
  // to other replicas' requests through classic pub/sub.
  'xadd',
  'xread',
  // The chat stream (room-image/src/server/chat-relay.ts): one entry per replica and tick; a
  // replica starts reading at the newest entry.
  'xrevrange',
  'publish',
  'subscribe',
];

/** The prefix as a glob pattern that matches only itself (ACL patterns are globs). */
const globLiteral = (s: string): string => s.replace(/[*?[\]\\]/g, (c) => `\\${c}`);

/**
 * The ACL rules of a room whose keys, stream and channels all start with `prefix` (the adapter's
 * stream is `<prefix>sio`, its channels `<prefix>sio#<namespace>#...`). `unavailable` drops the
 * version-dependent commands the server does not know. Password and on/off are not part of it.
 */
export function aclRules(prefix: string, unavailable: readonly VersionDependentCommand[] = []): string[] {
  if (!KEY_PREFIX.test(prefix)) {
    throw new Error('invalid Redis key prefix: must be 1-200 printable characters without spaces');
  }
  const pattern = `${globLiteral(prefix)}*`;
  const commands = ROOM_COMMANDS.filter((c) => !(unavailable as readonly string[]).includes(c));
  return [
    'resetkeys',
    `~${pattern}`,
    'resetchannels',
    `&${pattern}`,
    '-@all',
    ...commands.map((c) => `+${c}`),
  ];
}

export class RedisAclError extends Error {
  override name = 'RedisAclError';
}

export interface RedisAclOptions {
  /** Bound on one operation, waiting for the connection included (default 5 s). */
  timeoutMs?: number;
}

const DEFAULT_TIMEOUT_MS = 5000;
const MAX_BACKOFF_MS = 5000;

const errorText = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/** Capped exponential backoff between connection attempts: 0.1 s, 0.2 s, ... 5 s. */
const backoffMs = (retries: number): number => Math.min(MAX_BACKOFF_MS, 100 * 2 ** Math.min(retries, 6));

/** The admin connection: reconnects by itself, remembering why it last failed. */
function createAdminClient(url: string, timeoutMs: number, onError: (message: string) => void) {
  const client = createClient({
    url,
    name: 'streamroom-operator',
    maintNotifications: 'disabled',
    commandOptions: { timeout: timeoutMs },
    socket: {
      connectTimeout: timeoutMs,
      reconnectStrategy: (retries, cause) => {
        onError(errorText(cause));
        return backoffMs(retries);
      },
    },
  });
  client.on('error', (err: unknown) => onError(errorText(err)));
  return client;
}

type AdminClient = ReturnType<typeof createAdminClient>;

/** The version-dependent commands this server does not know. */
async function unavailableCommands(client: AdminClient): Promise<VersionDependentCommand[]> {
  const info = await client.sendCommand(['COMMAND', 'INFO', ...VERSION_DEPENDENT_COMMANDS]);
  return VERSION_DEPENDENT_COMMANDS.filter((_, i) => !Array.isArray(info) || !Array.isArray(info[i]));
}

/**
 * Creates and deletes the rooms' ACL users, with the admin URL. Connects on first use and
 * reconnects by itself; every operation fails after `timeoutMs` with an error that names it and
 * never holds a password.
 */
export class RedisAcl {
  readonly #adminUrl: string;
  readonly #adminSecrets: string[];
  readonly #timeoutMs: number;
  #client: AdminClient | undefined;
  #connected: Promise<AdminClient> | undefined;
  #lastError: string | undefined;
  #closed = false;

  constructor(adminUrl: string, options: RedisAclOptions = {}) {
    const url = parseRedisUrl(adminUrl, 'the shared Redis URL');
    this.#adminUrl = adminUrl;
    // Both spellings of the admin password, to keep either out of error messages.
    const secrets = [url.password];
    try {
      secrets.push(decodeURIComponent(url.password));
    } catch {
      // malformed percent-encoding: only the raw form can show up
    }
    this.#adminSecrets = secrets.filter((s) => s !== '');
    this.#timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /**
   * Creates the room's user, or resets an existing one to exactly the current rules and this one
   * password (an old password stops working). Idempotent. Only the password's SHA-256 is sent.
   */
  async ensureUser(namespace: string, name: string, password: string): Promise<void> {
    const user = aclUserName(namespace, name);
    const prefix = roomKeyPrefix(namespace, name);
    if (password === '') throw new Error(`the Redis password of ACL user ${user} is empty`);
    const hash = createHash('sha256').update(password).digest('hex');
    await this.#run(`creating or updating ACL user ${user}`, [password, hash], async (client) => {
      const rules = aclRules(prefix, await unavailableCommands(client));
      await client.sendCommand(['ACL', 'SETUSER', user, 'reset', 'on', `#${hash}`, ...rules]);
    });
  }

  /**
   * Deletes the room's user; Redis also closes every connection authenticated as it. Resolves to
   * whether the user existed.
   */
  async deleteUser(namespace: string, name: string): Promise<boolean> {
    const user = aclUserName(namespace, name);
    const deleted: unknown = await this.#run(`deleting ACL user ${user}`, [], (client) =>
      client.sendCommand(['ACL', 'DELUSER', user]),
    );
    return deleted === 1;
  }

  /** Closes the admin connection (or stops connecting); later operations fail. */
  async close(): Promise<void> {
    this.#closed = true;
    const client = this.#client;
    this.#client = undefined;
    this.#connected = undefined;
    if (client?.isReady) await client.close();
    else if (client?.isOpen) client.destroy();
  }

  #connect(): Promise<AdminClient> {
    if (this.#connected) return this.#connected;
    const client = createAdminClient(this.#adminUrl, this.#timeoutMs, (message) => {
      this.#lastError = message;
    });
    client.on('ready', () => {
      this.#lastError = undefined;
    });
    this.#client = client;
    this.#connected = client.connect().then(() => client);
    return this.#connected;
  }

  async #run<T>(operation: string, secrets: string[], work: (client: AdminClient) => Promise<T>): Promise<T> {
    if (this.#closed) throw new RedisAclError(`${operation} failed: the Redis ACL client is closed`);
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), this.#timeoutMs);
    });
    let detail: string;
    try {
      const result = await Promise.race([
        this.#connect()
          .then(work)
          .then((value) => ({ value })),
        timedOut,
      ]);
      if (result !== 'timeout') return result.value;
      const cause = this.#lastError ? ` (last connection error: ${this.#lastError})` : '';
      detail = `no answer from Redis within ${this.#timeoutMs} ms${cause}`;
    } catch (err) {
      detail = errorText(err);
    } finally {
      clearTimeout(timer);
    }
    let message = `${operation} failed: ${detail}`;
    for (const secret of [...this.#adminSecrets, ...secrets]) message = message.split(secret).join('***');
    throw new RedisAclError(message);
  }
}
