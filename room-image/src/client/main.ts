import SimplePeer from 'simple-peer';
import { io, type Socket } from 'socket.io-client';

interface ChatMessage {
  id: string;
  name: string;
  role: 'broadcaster' | 'viewer';
  text: string;
  ts: number;
}
interface Presence {
  viewers: number;
  broadcasterOnline: boolean;
  live: boolean;
}
interface Welcome {
  id: string;
  role: 'broadcaster' | 'viewer';
  name: string;
  /** Signed user id: sent back on reconnect to keep the same identity on any replica. */
  user?: string;
  title: string;
  iceServers: RTCIceServer[];
  chat: {
    enabled: boolean;
    historySize: number;
    maxMessageLength: number;
    messagesPerMinute: number;
    history: ChatMessage[];
  };
  viewers?: string[];
}
interface SignalMessage {
  from: string;
  pc: string;
  data: SimplePeer.SignalData;
}
type AckResponse = { ok: true; name?: string } | { ok: false; error: string };

/** simple-peer keeps its RTCPeerConnection in a private field; tests read stats through it. */
type PeerWithPc = SimplePeer.Instance & { _pc?: RTCPeerConnection };

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

const ui = {
  title: $('title'),
  badge: $('live-badge'),
  viewerCount: $('viewer-count'),
  video: $<HTMLVideoElement>('video'),
  overlay: $('overlay'),
  overlayTitle: $('overlay-title'),
  overlayText: $('overlay-text'),
  roleTag: $('role-tag'),
  broadcasterControls: $('broadcaster-controls'),
  viewerControls: $('viewer-controls'),
  btnCamera: $<HTMLButtonElement>('btn-camera'),
  btnScreen: $<HTMLButtonElement>('btn-screen'),
  btnMic: $<HTMLButtonElement>('btn-mic'),
  btnSound: $<HTMLButtonElement>('btn-sound'),
  btnFullscreen: $<HTMLButtonElement>('btn-fullscreen'),
  status: $('status'),
  chat: $('chat'),
  nameForm: $<HTMLFormElement>('name-form'),
  nameInput: $<HTMLInputElement>('name-input'),
  messages: $('messages'),
  chatForm: $<HTMLFormElement>('chat-form'),
  chatInput: $<HTMLInputElement>('chat-input'),
  chatHint: $('chat-hint'),
  toast: $('toast'),
};

// ---- Keys come from the URL fragment (never sent to the server in a URL), kept for reloads in
// sessionStorage, and removed from the address bar.
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

const keys = readKeys();
const role: 'broadcaster' | 'viewer' = keys.key ? 'broadcaster' : 'viewer';
let displayName = localStorage.getItem('streamroom:name') ?? '';
/** The name the server gave us (e.g. Guest-1a2b) when we did not pick one: kept on reconnect. */
let sessionName = '';
let userToken = sessionStorage.getItem('streamroom:user') ?? undefined;
let welcomed = false;
let iceServers: RTCIceServer[] = [];
let chatLimits = { enabled: true, maxMessageLength: 500, messagesPerMinute: 20 };
let presence: Presence = { viewers: 0, broadcasterOnline: false, live: false };
let reconnectAfterDisconnect = 0;

let toastTimer: ReturnType<typeof setTimeout> | undefined;
function toast(text: string): void {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 4000);
}

function overlay(title: string | null, text = ''): void {
  ui.overlay.hidden = title === null;
  ui.overlayTitle.textContent = title ?? '';
  ui.overlayText.textContent = text;
}

function renderPresence(): void {
  const live = presence.broadcasterOnline && presence.live;
  ui.badge.textContent = live ? 'Live' : 'Offline';
  ui.badge.className = `badge ${live ? 'badge-live' : 'badge-offline'}`;
  ui.viewerCount.textContent = `${presence.viewers} watching`;
}

// ---- Chat ---------------------------------------------------------------------------------
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

/** Ids of the messages on screen: history replayed after a reconnect never shows one twice. */
const shown = new Set<string>();

