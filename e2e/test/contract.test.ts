// The operator and the room server agree on the room's environment: what the operator's Deployment
// sets (secrets resolved as the kubelet would) is exactly what the room server reads; and they log alike.
import { describe, expect, it } from '@jest/globals';
import type { V1EnvVar } from '@kubernetes/client-node';
import {
  backplaneFor,
  buildDeployment,
  mediaPlan,
  type BuildOptions,
  RELAY_TCP_PORT,
  RELAY_UDP_PORT,
  ROOM_CONTAINER_PORT,
  TERMINATION_GRACE_SECONDS,
} from '../../operator/src/builders.js';
import { resolveSpec } from '../../operator/src/defaults.js';
import { createLogger as createOperatorLogger } from '../../operator/src/log.js';
import type { StreamRoom, StreamRoomSpec } from '../../operator/src/types.js';
import { loadConfig } from '../../room-image/src/server/config.js';
import { createLogger as createRoomLogger } from '../../room-image/src/server/log.js';

const secrets: Record<string, Record<string, string>> = {
  'launch-keys': {
    broadcasterKey: 'b-key-0123456789abcdef',
    viewerKey: 'v-key-0123456789abcdef',
    redisUrl: 'redis://:pw@launch-redis:6379',
    turnKey: 'room-key-from-the-operator',
  },
  turn: { password: 's3cret-turn' },
};

/** The environment a kubelet would give the room container. */
function containerEnv(spec: StreamRoomSpec): Record<string, string> {
  const room: StreamRoom = {
    apiVersion: 'streamroom.dev/v1alpha1',
    kind: 'StreamRoom',
    metadata: { name: 'launch', namespace: 'events', uid: 'u' },
    spec,
  };
  const options: BuildOptions = {
    defaultImage: 'img:1',
    media: {
      defaultNetwork: 'HostPort',
      port: 20007,
      turn: { urls: ['turn:198.51.100.7:3478'], roomKey: 'k' },
    },
  };
  const resolved = resolveSpec(room, 'img:1');
  const backplane = backplaneFor(resolved, options);
  const container = buildDeployment(room, resolved, backplane, mediaPlan(resolved, options)).spec?.template
    .spec?.containers[0];
  const value = (e: V1EnvVar) => {
    const ref = e.valueFrom?.secretKeyRef;
    if (e.valueFrom?.fieldRef?.fieldPath === 'status.hostIP') return '192.0.2.20'; // the node's address
    return ref ? secrets[ref.name ?? '']?.[ref.key] : e.value;
  };
  return Object.fromEntries((container?.env ?? []).map((e) => [e.name, value(e) ?? '']));
}

describe('operator to room server contract', () => {
  it('a private room with chat limits, viewers and a TURN server', () => {
    const config = loadConfig(
      containerEnv({
        title: 'Launch',
        private: true,
        maxViewers: 30,
        chat: { enabled: true, historySize: 10, maxMessageLength: 280, messagesPerMinute: 5 },
        iceServers: [
          { urls: ['stun:stun.example.org:3478'] },
          {
            urls: ['turn:turn.example.org:3478'],
            username: 'u',
            credentialSecretRef: { name: 'turn', key: 'password' },
          },
        ],
      }),
    );
    expect(config).toMatchObject({
      port: ROOM_CONTAINER_PORT,
      roomName: 'launch',
      roomNamespace: 'events',
      title: 'Launch',
      broadcasterKey: 'b-key-0123456789abcdef',
      viewerKey: 'v-key-0123456789abcdef',
      maxViewers: 30,
      chat: { enabled: true, historySize: 10, maxMessageLength: 280, messagesPerMinute: 5 },
      iceServers: [
        { urls: ['stun:stun.example.org:3478'] },
        { urls: ['turn:turn.example.org:3478'], username: 'u', credential: 's3cret-turn' },
      ],
    });
    expect(config.shutdownTimeoutSeconds).toBeLessThan(TERMINATION_GRACE_SECONDS);
    // replicas.max defaults to 10: the room's replicas meet in the Redis its Secret names
    expect(config.redis).toMatchObject({
      url: 'redis://:pw@launch-redis:6379',
      keyPrefix: 'streamroom:events:launch:',
    });
  });

  it('a PeerToPeer room', () => {
    const config = loadConfig(containerEnv({ media: { mode: 'PeerToPeer' } }));
    expect(config.media.mode).toBe('PeerToPeer');
    expect(config.maxViewers).toBe(20);
  });

  it('a single-replica room without a backplane', () => {
    expect(loadConfig(containerEnv({ replicas: { min: 1, max: 1 } })).redis).toBeUndefined();
  });

  it('a public room with every default', () => {
    const config = loadConfig(containerEnv({}));
    expect(config).toMatchObject({ title: 'launch', viewerKey: undefined, maxViewers: 500, iceServers: [] });
    // SFU on HostPort: the relay listens on the room's port and tells browsers the node's address
    expect(config.media).toMatchObject({
      mode: 'SFU',
      relay: { udpPort: 20007, tcpPort: 20007, listenAddress: '0.0.0.0', announceAddresses: ['192.0.2.20'] },
      turn: undefined,
    });
  });

  it('a room reached through the TURN gateway', () => {
    const config = loadConfig(containerEnv({ media: { network: 'TURN' } }));
    expect(config.media).toMatchObject({
      relay: { udpPort: RELAY_UDP_PORT, tcpPort: RELAY_TCP_PORT, announceAddresses: [] },
      turn: { urls: ['turn:198.51.100.7:3478'], key: 'room-key-from-the-operator' },
    });
    expect(config.chat).toEqual({
      enabled: true,
      historySize: 50,
      maxMessageLength: 500,
      messagesPerMinute: 20,
    });
  });
});

describe('one log format for both programs', () => {
  it('writes the same JSON line shape, with child context and errors under err', () => {
    const lines: Record<string, unknown>[][] = [[], []];
    const loggers = [
      createOperatorLogger('info', (l) => void lines[0]!.push(JSON.parse(l) as Record<string, unknown>)),
      createRoomLogger('info', (l) => void lines[1]!.push(JSON.parse(l) as Record<string, unknown>)),
    ];
    for (const log of loggers) {
      log.debug('not at info');
      log
        .child({ room: 'ns/a' })
        .warn({ err: new Error('outer', { cause: new Error('inner') }) }, 'it failed');
    }
    for (const [line] of lines) {
      expect(Object.keys(line ?? {}).sort()).toEqual(['err', 'level', 'msg', 'room', 'time']);
      expect(line).toMatchObject({ level: 'warn', msg: 'it failed', room: 'ns/a' });
      expect(line?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
      expect(JSON.stringify(line?.err)).toContain('inner');
    }
    expect(lines[0]).toHaveLength(1);
    expect(lines[1]).toHaveLength(1);
  });
});
