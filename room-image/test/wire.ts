/**
 * A socket.io client spoken by hand over one TCP connection (HTTP upgrade, WebSocket frames,
 * engine.io and socket.io packets), for what a library client cannot do: stop reading while the
 * connection stays up, as a hostile or stuck client does.
 */
import { randomBytes } from 'node:crypto';
import net from 'node:net';

export interface WireClient {
  socket: net.Socket;
  /** Sends a socket.io event (no acknowledgement). */
  emit(event: string, payload: unknown): void;
  /**
   * Stops reading: the server's data piles up in the kernel, then in the server. Engine.io pongs
   * still go out every few seconds, unasked, so the server's heartbeat keeps the connection up.
   */
  stall(): void;
  /** Whether the server closed the connection (seen only while reading). */
  readonly closed: boolean;
  close(): void;
}

/** One masked client frame (RFC 6455 5.2): text, or close. */
function frame(payload: Buffer, opcode = 0x1): Buffer {
  const len = payload.length;
  const header =
    len < 126
      ? Buffer.from([0x80 | opcode, 0x80 | len])
      : len < 65536
        ? Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff])
        : Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | 127]), bigEndian64(len)]);
  const mask = randomBytes(4);
  const masked = Buffer.alloc(len);
  for (let i = 0; i < len; i++) masked[i] = payload[i]! ^ mask[i & 3]!;
  return Buffer.concat([header, mask, masked]);
}

function bigEndian64(n: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64BE(BigInt(n));
  return b;
}

/** Enough of a text message to tell pings, refusals and the welcome apart. */
const PREFIX = 64;

/**
 * Reads the server's (unmasked) frames as they stream in and hands the start of each text message
 * to `onMessage`; the rest of a large message is skipped as it arrives, never buffered, so a
 * client that reads keeps up with any amount of chat.
 */
function frameReader(onMessage: (prefix: string) => void): (chunk: Buffer) => void {
  let pending: Buffer = Buffer.alloc(0); // an incomplete header, or an incomplete prefix
  let skip = 0; // bytes of the current message still to skip
  return (chunk) => {
    let buf = chunk;
    if (skip > 0) {
      const n = Math.min(skip, buf.length);
      skip -= n;
      buf = buf.subarray(n);
    }
    buf = pending.length > 0 ? Buffer.concat([pending, buf]) : buf;
    pending = Buffer.alloc(0);
    let at = 0;
    while (at < buf.length) {
      if (buf.length - at < 2) break;
      let len = buf[at + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = Number(buf.readBigUInt64BE(at + 2));
        head = 10;
      }
      const start = at + head;
      const prefixEnd = start + Math.min(len, PREFIX);
      if (buf.length < prefixEnd) break;
      if ((buf[at]! & 0x0f) === 0x1) onMessage(buf.toString('utf8', start, prefixEnd));
      const available = buf.length - start;
      if (available < len) {
        skip = len - available;
        at = buf.length;
        break;
      }
      at = start + len;
    }
    if (at < buf.length) pending = Buffer.from(buf.subarray(at));
  };
}

export interface WireOptions {
  /** Extra request headers of the upgrade. */
  headers?: Record<string, string>;
  /** Stall right after asking to join: resolve without waiting for (or reading) the welcome. */
  stallOnJoin?: boolean;
  timeoutMs?: number;
}

/**
 * Connects as a socket.io client with `auth`, over WebSocket, and resolves once the server's
 * `welcome` arrived (or rejects with the server's answer when the upgrade is refused).
 */
export function wireConnect(
  url: string,
  auth: Record<string, unknown>,
  { headers = {}, stallOnJoin = false, timeoutMs = 5000 }: WireOptions = {},
): Promise<WireClient> {
  const { hostname, port } = new URL(url);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => undefined); // a dropped connection shows as `closed`
  let closed = false;
  socket.once('close', () => (closed = true));
  let pongs: NodeJS.Timeout | undefined;
  const send = (text: string): void => {
    if (!socket.destroyed) socket.write(frame(Buffer.from(text)));
  };
  const client: WireClient = {
    socket,
    emit: (event, payload) => send(`42${JSON.stringify([event, payload])}`),
    stall() {
      socket.pause();
      socket.removeAllListeners('data');
      pongs = setInterval(() => send('3'), 3000);
      pongs.unref();
    },
    get closed() {
      return closed;
    },
    close() {
      clearInterval(pongs);
      socket.destroy();
    },
  };
  socket.once('close', () => clearInterval(pongs));

  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => fail(new Error('no welcome in time')), timeoutMs);
    const fail = (err: Error): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(err);
    };
    let head: string | undefined = '';
    let resolved = false;
    const read = frameReader((m) => {
      if (m.startsWith('0{')) {
        send(`40${JSON.stringify(auth)}`); // engine.io open: join the namespace
        if (stallOnJoin) {
          resolved = true;
          clearTimeout(timer);
          client.stall();
          resolve(client);
        }
      } else if (m === '2')
        send('3'); // ping
      else if (m.startsWith('44') && !resolved) fail(new Error(`refused: ${m.slice(2)}`));
      else if (m.startsWith('42["welcome"') && !resolved) {
        resolved = true;
        clearTimeout(timer);
        resolve(client);
      }
    });
    const onData = (d: Buffer): void => {
      if (head !== undefined) {
        head += d.toString('latin1');
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        if (!/^HTTP\/1\.1 101 /.test(head))
          return fail(new Error(`upgrade refused: ${head.split('\r\n')[0]}`));
        const rest = Buffer.from(head.slice(end + 4), 'latin1');
        head = undefined;
        if (rest.length > 0) read(rest);
        return;
      }
      read(d);
    };
    socket.on('data', onData);
    socket.once('close', () => fail(new Error('connection closed')));
    socket.write(
      [
        `GET /socket.io/?EIO=4&transport=websocket HTTP/1.1`,
        `Host: ${hostname}:${port}`,
        'Upgrade: websocket',
        'Connection: Upgrade',
        `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`,
        'Sec-WebSocket-Version: 13',
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
        '',
        '',
      ].join('\r\n'),
    );
  });
}
