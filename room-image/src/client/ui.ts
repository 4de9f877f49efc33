/** The page's elements, and the small pieces of UI every part of the client uses. */
import type { Presence } from '../protocol.js';

const $ = <T extends HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`missing #${id}`);
  return el as T;
};

export const ui = {
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

let toastTimer: ReturnType<typeof setTimeout> | undefined;

/** A short message over the page that goes away by itself. */
export function toast(text: string): void {
  ui.toast.textContent = text;
  ui.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (ui.toast.hidden = true), 4000);
}

/** The card over the video; `null` hides it. */
export function overlay(title: string | null, text = ''): void {
  ui.overlay.hidden = title === null;
  ui.overlayTitle.textContent = title ?? '';
  ui.overlayText.textContent = text;
}

export function renderPresence(presence: Presence): void {
  const live = presence.broadcasterOnline && presence.live;
  ui.badge.textContent = live ? 'Live' : 'Offline';
  ui.badge.className = `badge ${live ? 'badge-live' : 'badge-offline'}`;
  ui.viewerCount.textContent = `${presence.viewers} watching`;
}
