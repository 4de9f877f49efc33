/** Chat: `chat:send` (validation, per-user rate limit, history) and `name:set`. */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'socket.io';
import type { RoomContext, SocketData } from './context.js';
import type { SocketHandlers } from './guard.js';
import type { ChatMessage } from './state.js';
import { chatPayload, namePayload } from './validate.js';

export function registerChat(ctx: RoomContext, socket: Socket, h: SocketHandlers): void {
  const { config, state, metrics } = ctx;
  const data = socket.data as SocketData;

  h.handle('chat:send', async (payload, ack) => {
    if (!config.chat.enabled) return h.reject('chat_disabled', 'chat:send', ack);
    const text = h.check(chatPayload(payload, config.chat.maxMessageLength), 'chat:send', ack);
    if (text === undefined) return;
    if (!(await state.takeChatToken(data.user, config.chat.messagesPerMinute, Date.now()))) {
      return h.reject('rate_limited', 'chat:send', ack);
    }
    const message: ChatMessage = {
      id: randomUUID(),
      name: data.name,
      role: data.role,
      text,
      ts: Date.now(),
    };
    await state.addMessage(message, { size: config.chat.historySize, bytes: config.limits.chatHistoryBytes });
    metrics.chatMessages.add(1);
    ctx.io.emit('chat:message', message); // through the adapter: every replica's sockets
    ack?.({ ok: true, message });
  });

  h.handle('name:set', async (payload, ack) => {
    const name = namePayload(payload);
    if (!name.ok) {
      // The ack always says invalid_name; the metric and the `rejected` event keep the detail.
      if (!ack) return h.reject(name.reason, 'name:set');
      metrics.reject(name.reason);
      return ack({ ok: false, error: 'invalid_name' });
    }
    data.name = name.value;
    ack?.({ ok: true, name: name.value });
  });
}

/** The `chat` part of `welcome`: the limits, plus the history when chat is enabled. */
export async function chatWelcome({ config, state }: Pick<RoomContext, 'config' | 'state'>) {
  return { ...config.chat, history: config.chat.enabled ? await state.history() : [] };
}
