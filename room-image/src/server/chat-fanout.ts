/**
 * Batched chat fan-out. Every message accepted on this replica, and every batch another replica
 * published, waits for the end of the current tick (`tickMs`, longer in a large room, started by
 * the first message of a tick); then each socket of this replica gets all of them as one
 * `chat:batch` frame, encoded once for all sockets, and the messages accepted here go to the other
 * replicas as one publish on the backplane. Order is kept: the messages of one replica leave it in
 * the order it accepted them, and the backplane's stream keeps the order of each replica's publishes.
 *
 * A joining socket gets the history in its welcome and then exactly the messages that history
 * lacks. Each message has a place in the room's order (`seq`, given atomically with its entry in
 * the history), and the history is read together with the last `seq` given (`C`). The socket is
 * watched from before that read (`beginJoin`): every batch flushed meanwhile is kept for it. After
 * its welcome (`completeJoin(C)`) it gets those messages with `seq > C` and, for a while, every
 * flush filtered the same way, since a message with `seq <= C` (already in its history) may still
 * be on its way from another replica; after that it joins the shared broadcast. A message with
 * `seq > C` was added after the read, hence reaches this replica after `beginJoin`: no gaps.
 */
import type { ChatMessage } from '../protocol.js';
import type { RoomServer, RoomSocket } from './context.js';

/** The socket.io room of this replica's sockets that get the shared batches. */
export const CHAT_ROOM = 'streamroom:chat';

/**
 * A batch goes out before its tick ends once its texts reach this many characters: a flood of long
 * messages then leaves in frames of this size rather than one frame of megabytes, which every
 * socket would hold a copy of while it is written (the tenant-isolation memory bound).
 */
export const MAX_BATCH_CHARS = 64 * 1024;

/**
 * A tick costs one frame per socket, and at 500 sockets writing the frames is most of the room's chat
 * CPU (a write each): in a large room the tick grows so that a replica writes at most this many chat
 * frames a second (500 sockets: 125 ms instead of 50), up to MAX_TICK_MS.
 */
export const MAX_FRAMES_PER_SECOND = 4000;
export const MAX_TICK_MS = 250;

/** The tick for this many sockets on the replica: at least `minMs` (CHAT_BATCH_MS). */
export function tickFor(sockets: number, minMs: number): number {
  return Math.max(minMs, Math.min(MAX_TICK_MS, Math.ceil((sockets * 1000) / MAX_FRAMES_PER_SECOND)));
}

export interface FanoutOptions {
  io: RoomServer;
  /** How long messages gather before they go out, at least (see tickFor). */
  tickMs: number;
  /** Sends this replica's messages of a tick to the other replicas (absent: a single replica). */
  publish?: (messages: ChatMessage[]) => void;
  /**
   * How long a joined socket keeps filtering out messages its history had (they may still arrive
   * from other replicas). Defaults to one tick with a single replica, 5 s with several.
   */
  catchUpMs?: number;
}

interface Joining {
  socket: RoomSocket;
  /** Batches flushed before the welcome (undefined once joined). */
  held: ChatMessage[] | undefined;
  /** The `seq` its history ended at (known once the welcome went out). */
  cutoff: number;
  /** When it may take the shared batches. */
  until: number;
}

export class ChatFanout {
  private outgoing: ChatMessage[] = [];
  private outgoingChars = 0;
  private toPublish: ChatMessage[] = [];
  private timer: NodeJS.Timeout | undefined;
  private readonly joining = new Map<string, Joining>();
  private readonly catchUpMs: number;

  constructor(private readonly options: FanoutOptions) {
    this.catchUpMs = options.catchUpMs ?? (options.publish ? 5000 : options.tickMs);
  }

  /** A message accepted here: to this replica's sockets and to the other replicas. */
  add(message: ChatMessage): void {
    this.outgoing.push(message);
    if (this.options.publish) this.toPublish.push(message);
    this.added(message.text.length);
  }

  /** Another replica's batch (already checked). */
  receive(messages: ChatMessage[]): void {
    if (messages.length === 0) return;
    let chars = 0;
    for (const m of messages) {
      this.outgoing.push(m);
      chars += m.text.length;
    }
    this.added(chars);
  }

  /** Call before reading the history for the socket's welcome. */
  beginJoin(socket: RoomSocket): void {
    this.joining.set(socket.id, { socket, held: [], cutoff: 0, until: 0 });
  }

  /**
   * Call right after the welcome went out, with the `seq` its history ended at: sends what was
   * held for the socket and that its history lacks.
   */
  completeJoin(socket: RoomSocket, cutoff: number): void {
    const j = this.joining.get(socket.id);
    if (!j || !socket.connected) return;
    const missed = (j.held ?? []).filter((m) => m.seq > cutoff);
    j.held = undefined;
    j.cutoff = cutoff;
    j.until = Date.now() + this.catchUpMs;
    if (missed.length > 0) socket.emit('chat:batch', missed);
    this.schedule(); // a flush lets it join, even if nobody speaks
  }

  leave(socket: RoomSocket): void {
    this.joining.delete(socket.id);
  }

  /** Sends what waits now (also at shutdown). */
  flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const batch = this.outgoing;
    const published = this.toPublish;
    this.outgoing = [];
    this.outgoingChars = 0;
    this.toPublish = [];
    if (published.length > 0) this.options.publish?.(published);
    if (batch.length > 0) this.options.io.local.to(CHAT_ROOM).emit('chat:batch', batch);
    if (this.joining.size === 0) return;
    const now = Date.now();
    for (const [id, j] of this.joining) {
      if (j.held) {
        for (const m of batch) j.held.push(m);
        continue;
      }
      const fresh = batch.filter((m) => m.seq > j.cutoff);
      if (fresh.length > 0) j.socket.emit('chat:batch', fresh);
      if (now >= j.until) {
        this.joining.delete(id);
        if (j.socket.connected) void j.socket.join(CHAT_ROOM);
      }
    }
    // Sockets still catching up with nothing to send: come back to let them join.
    if (this.joining.size > 0 && this.timer === undefined) this.schedule();
  }

  close(): void {
    this.flush();
    clearTimeout(this.timer);
    this.timer = undefined;
    this.joining.clear();
  }

  private added(chars: number): void {
    this.outgoingChars += chars;
    if (this.outgoingChars >= MAX_BATCH_CHARS) this.flush();
    else this.schedule();
  }

  private schedule(): void {
    if (this.timer !== undefined) return;
    const { io, tickMs } = this.options;
    this.timer = setTimeout(() => this.flush(), tickFor(io.engine.clientsCount, tickMs));
    this.timer.unref();
  }
}
