/** The chat beside the video: messages (always as text), history after reconnects, the name. */
import type { ChatMessage, ChatWelcome, RejectReason } from '../protocol.js';
import type { Session } from './connection.js';
import { toast, ui } from './ui.js';

const MAX_SHOWN = 300;
const timeFormat = new Intl.DateTimeFormat(undefined, { hour: '2-digit', minute: '2-digit' });

export class Chat {
  /** Ids of the messages on screen: history replayed after a reconnect never shows one twice. */
  private readonly shown = new Set<string>();
  private limits = { maxMessageLength: 500, messagesPerMinute: 20 };

  constructor(private readonly session: Session) {
    session.socket.on('chat:batch', (batch) => this.append(batch));
    ui.chatForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.send();
    });
    ui.nameForm.addEventListener('submit', (e) => {
      e.preventDefault();
      this.saveName();
      ui.chatInput.focus();
    });
    ui.nameInput.addEventListener('change', () => this.saveName());
    if (session.chosen) ui.nameInput.value = session.chosen;
  }

  /** A welcome: the first one shows the history, later ones (reconnects) add what was missed. */
  onWelcome(chat: ChatWelcome, first: boolean): void {
    this.limits = chat;
    ui.chat.hidden = !chat.enabled;
    ui.chatInput.maxLength = chat.maxMessageLength;
    ui.chatHint.textContent = `Up to ${chat.maxMessageLength} characters, ${chat.messagesPerMinute} messages per minute.`;
    if (!this.session.chosen) ui.nameInput.value = this.session.name;
    if (first) this.reset(chat.history);
    else this.merge(chat.history);
  }

  /**
   * Shows new messages (a batch, or the history) with one change to the page: the layout is read
   * once before (was the list scrolled to the bottom?) and written once after.
   */
  private append(messages: ChatMessage[]): void {
    const fresh = messages.filter((m) => !this.shown.has(m.id));
    if (fresh.length === 0) return;
    const list = ui.messages;
    const nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    const items = document.createDocumentFragment();
    // Only the last MAX_SHOWN can stay on screen: build no more than that.
    for (const m of fresh.slice(-MAX_SHOWN)) {
      this.shown.add(m.id);
      items.append(this.item(m));
    }
    list.querySelector('.msg-empty')?.remove();
    list.append(items);
    let extra = list.children.length - MAX_SHOWN;
    while (extra-- > 0) {
      const oldest = list.firstElementChild as HTMLElement;
      this.shown.delete(oldest.dataset['id'] ?? '');
      oldest.remove();
    }
    if (nearBottom) list.scrollTop = list.scrollHeight;
  }

  private item(m: ChatMessage): HTMLLIElement {
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
    return li;
  }

  private reset(history: ChatMessage[]): void {
    ui.messages.replaceChildren();
    this.shown.clear();
    if (history.length === 0) {
      const empty = document.createElement('li');
      empty.className = 'msg-empty';
      empty.textContent = 'No messages yet. Say hello!';
      ui.messages.append(empty);
    }
    this.append(history);
    ui.messages.scrollTop = ui.messages.scrollHeight;
  }

  /** Appends what was said since the last message on screen, nothing twice. */
  private merge(history: ChatMessage[]): void {
    let start = 0;
    for (let i = history.length - 1; i >= 0; i--) {
      if (this.shown.has(history[i]!.id)) {
        start = i + 1;
        break;
      }
    }
    this.append(history.slice(start));
  }

  private errorText(error: RejectReason): string {
    switch (error) {
      case 'rate_limited':
        return `Slow down: at most ${this.limits.messagesPerMinute} messages per minute.`;
      case 'too_large':
        return `Messages can be at most ${this.limits.maxMessageLength} characters.`;
      case 'chat_disabled':
        return 'Chat is turned off in this room.';
      case 'flood':
        return 'Too many messages, slow down.';
      case 'unavailable':
        return 'The room is reconnecting, please try again in a moment.';
      default:
        return 'That message could not be sent.';
    }
  }

  private send(): void {
    const text = ui.chatInput.value.trim();
    if (!text) return;
    this.session.socket.emit('chat:send', { text }, (res) => {
      if (res.ok) ui.chatInput.value = '';
      else toast(this.errorText(res.error));
    });
  }

  private saveName(): void {
    const name = ui.nameInput.value.trim();
    if (!name || name === this.session.chosen) return;
    this.session.socket.emit('name:set', { name }, (res) => {
      if (res.ok) {
        this.session.choose(res.name);
        ui.nameInput.value = res.name;
        toast(`You are now “${res.name}”.`);
      } else {
        toast("Names use letters, numbers, spaces and . _ ' - (up to 32).");
      }
    });
  }
}
