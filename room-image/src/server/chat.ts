/** Chat: `chat:send` (validation, per-user rate limit, history) and `name:set`. */
import { randomUUID } from 'node:crypto';
import type { Socket } from 'socket.io';
import type { RoomContext, SocketData } from './context.js';
import type { SocketHandlers } from './guard.js';
import type { ChatHistory, NewChatMessage } from './state.js';
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
    const fresh: NewChatMessage = {
      id: randomUUID(),
      name: data.name,
      role: data.role,
      text,
      ts: Date.now(),
    };
    const limits = { size: config.chat.historySize, bytes: config.limits.chatHistoryBytes };
    const message = await state.addMessage(fresh, limits);
    metrics.chatMessages.add(1);
    ctx.chat.add(message); // in this tick's batch: every replica's sockets
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

/**
 * The `chat` part of `welcome` (the limits, plus the history when chat is enabled) and the `seq`
 * the history ends at. Call `ctx.chat.beginJoin(socket)` first (see chat-fanout.ts).
 */
export async function chatWelcome({ config, state }: Pick<RoomContext, 'config' | 'state'>) {
  const { messages, seq }: ChatHistory = config.chat.enabled
    ? await state.history()
    : { messages: [], seq: 0 };
  return { chat: { ...config.chat, history: messages }, seq };
}
