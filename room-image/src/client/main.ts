/** The room page: the connection, the chat, and the broadcaster's or the viewer's part. */
import { Broadcaster } from './broadcaster.js';
import { Chat } from './chat.js';
import { Session } from './connection.js';
import { renderPresence, ui } from './ui.js';
import { Viewer } from './viewer.js';

const parts: { chat?: Chat; broadcaster?: Broadcaster; viewer?: Viewer } = {};

const session = new Session({
  onWelcome(w, first) {
    ui.title.textContent = w.title;
    document.title = `${w.title} · StreamRoom`;
    parts.chat?.onWelcome(w.chat, first);
    parts.broadcaster?.onWelcome(w);
    parts.viewer?.refresh();
  },
  onPresence(p) {
    renderPresence(p);
    parts.viewer?.refresh();
  },
  onDisconnect(replaced) {
    parts.broadcaster?.onDisconnect(replaced);
    parts.viewer?.close();
  },
});
parts.chat = new Chat(session);
if (session.role === 'broadcaster') parts.broadcaster = new Broadcaster(session);
else parts.viewer = new Viewer(session);
renderPresence(session.presence);

// Debug handle for tests and troubleshooting: exposes no secrets.
Object.assign(window, {
  __streamroom: {
    role: session.role,
    socket: (): { connected: boolean; id: string | undefined; transport: string | undefined } => ({
      connected: session.socket.connected,
      id: session.socket.id,
      transport: session.socket.io.engine?.transport?.name,
    }),
    pc: (): RTCPeerConnection | null => parts.viewer?.pc() ?? null,
    peers: (): RTCPeerConnection[] => parts.broadcaster?.debug().peers() ?? [],
    viewers: (): string[] => parts.broadcaster?.debug().viewers() ?? [],
  },
});
