/**
 * Backpressure: a client that does not read what the room sends it (stuck, or hostile: it can keep
 * the connection up by sending pongs without reading a byte) would make the server hold every
 * welcome and chat message meant for it. What waits for one client in this process — engine.io's
 * queue of packets, plus what its TCP connection holds in Node — may not pass SEND_BUFFER_LIMIT;
 * past it the client is disconnected at once. A page reconnects by itself and gets the history in
 * its welcome. (The kernel's socket buffers come on top; they are not the process's memory.)
 */
import type { Socket as TcpSocket } from 'node:net';
import type { RoomContext, RoomSocket } from './context.js';

/** Bytes that may wait for one client (a welcome with the largest history is about 1 MiB). */
export const SEND_BUFFER_LIMIT = 2 * 1024 * 1024;

const byteSize = (data: unknown): number =>
  typeof data === 'string'
    ? Buffer.byteLength(data)
    : data instanceof ArrayBuffer || ArrayBuffer.isView(data)
      ? data.byteLength
      : 0;

/** Watches a socket's outgoing queue from now on; disconnects it past `limitBytes`. */
export function dropWhenStalled(
  { log, metrics }: Pick<RoomContext, 'log' | 'metrics'>,
  socket: RoomSocket,
  limitBytes = SEND_BUFFER_LIMIT,
): void {
  const { conn } = socket;
  // A session that began as a WebSocket upgrade: that request's TCP connection carries it. (One that
  // began with long-polling and upgraded later is measured by its engine.io queue alone.)
  const tcp: TcpSocket | undefined =
    conn.transport.name === 'websocket' && conn.request.headers.upgrade?.toLowerCase() === 'websocket'
      ? conn.request.socket
      : undefined;
  let queued = 0; // engine.io's queue: packets wait there while the transport is busy
  let dropped = false;

  conn.on('packetCreate', (packet: { data?: unknown }) => {
    queued += byteSize(packet.data);
    const waiting = queued + (tcp?.writableLength ?? 0);
    if (waiting <= limitBytes || dropped) return;
    dropped = true;
    metrics.slowClientsDisconnected.add(1);
    log.warn(
      {
        role: socket.data.role,
        waitingBytes: waiting,
      },
      'disconnecting a client that does not read',
    );
    // Not a close handshake: that would wait for the very client that does not read.
    if (tcp) tcp.destroy();
    else conn.close(true);
  });
  conn.on('flush', () => {
    queued = 0; // handed to the transport (and counted in the TCP connection's buffer)
  });
}
