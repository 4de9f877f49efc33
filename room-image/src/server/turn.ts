/**
 * Visitors' credentials for the cluster's TURN gateway (TURN rooms), in the TURN REST API scheme that
 * coturn's use-auth-secret implements, with one key per room: the username says until when and for
 * which room and user it holds, the password is an HMAC of it under the room's key. A visitor never
 * sees a long-lived secret, and a room cannot mint credentials for another room (see
 * room-image/media/README.md, "TURN gateway").
 */
import { createHmac } from 'node:crypto';
import type { IceServer } from '../protocol.js';
import type { TurnConfig } from './config.js';

export function turnCredential(turn: TurnConfig, room: string, user: string, nowMs: number): IceServer {
  const username = `${Math.floor(nowMs / 1000) + turn.ttlSeconds}:${room}:${user}`;
  const credential = createHmac('sha1', turn.key).update(username).digest('base64');
  return { urls: turn.urls, username, credential };
}
