/**
 * Which pages may open a socket to the room. A browser sends the page's Origin with every socket.io
 * handshake, and WebSocket has no CORS: without a check, any site could make its visitors' browsers
 * take the room's seats and chat in it. Allowed: the room's own page (an Origin whose host is the
 * request's Host, over http or https, so a TLS-terminating proxy in front changes nothing), the
 * origins of ROOM_ALLOWED_ORIGINS, and clients that send no Origin at all (not browsers). Anything
 * else gets 403.
 */
import type { IncomingMessage, Server as HttpServer } from 'node:http';
import type { Duplex } from 'node:stream';

type UpgradeListener = (req: IncomingMessage, socket: Duplex, head: Buffer) => void;

export interface OriginGuard {
  /** socket.io's `allowRequest`: refuses a long-polling handshake from a foreign page (403). */
  allowRequest(
    req: IncomingMessage,
    callback: (err: string | null | undefined, success: boolean) => void,
  ): void;
  /**
   * Puts the check in front of the server's WebSocket upgrades (socket.io's own, installed before):
   * engine.io would answer a refused upgrade with 400, this answers 403.
   */
  guardUpgrades(httpServer: HttpServer): void;
}

export function originAllowed(allowedOrigins: readonly string[]): (req: IncomingMessage) => boolean {
  const allowed = new Set(allowedOrigins);
  return (req) => {
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    let page: URL;
    try {
      page = new URL(origin); // "null" (sandboxed frames, files) is no URL: refused
    } catch {
      return false;
    }
    if (allowed.has(page.origin)) return true;
    const host = req.headers.host;
    if (host === undefined || (page.protocol !== 'http:' && page.protocol !== 'https:')) return false;
    try {
      return new URL(`${page.protocol}//${host}`).host === page.host;
    } catch {
      return false;
    }
  };
}

export function originGuard(allowedOrigins: readonly string[], onRefused: () => void): OriginGuard {
  const allows = originAllowed(allowedOrigins);
  const refused = 'cross-site socket refused\n';
  return {
    allowRequest(req, callback) {
      if (allows(req)) return callback(null, true);
      onRefused();
      callback(refused, false);
    },
    guardUpgrades(httpServer) {
      const listeners = httpServer.listeners('upgrade') as UpgradeListener[];
      httpServer.removeAllListeners('upgrade');
      httpServer.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
        if (allows(req)) {
          for (const listener of listeners) listener.call(httpServer, req, socket, head);
          return;
        }
        onRefused();
        socket.on('error', () => undefined);
        socket.end(
          `HTTP/1.1 403 Forbidden\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
            `Content-Length: ${Buffer.byteLength(refused)}\r\n\r\n${refused}`,
        );
      });
    },
  };
}
