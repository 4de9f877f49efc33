/**
 * Lua scripts behind RedisRoomState. Each runs atomically in Redis and reads the clock with
 * TIME, so replicas never compare their own (possibly skewed) clocks. Membership entries carry an
 * expiry time (a sorted-set score or a hash field) that their owner refreshes; an entry whose
 * owner died simply stops counting and is swept later.
 */
import { createHash } from 'node:crypto';

/** The one method of a node-redis client the state needs. */
export interface CommandClient {
  sendCommand(args: string[]): Promise<unknown>;
}

export class Script {
  readonly sha: string;
  constructor(readonly source: string) {
    this.sha = createHash('sha1').update(source).digest('hex');
  }

  /** EVALSHA, falling back to EVAL once when Redis does not know the script yet (or any more). */
  async run(client: CommandClient, keys: string[], args: (string | number)[]): Promise<unknown> {
    const tail = [String(keys.length), ...keys, ...args.map(String)];
    try {
      return await client.sendCommand(['EVALSHA', this.sha, ...tail]);
    } catch (err) {
      if (!String((err as Error).message).startsWith('NOSCRIPT')) throw err;
      return client.sendCommand(['EVAL', this.source, ...tail]);
    }
  }
}

const lua = (body: string): Script =>
  new Script(`local function now()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function broadcaster(key, t)
  local b = redis.call('HMGET', key, 'id', 'exp')
  if b[1] and tonumber(b[2] or '0') >= t then return b[1] end
  return false
end
${body}`);

/**
 * KEYS viewers, seats of the client's address; ARGV id, max (0 = unlimited), ttlMs, per-address max
 * (0 = unlimited) → 1 seated, 0 room full, 2 address full. The address's sorted set holds its
 * seats with the same expiry as in `viewers` (the heartbeat refreshes both).
 */
export const SEAT = lua(`
local t = now()
local exp = t + tonumber(ARGV[3])
local function seat()
  redis.call('ZADD', KEYS[1], exp, ARGV[1])
  redis.call('ZADD', KEYS[2], exp, ARGV[1])
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return 1
end
if redis.call('ZSCORE', KEYS[1], ARGV[1]) then return seat() end
local max = tonumber(ARGV[2])
if max > 0 and redis.call('ZCOUNT', KEYS[1], t, '+inf') >= max then return 0 end
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', t - 1)
local perAddress = tonumber(ARGV[4])
if perAddress > 0 and redis.call('ZCARD', KEYS[2]) >= perAddress then return 2 end
return seat()`);

/** KEYS viewers, seats of the viewer's address; ARGV id → frees the seat. */
export const UNSEAT = lua(`
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return 1`);

/** KEYS viewers; ARGV id → 1 when `id` holds a live seat. */
export const HAS_VIEWER = lua(`
local s = redis.call('ZSCORE', KEYS[1], ARGV[1])
if s and tonumber(s) >= now() then return 1 end
return 0`);

/** KEYS viewers → ids of live seats. */
export const VIEWER_IDS = lua(`return redis.call('ZRANGEBYSCORE', KEYS[1], now(), '+inf')`);

/** KEYS viewers, broadcaster → { viewers, broadcaster id or '', live 0/1 }. */
export const PRESENCE = lua(`
local t = now()
local n = redis.call('ZCOUNT', KEYS[1], t, '+inf')
local id = broadcaster(KEYS[2], t)
if not id then return { n, '', 0 } end
return { n, id, redis.call('HGET', KEYS[2], 'live') == '1' and 1 or 0 }`);

/** KEYS broadcaster → live broadcaster id or ''. */
export const BROADCASTER = lua(`return broadcaster(KEYS[1], now()) or ''`);

/** KEYS broadcaster; ARGV id, ttlMs → the id it replaces ('' if none or itself); live resets. */
export const SET_BROADCASTER = lua(`
local prev = redis.call('HGET', KEYS[1], 'id')
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'exp', now() + tonumber(ARGV[2]), 'live', '0')
if prev and prev ~= ARGV[1] then return prev end
return ''`);

/** KEYS broadcaster; ARGV id → 1 when `id` was the broadcaster (now cleared). */
export const CLEAR_BROADCASTER = lua(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1`);

/** KEYS broadcaster; ARGV id, live 0/1 → 1 when `id` is the broadcaster. */
export const SET_LIVE = lua(`
if redis.call('HGET', KEYS[1], 'id') ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'live', ARGV[2])
return 1`);

/**
 * KEYS chat, chat meta (hash: `bytes`, `tail`, `seq`); ARGV message JSON (an object, without
 * `seq`), history size, max bytes → the message's `seq`. Gives the message the room's next `seq`
 * (appended to its JSON as the last field), appends it, then drops the oldest while more than
 * `size` messages or more than `max bytes` (the JSON strings' bytes) are kept. The byte count is
 * kept beside the list with the start of the message it last counted (a message's JSON starts with
 * its unique id); when the list's tail is not that message (the count expired, or an older replica
 * wrote to the list) it is counted again. `seq` outlives an emptied history.
 */
export const ADD_MESSAGE = lua(`
local size = tonumber(ARGV[2])
local maxBytes = tonumber(ARGV[3])
local head = function(m) return string.sub(m, 1, 64) end
local seq = redis.call('HINCRBY', KEYS[2], 'seq', 1)
local entry = string.sub(ARGV[1], 1, -2) .. ',"seq":' .. seq .. '}'
local n = redis.call('RPUSH', KEYS[1], entry)
local meta = redis.call('HMGET', KEYS[2], 'bytes', 'tail')
local total = tonumber(meta[1] or '')
if n == 1 then
  total = #entry
