/**
 * The connection to the room: keys from the URL fragment, the socket.io connection (typed by
 * ../protocol.ts) with its reconnects, refusals and server restarts, and the session they keep.
 */
import { io, type Socket } from 'socket.io-client';
import type { ClientToServerEvents, Presence, Role, ServerToClientEvents, Welcome } from '../protocol.js';
import { overlay, ui } from './ui.js';

export type RoomSocket = Socket<ServerToClientEvents, ClientToServerEvents>;

/** Keys come from the URL fragment (never sent in a URL), kept for reloads, removed from the address bar. */
function readKeys(): { key: string | undefined; viewerKey: string | undefined } {
  const params = new URLSearchParams(location.hash.replace(/^#/, ''));
  const key = params.get('key') ?? undefined;
  const viewerKey = params.get('viewerKey') ?? undefined;
  if (key) sessionStorage.setItem('streamroom:key', key);
  if (viewerKey) sessionStorage.setItem('streamroom:viewerKey', viewerKey);
  if (key || viewerKey) history.replaceState(null, '', location.pathname + location.search);
  return {
    key: key ?? sessionStorage.getItem('streamroom:key') ?? undefined,
    viewerKey: viewerKey ?? sessionStorage.getItem('streamroom:viewerKey') ?? undefined,
  };
}

export interface SessionHooks {
  /** Every welcome: the first one, and one after each reconnect. */
  onWelcome(welcome: Welcome, first: boolean): void;
  onPresence(presence: Presence): void;
  /** The connection dropped; `replaced` when a newer broadcaster session took this one's place. */
  onDisconnect(replaced: boolean): void;
}

export class Session {
  readonly role: Role;
  readonly socket: RoomSocket;
  /** The last welcome (ICE servers, media mode, chat limits). */
  welcome: Welcome | undefined;
  presence: Presence = { viewers: 0, broadcasterOnline: false, live: false };
  /** The name the user chose (kept in localStorage), or the one the server gave (kept for reconnects). */
  private chosenName = localStorage.getItem('streamroom:name') ?? '';
  private givenName = '';
  private userToken = sessionStorage.getItem('streamroom:user') ?? undefined;
  private reconnectAfterDisconnect = 0;
  private transportFailures = 0;

  constructor(private readonly hooks: SessionHooks) {
    const keys = readKeys();
    this.role = keys.key ? 'broadcaster' : 'viewer';
    // WebSocket only: a room with several replicas sits behind a plain Service without sticky
    // sessions, and one WebSocket is one TCP connection to one pod. HTTP long-polling spreads a
    // session over many requests that must all reach the same pod, so it is only a fallback, used
    // when WebSocket keeps failing and the server says polling is safe (a single-replica room).
    this.socket = io({
      auth: (cb) =>
        cb({
          role: this.role,
          key: this.role === 'broadcaster' ? keys.key : keys.viewerKey,
          ...(this.name ? { name: this.name } : {}),
          ...(this.userToken ? { user: this.userToken } : {}),
        }),
      transports: ['websocket'],
      reconnectionDelay: 500,
      reconnectionDelayMax: 4000,
    });
    this.wire();
  }

  get name(): string {
    return this.chosenName || this.givenName;
  }

  get chosen(): string {
    return this.chosenName;
  }

  choose(name: string): void {
    this.chosenName = name;
    localStorage.setItem('streamroom:name', name);
  }

  get iceServers(): RTCIceServer[] {
    return this.welcome?.iceServers ?? [];
  }

  private wire(): void {
    const { socket } = this;
    socket.on('connect', () => {
      ui.status.textContent = '';
    });
    socket.on('connect_error', (err: Error & { data?: { reason?: string; message?: string } }) =>
      this.refused(err),
    );
    socket.on('welcome', (w) => {
      const first = this.welcome === undefined;
      this.welcome = w;
      if (!this.chosenName) this.givenName = w.name;
      this.userToken = w.user;
      sessionStorage.setItem('streamroom:user', w.user);
      this.hooks.onWelcome(w, first);
    });
    socket.on('presence', (p) => {
      this.presence = p;
      this.hooks.onPresence(p);
    });
    socket.on('rejected', (r) => console.warn('server rejected', r));
    socket.on('server:shutdown', (s) => {
      this.reconnectAfterDisconnect = Math.min(10_000, s.retryInMs);
      ui.status.textContent = 'The room is restarting, reconnecting…';
    });
    socket.on('replaced', () => {
      this.reconnectAfterDisconnect = -1;
    });
    socket.on('disconnect', (reason) => {
      const replaced = this.reconnectAfterDisconnect < 0;
      this.hooks.onDisconnect(replaced);
      if (replaced) {
        overlay('Broadcasting from another tab', 'This page was replaced by a newer broadcaster session.');
        return;
      }
      if (reason === 'io server disconnect') {
        // The server closed us on purpose (restart/shutdown): come back after a jittered delay.
        const delay = (this.reconnectAfterDisconnect || 1000) + Math.random() * 1000;
        this.reconnectAfterDisconnect = 0;
        setTimeout(() => socket.connect(), delay);
      }
      overlay('Reconnecting…', 'The connection to the room was interrupted.');
    });
  }

  private refused(err: Error & { data?: { reason?: string; message?: string } }): void {
    const { socket } = this;
    const reason = err.data?.reason;
    if (!reason) {
      overlay('Reconnecting…', 'Trying to reach the room.');
      if (!this.welcome && ++this.transportFailures === 3) void this.considerPolling();
      return; // transport problem: socket.io retries by itself
    }
    const message = err.data?.message ?? err.message;
    if (reason === 'invalid_name') {
      this.chosenName = '';
      this.givenName = '';
      localStorage.removeItem('streamroom:name');
      setTimeout(() => socket.connect(), 200);
      return;
    }
    if (reason === 'room_full' || reason === 'too_many_from_address') {
      // a seat may free up (the room's, or one of this address's): try again now and then
      overlay(reason === 'room_full' ? 'Room is full' : 'Too many viewers from your network', message);
      setTimeout(() => socket.connect(), 15_000);
    } else if (reason === 'unavailable') {
      overlay('Reconnecting…', message);
      setTimeout(() => socket.connect(), 1000 + Math.random() * 1000);
    } else if (reason === 'shutting_down') {
      overlay('Room is restarting', 'Reconnecting in a moment…');
      setTimeout(() => socket.connect(), 1500 + Math.random() * 1500);
    } else {
      overlay('Access denied', message);
    }
    ui.status.textContent = message;
  }

  private async considerPolling(): Promise<void> {
    try {
      const res = await fetch('/config.json', { cache: 'no-store' });
      const cfg = (await res.json()) as { transports?: string[] };
      if (cfg.transports?.includes('polling')) {
        this.socket.io.opts.transports = ['polling', 'websocket']; // upgrades to WebSocket if it can
      } else {
        ui.status.textContent = 'Your network seems to block WebSocket connections, which this room needs.';
      }
    } catch {
      // the room is not reachable at all: keep retrying WebSocket
    }
  }
}

/** A fresh id for a peer connection (the `pc` of its signals). */
export const newPcId = (): string => Math.random().toString(36).slice(2, 12);