function appendMessage(m: ChatMessage): void {
  if (shown.has(m.id)) return;
  shown.add(m.id);
  const list = ui.messages;
  const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
  list.querySelector('.msg-empty')?.remove();
  const li = document.createElement('li');
  li.className = `msg msg-${m.role}`;
  li.dataset['id'] = m.id;
  const head = document.createElement('div');
  head.className = 'msg-head';
  const name = document.createElement('span');
  name.className = 'msg-name';
  name.textContent = m.role === 'broadcaster' ? `${m.name} (host)` : m.name;
  const time = document.createElement('time');
  time.className = 'msg-time';
  time.dateTime = new Date(m.ts).toISOString();
  time.textContent = timeFormat.format(m.ts);
  head.append(name, time);
  const text = document.createElement('p');
  text.className = 'msg-text';
  text.textContent = m.text; // always text, never HTML
  li.append(head, text);
  list.append(li);
  while (list.children.length > 300) {
    const first = list.firstElementChild as HTMLElement;
    shown.delete(first.dataset['id'] ?? '');
    first.remove();
  }
  if (nearBottom) list.scrollTop = list.scrollHeight;
}

function resetChat(history: ChatMessage[]): void {
  ui.messages.replaceChildren();
  shown.clear();
  if (history.length === 0) {
    const empty = document.createElement('li');
    empty.className = 'msg-empty';
    empty.textContent = 'No messages yet. Say hello!';
    ui.messages.append(empty);
  }
  for (const m of history) appendMessage(m);
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

/** After a reconnect: appends what was said since the last message on screen, nothing twice. */
function mergeHistory(history: ChatMessage[]): void {
  let start = 0;
  for (let i = history.length - 1; i >= 0; i--) {
    if (shown.has(history[i]!.id)) {
      start = i + 1;
      break;
    }
  }
  for (const m of history.slice(start)) appendMessage(m);
}

const chatErrors: Record<string, () => string> = {
  rate_limited: () => `Slow down: at most ${chatLimits.messagesPerMinute} messages per minute.`,
  too_large: () => `Messages can be at most ${chatLimits.maxMessageLength} characters.`,
  chat_disabled: () => 'Chat is turned off in this room.',
  flood: () => 'Too many messages, slow down.',
  invalid_payload: () => 'That message could not be sent.',
  unavailable: () => 'The room is reconnecting, please try again in a moment.',
};

// ---- Socket -------------------------------------------------------------------------------
// WebSocket only: a room with several replicas sits behind a plain Service without sticky
// sessions, and one WebSocket is one TCP connection to one pod. HTTP long-polling spreads a
// session over many requests that must all reach the same pod, so it is only a fallback, used
// when WebSocket keeps failing and the server says polling is safe (a single-replica room).
const socket: Socket = io({
  auth: (cb) =>
    cb({
      role,
      key: role === 'broadcaster' ? keys.key : keys.viewerKey,
      ...(displayName || sessionName ? { name: displayName || sessionName } : {}),
      ...(userToken ? { user: userToken } : {}),
    }),
  transports: ['websocket'],
  reconnectionDelay: 500,
  reconnectionDelayMax: 4000,
});

let transportFailures = 0;
async function considerPolling(): Promise<void> {
  try {
    const res = await fetch('/config.json', { cache: 'no-store' });
    const cfg = (await res.json()) as { transports?: string[] };
    if (cfg.transports?.includes('polling')) {
      socket.io.opts.transports = ['polling', 'websocket']; // upgrades to WebSocket if it can
    } else {
      ui.status.textContent = 'Your network seems to block WebSocket connections, which this room needs.';
    }
  } catch {
    // the room is not reachable at all: keep retrying WebSocket
  }
}

socket.on('connect', () => {
  ui.status.textContent = '';
});

socket.on('connect_error', (err: Error & { data?: { reason?: string; message?: string } }) => {
  const reason = err.data?.reason;
  if (!reason) {
    overlay('Reconnecting…', 'Trying to reach the room.');
    if (!welcomed && ++transportFailures === 3) void considerPolling();
    return; // transport problem: socket.io retries by itself
  }
  const message = err.data?.message ?? err.message;
  if (reason === 'invalid_name') {
    displayName = '';
    sessionName = '';
    localStorage.removeItem('streamroom:name');
    setTimeout(() => socket.connect(), 200);
    return;
  }
  if (reason === 'room_full') {
    overlay('Room is full', message);
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
});

socket.on('welcome', (w: Welcome) => {
  iceServers = w.iceServers;
  chatLimits = w.chat;
  ui.title.textContent = w.title;
  document.title = `${w.title} · StreamRoom`;
  ui.chat.hidden = !w.chat.enabled;
  ui.chatInput.maxLength = w.chat.maxMessageLength;
  ui.chatHint.textContent = `Up to ${w.chat.maxMessageLength} characters, ${w.chat.messagesPerMinute} messages per minute.`;
  if (!displayName) {
    sessionName = w.name;
    ui.nameInput.value = w.name;
  }
  if (w.user) {
    userToken = w.user;
    sessionStorage.setItem('streamroom:user', w.user);
  }
  // The first welcome shows the history; later ones (reconnects) add only what was missed.
  if (welcomed) mergeHistory(w.chat.history);
  else resetChat(w.chat.history);
  welcomed = true;
  if (role === 'broadcaster') broadcaster.onWelcome(w.viewers ?? []);
  else viewer.refresh();
});

socket.on('presence', (p: Presence) => {
  presence = p;
  renderPresence();
  if (role === 'viewer') viewer.refresh();
});

socket.on('chat:message', (m: ChatMessage) => appendMessage(m));

socket.on('rejected', (r: { event: string; reason: string }) => {
  console.warn('server rejected', r);
});

socket.on('server:shutdown', (s: { retryInMs?: number }) => {
  reconnectAfterDisconnect = Math.min(10_000, s.retryInMs ?? 1000);
  ui.status.textContent = 'The room is restarting, reconnecting…';
});

socket.on('replaced', () => {
  reconnectAfterDisconnect = -1;
});

socket.on('disconnect', (reason) => {
  if (role === 'broadcaster') broadcaster.onDisconnect();
  else viewer.close();
  if (reconnectAfterDisconnect < 0) {
    overlay('Broadcasting from another tab', 'This page was replaced by a newer broadcaster session.');
    broadcaster.stop(false);
    return;
  }
  if (reason === 'io server disconnect') {
    // The server closed us on purpose (restart/shutdown): come back after a jittered delay.
    const delay = (reconnectAfterDisconnect || 1000) + Math.random() * 1000;
    reconnectAfterDisconnect = 0;
    setTimeout(() => socket.connect(), delay);
  }
  overlay('Reconnecting…', 'The connection to the room was interrupted.');
});

socket.on('signal', (s: SignalMessage) => {
  if (role === 'broadcaster') broadcaster.onSignal(s);
  else viewer.onSignal(s);
});

const newPcId = (): string => Math.random().toString(36).slice(2, 12);

// ---- Broadcaster: one simple-peer per viewer (star) ---------------------------------------
const broadcaster = (() => {
  let stream: MediaStream | null = null;
  let source: 'camera' | 'screen' | null = null;
  const viewers = new Set<string>();
  const peers = new Map<string, { peer: PeerWithPc; pc: string }>();

  function connectViewer(id: string): void {
    peers.get(id)?.peer.destroy();
    peers.delete(id);
    if (!stream) return;
    const pc = newPcId();
    const peer: PeerWithPc = new SimplePeer({
      initiator: true,
      stream,
      trickle: true,
      config: { iceServers },
    });
    peers.set(id, { peer, pc });
    peer.on('signal', (data: SimplePeer.SignalData) => socket.emit('signal', { to: id, pc, data }));
    const drop = (): void => {
      if (peers.get(id)?.pc !== pc) return;
      peers.delete(id);
      // The connection to a viewer who is still here failed: offer again shortly.
      setTimeout(() => {
        if (stream && viewers.has(id) && !peers.has(id) && socket.connected) connectViewer(id);
      }, 2000);
    };
    peer.on('close', drop);
    peer.on('error', (err: Error) => {
      console.warn('peer error', id, err.message);
      drop();
    });
  }

  function dropAllPeers(): void {
    for (const { peer } of peers.values()) peer.destroy();
    peers.clear();
  }

  function renderControls(): void {
    ui.btnCamera.textContent = source === 'camera' ? 'Stop camera' : 'Start camera';
    ui.btnCamera.className = `btn ${source === 'camera' ? 'btn-danger' : 'btn-primary'}`;
    ui.btnScreen.textContent = source === 'screen' ? 'Stop sharing' : 'Share screen';
    const audio = stream?.getAudioTracks()[0];
    ui.btnMic.disabled = !audio;
    ui.btnMic.textContent = audio && !audio.enabled ? 'Unmute mic' : 'Mute mic';
    ui.roleTag.hidden = !stream;
    if (stream) overlay(null);
    else overlay('You are offline', 'Start your camera or share your screen to go live.');
  }

  function setStream(next: MediaStream, kind: 'camera' | 'screen'): void {
    stream?.getTracks().forEach((t) => t.stop());
    stream = next;
    source = kind;
    ui.video.srcObject = next;
    ui.video.muted = true; // never play your own microphone back
    void ui.video.play().catch(() => undefined);
    sessionStorage.setItem('streamroom:live', kind);
    next.getVideoTracks()[0]?.addEventListener('ended', () => {
      if (stream === next) stop(true);
    });
    for (const id of viewers) connectViewer(id);
    socket.emit('stream:state', { live: true });
    renderControls();
  }

  function stop(announce: boolean): void {
    dropAllPeers();
    stream?.getTracks().forEach((t) => t.stop());
    stream = null;
    source = null;
    ui.video.srcObject = null;
    sessionStorage.removeItem('streamroom:live');
    if (announce && socket.connected) socket.emit('stream:state', { live: false });
    renderControls();
  }

  /** Browsers offer camera and screen only to secure pages: https, or http on localhost. */
  function mediaAllowed(): boolean {
    if (window.isSecureContext && navigator.mediaDevices) return true;
    toast(
      'Broadcasting needs a secure page: the browser offers camera and screen only over https:// or on ' +
        'localhost. Open the room over HTTPS (an Ingress with TLS) or through localhost ' +
        '(kubectl port-forward); viewers can watch over plain http.',
    );
    return false;
  }

  async function startCamera(): Promise<void> {
    if (!mediaAllowed()) return;
    try {
      let media: MediaStream;
      try {
        media = await navigator.mediaDevices.getUserMedia({
          video: { width: { ideal: 1280 }, height: { ideal: 720 } },
          audio: true,
        });
      } catch {
        media = await navigator.mediaDevices.getUserMedia({ video: true });
      }
      setStream(media, 'camera');
    } catch (err) {
      toast(`Camera unavailable: ${(err as Error).message}`);
    }
  }

  async function shareScreen(): Promise<void> {
    if (!mediaAllowed()) return;
    try {
      const media = await navigator.mediaDevices.getDisplayMedia({ video: true, audio: true });
      setStream(media, 'screen');
    } catch (err) {
      toast(`Screen sharing unavailable: ${(err as Error).message}`);
    }
  }

  function init(): void {
    ui.broadcasterControls.hidden = false;
    ui.btnCamera.addEventListener('click', () => {
      if (source === 'camera') stop(true);
      else void startCamera();
    });
    ui.btnScreen.addEventListener('click', () => {
      if (source === 'screen') stop(true);
      else void shareScreen();
    });
    ui.btnMic.addEventListener('click', () => {
      const audio = stream?.getAudioTracks()[0];
      if (audio) audio.enabled = !audio.enabled;
      renderControls();
    });
    renderControls();
  }

  return {
    init,
    stop,
    onWelcome(ids: string[]): void {
      viewers.clear();
      ids.forEach((id) => viewers.add(id));
      if (stream) {
        socket.emit('stream:state', { live: true });
        for (const id of viewers) connectViewer(id);
      } else if (sessionStorage.getItem('streamroom:live') === 'camera') {
        // Resume after a reload: the camera was on before.
        void startCamera();
      }
      renderControls();
    },
    onDisconnect(): void {
      dropAllPeers();
      viewers.clear();
    },
    onViewer(id: string, joined: boolean): void {
      if (joined) {
        viewers.add(id);
        // Announced again (its replica re-registered it): keep a connection that works.
        if (!peers.get(id)?.peer.connected) connectViewer(id);
      } else {
        viewers.delete(id);
        peers.get(id)?.peer.destroy();
        peers.delete(id);
      }
    },
    viewers: (): string[] => [...viewers],
    onSignal(s: SignalMessage): void {
      const entry = peers.get(s.from);
      if (entry && entry.pc === s.pc) entry.peer.signal(s.data);
    },
    peers: (): RTCPeerConnection[] => [...peers.values()].flatMap((p) => (p.peer._pc ? [p.peer._pc] : [])),
  };
})();

socket.on('viewer:joined', ({ id }: { id: string }) => {
  if (role === 'broadcaster') broadcaster.onViewer(id, true);
});
socket.on('viewer:left', ({ id }: { id: string }) => {
  if (role === 'broadcaster') broadcaster.onViewer(id, false);
});

// ---- Viewer: one simple-peer, answering the broadcaster -----------------------------------
const viewer = (() => {
  let current: { peer: PeerWithPc; pc: string; from: string } | null = null;

  function close(): void {
    current?.peer.destroy();
    current = null;
    ui.video.srcObject = null;
  }

  function refresh(): void {
    if (!socket.connected) return;
    if (!presence.broadcasterOnline) {
      close();
      overlay(
        'Offline',
        'The broadcaster is not here right now. This page will start playing when they go live.',
      );
    } else if (!presence.live) {
      close();
      overlay('Starting soon', 'The broadcaster is online and will start the stream shortly.');
    } else if (!ui.video.srcObject) {
      overlay('Connecting to the stream…');
    }
  }

  function onSignal(s: SignalMessage): void {
    if (!current || current.pc !== s.pc || current.from !== s.from) {
      if (s.data.type !== 'offer') return; // leftovers of an older connection
      close();
      const pc = s.pc;
      const peer: PeerWithPc = new SimplePeer({ initiator: false, trickle: true, config: { iceServers } });
      const entry = { peer, pc, from: s.from };
      current = entry;
      peer.on('signal', (data: SimplePeer.SignalData) => socket.emit('signal', { pc, data }));
      peer.on('stream', (stream: MediaStream) => {
        if (current !== entry) return;
        ui.video.srcObject = stream;
        void ui.video.play().catch(() => undefined);
        overlay(null);
      });
      const end = (): void => {
        if (current === entry) {
          current = null;
          ui.video.srcObject = null;
          refresh();
        }
      };
      peer.on('close', end);
      peer.on('error', (err: Error) => {
        console.warn('peer error', err.message);
        end();
      });
    }
    current.peer.signal(s.data);
  }

  function init(): void {
    ui.viewerControls.hidden = false;
    const renderSound = (): void => {
      ui.btnSound.textContent = ui.video.muted ? 'Unmute' : 'Mute';
      ui.btnSound.className = `btn ${ui.video.muted ? 'btn-primary' : ''}`;
    };
    ui.btnSound.addEventListener('click', () => {
      ui.video.muted = !ui.video.muted;
      void ui.video.play().catch(() => undefined);
      renderSound();
    });
    ui.btnFullscreen.addEventListener('click', () => {
      const wrap = ui.video.parentElement;
      if (document.fullscreenElement) void document.exitFullscreen();
      else void wrap?.requestFullscreen().catch(() => undefined);
    });
    renderSound();
    overlay('Connecting…');
  }

  return { init, close, refresh, onSignal, pc: (): RTCPeerConnection | null => current?.peer._pc ?? null };
})();

// ---- Chat form ------------------------------------------------------------------------------
ui.chatForm.addEventListener('submit', (e) => {
  e.preventDefault();
  const text = ui.chatInput.value.trim();
  if (!text) return;
  socket.emit('chat:send', { text }, (res: AckResponse) => {
    if (res.ok) ui.chatInput.value = '';
    else toast((chatErrors[res.error] ?? chatErrors['invalid_payload']!)());
  });
});

function saveName(): void {
  const name = ui.nameInput.value.trim();
  if (!name || name === displayName) return;
  socket.emit('name:set', { name }, (res: AckResponse) => {
    if (res.ok && res.name) {
      displayName = res.name;
      ui.nameInput.value = res.name;
      localStorage.setItem('streamroom:name', res.name);
      toast(`You are now “${res.name}”.`);
    } else {
      toast("Names use letters, numbers, spaces and . _ ' - (up to 32).");
    }
  });
}
ui.nameForm.addEventListener('submit', (e) => {
  e.preventDefault();
  saveName();
  ui.chatInput.focus();
});
ui.nameInput.addEventListener('change', saveName);
if (displayName) ui.nameInput.value = displayName;

if (role === 'broadcaster') broadcaster.init();
else viewer.init();
renderPresence();

// Debug handle for tests and troubleshooting: exposes no secrets.
Object.assign(window, {
  __streamroom: {
    role,
    socket: (): { connected: boolean; id: string | undefined; transport: string | undefined } => ({
      connected: socket.connected,
      id: socket.id,
      transport: socket.io.engine?.transport?.name,
    }),
    pc: (): RTCPeerConnection | null => viewer.pc(),
    peers: (): RTCPeerConnection[] => broadcaster.peers(),
    viewers: (): string[] => broadcaster.viewers(),
  },
});