elseif total and head(redis.call('LRANGE', KEYS[1], -2, -2)[1]) == meta[2] then
  total = total + #entry
else
  total = 0
  for _, m in ipairs(redis.call('LRANGE', KEYS[1], 0, -1)) do total = total + #m end
end
local drop = 0
while drop < n and (n - drop > size or total > maxBytes) do
  local oldest = redis.call('LRANGE', KEYS[1], drop, drop + 31)
  if #oldest == 0 then break end
  for _, m in ipairs(oldest) do
    if n - drop <= size and total <= maxBytes then break end
    total = total - #m
    drop = drop + 1
  end
end
if drop >= n then
  redis.call('DEL', KEYS[1])
  redis.call('HDEL', KEYS[2], 'bytes', 'tail')
  return seq
end
if drop > 0 then redis.call('LTRIM', KEYS[1], drop, -1) end
redis.call('HSET', KEYS[2], 'bytes', total, 'tail', head(entry))
return seq`);

/** KEYS chat, chat meta → { the last `seq` given (0: none yet), the history's JSON strings }. */
export const HISTORY = lua(`
return { tonumber(redis.call('HGET', KEYS[2], 'seq') or '0'), redis.call('LRANGE', KEYS[1], 0, -1) }`);

/**
 * KEYS chat stream; ARGV origin (a replica's id), messages JSON, idleMs, max length → the entry's
 * id. One replica's chat of one tick for the other replicas, in the order of the stream; the
 * stream keeps about the last `max length` entries and lives as long as the room's other keys.
 */
export const PUBLISH_CHAT = lua(`
local id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[4], '*', 'origin', ARGV[1], 'messages', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return id`);

/**
 * KEYS a rate key (a user's chat, an address's new user ids); ARGV perMinute, unique member → 1
 * taken, 0 over the limit (sliding minute).
 */
export const RATE_TOKEN = lua(`
local t = now()
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - 60000)
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('ZADD', KEYS[1], t, ARGV[2])
redis.call('PEXPIRE', KEYS[1], 60000)
return 1`);

/**
 * The owner's heartbeat, plus the sweep of everybody's expired entries. It also keeps the room's
 * keys alive for `idleMs`: once no replica of the room runs any more (room deleted), a shared
 * Redis forgets them. (The seats of an address live as long as their seats.)
 * KEYS viewers, broadcaster, chat, chat meta, adapter stream, then the seats key of each own
 * viewer's address (KEYS[i] belongs to ARGV[i], i >= 6); ARGV ttlMs, sweep 0/1, own broadcaster id
 * or '', its live 0/1, idleMs, own viewer ids... → { re-added own viewer ids, swept viewer ids, own
 * broadcaster state ('', 'restored', 'lost'), 1 when a dead broadcaster was swept }.
 */
export const TICK = lua(`
local t = now()
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ARGV[5]) end
local exp = t + tonumber(ARGV[1])
local readded = {}
for i = 6, #ARGV do
  if redis.call('ZADD', KEYS[1], exp, ARGV[i]) == 1 then readded[#readded + 1] = ARGV[i] end
  redis.call('ZADD', KEYS[i], exp, ARGV[i])
  redis.call('PEXPIRE', KEYS[i], ARGV[1])
end
local own = ''
if ARGV[3] ~= '' then
  local cur = redis.call('HGET', KEYS[2], 'id')
  if cur == ARGV[3] then
    redis.call('HSET', KEYS[2], 'exp', exp)
  elseif not cur then
    redis.call('HSET', KEYS[2], 'id', ARGV[3], 'exp', exp, 'live', ARGV[4])
    own = 'restored'
  else
    own = 'lost'
  end
end
local swept = {}
local sweptBroadcaster = 0
if ARGV[2] == '1' then
  swept = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', t - 1)
  if #swept > 0 then redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', t - 1) end
  local b = redis.call('HMGET', KEYS[2], 'id', 'exp')
  if b[1] and tonumber(b[2] or '0') < t then
    redis.call('DEL', KEYS[2])
    sweptBroadcaster = 1
  end
end
return { readded, swept, own, sweptBroadcaster }`);
