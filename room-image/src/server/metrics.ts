/** A tiny Prometheus text-format (0.0.4) exposition: counters and gauges, optional single label. */

type Labels = Readonly<Record<string, string>>;

function escapeLabel(v: string): string {
  return v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
}

function labelText(labels: Labels): string {
  const parts = Object.entries(labels).map(([k, v]) => `${k}="${escapeLabel(v)}"`);
  return parts.length ? `{${parts.join(',')}}` : '';
}

class Metric {
  private readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}
  add(delta: number, labels: Labels = {}): void {
    const k = labelText(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + delta);
  }
  set(value: number, labels: Labels = {}): void {
    this.values.set(labelText(labels), value);
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelText(labels)) ?? 0;
  }
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${v}`);
    return lines.join('\n');
  }
}

import {
  CONNECTION_REJECT_REASONS,
  REJECT_REASONS,
  type ConnectionRejectReason,
  type RejectReason,
} from '../protocol.js';
import type { RelayStats } from './relay.js';

export type { ConnectionRejectReason, RejectReason };

export class RoomMetrics {
  readonly viewers = new Metric(
    'streamroom_viewers_connected',
    'Viewers currently connected to the room (room-wide: the same on every replica).',
    'gauge',
  );
  readonly broadcasters = new Metric(
    'streamroom_broadcasters_connected',
    'Broadcasters currently connected to the room (0 or 1, room-wide).',
    'gauge',
  );
  readonly replicaSockets = new Metric(
    'streamroom_replica_sockets',
    "Sockets connected to this replica, by role (sum over the room's pods for totals).",
    'gauge',
  );
  /** Only rendered when the room has a backplane (ROOM_REDIS_URL). */
  readonly backplaneConnected = new Metric(
    'streamroom_backplane_connected',
    'Whether this replica is connected to the room backplane (Redis): 1 or 0.',
    'gauge',
  );
  readonly chatMessages = new Metric(
    'streamroom_chat_messages_total',
    'Chat messages accepted and relayed.',
    'counter',
  );
  readonly signalingMessages = new Metric(
    'streamroom_signaling_messages_total',
    'WebRTC signaling messages relayed.',
    'counter',
  );
  readonly rejectedMessages = new Metric(
    'streamroom_rejected_messages_total',
    'Incoming socket messages rejected, by reason.',
    'counter',
  );
  readonly rejectedConnections = new Metric(
    'streamroom_rejected_connections_total',
    'Socket connections refused, by reason (bad_origin: a page of another site, answered 403).',
    'counter',
  );
  readonly slowClientsDisconnected = new Metric(
    'streamroom_slow_clients_disconnected_total',
    'Sockets disconnected because their client did not read what was sent to it.',
    'counter',
  );
  /** SFU rooms only: the media relay's own counters (relay.ts RelayStats). */
  private readonly relay = {
    up: new Metric('streamroom_relay_up', 'Whether the media relay runs: 1 or 0.', 'gauge'),
    restarts: new Metric(
      'streamroom_relay_restarts_total',
      'Times the media relay stopped and was restarted.',
      'counter',
    ),
    viewers: new Metric(
      'streamroom_relay_viewers',
      "Viewer connections to this replica's relay that are up.",
      'gauge',
    ),
    bitrate: new Metric(
      'streamroom_relay_bitrate_bits',
      'Media bits per second through the relay, by direction.',
      'gauge',
    ),
    packets: new Metric(
      'streamroom_relay_packets_total',
      'RTP packets through the relay, by direction.',
      'counter',
    ),
    lost: new Metric(
      'streamroom_relay_packets_lost_total',
      "Packets of the broadcaster's stream that never reached the relay.",
      'counter',
    ),
    dropped: new Metric(
      'streamroom_relay_packets_dropped_total',
      'Packets the relay dropped: over the publish cap, or for a viewer that could not keep up.',
      'counter',
    ),
    nacks: new Metric(
      'streamroom_relay_nacks_total',
      'Retransmissions asked for (in: by viewers; out: by the relay, of the broadcaster).',
      'counter',
    ),
    retransmits: new Metric(
      'streamroom_relay_retransmits_total',
      "Packets resent to viewers from the relay's cache.",
      'counter',
    ),
    keyframes: new Metric(
      'streamroom_relay_keyframe_requests_total',
      'Keyframe requests (in: from viewers; out: to the broadcaster, coalesced).',
      'counter',
    ),
    cpu: new Metric('streamroom_relay_cpu_seconds_total', 'CPU time the media relay used.', 'counter'),
    rss: new Metric('streamroom_relay_resident_memory_bytes', 'Resident memory of the media relay.', 'gauge'),
  };
  private withRelay = false;
  private readonly info = new Metric('streamroom_room_info', 'Room identity.', 'gauge');
  private readonly rss = new Metric(
    'process_resident_memory_bytes',
    'Resident memory size in bytes.',
    'gauge',
  );

  constructor(
    room: { name: string; namespace: string },
    private readonly withBackplane = false,
  ) {
    this.info.set(1, { room: room.name, namespace: room.namespace });
    this.viewers.set(0);
    this.broadcasters.set(0);
    this.replicaSockets.set(0, { role: 'viewer' });
    this.replicaSockets.set(0, { role: 'broadcaster' });
    this.backplaneConnected.set(0);
    this.chatMessages.add(0);
    this.signalingMessages.add(0);
    for (const r of REJECT_REASONS) this.rejectedMessages.add(0, { reason: r });
    for (const r of [...CONNECTION_REJECT_REASONS, 'bad_origin'])
      this.rejectedConnections.add(0, { reason: r });
    this.slowClientsDisconnected.add(0);
  }

  /** The relay's state for the next render (stats undefined when it does not answer). */
  recordRelay(up: boolean, restarts: number, s: RelayStats | undefined): void {
    const r = this.relay;
    this.withRelay = true;
    r.up.set(up ? 1 : 0);
    r.restarts.set(restarts);
    if (!s) return;
    r.viewers.set(s.viewers);
    r.bitrate.set(s.bitrateIn, { direction: 'in' });
    r.bitrate.set(s.bitrateOut, { direction: 'out' });
    r.packets.set(s.packetsIn, { direction: 'in' });
    r.packets.set(s.packetsOut, { direction: 'out' });
    r.lost.set(s.lostIn);
    r.dropped.set(s.packetsDropped);
    r.nacks.set(s.nacksIn, { direction: 'in' });
    r.nacks.set(s.nacksOut, { direction: 'out' });
    r.retransmits.set(s.retransmits);
    r.keyframes.set(s.keyframeRequestsIn, { direction: 'in' });
    r.keyframes.set(s.keyframeRequestsOut, { direction: 'out' });
    r.cpu.set(s.cpuSeconds);
    r.rss.set(s.rssBytes);
  }

  reject(reason: RejectReason): void {
    this.rejectedMessages.add(1, { reason });
  }

  render(): string {
    this.rss.set(process.memoryUsage.rss());
    const all = [
      this.info,
      this.viewers,
      this.broadcasters,
      this.replicaSockets,
      ...(this.withBackplane ? [this.backplaneConnected] : []),
      this.chatMessages,
      this.signalingMessages,
      this.rejectedMessages,
      this.rejectedConnections,
      this.slowClientsDisconnected,
      ...(this.withRelay ? Object.values(this.relay) : []),
      this.rss,
    ];
    return all.map((m) => m.render()).join('\n') + '\n';
  }
}
