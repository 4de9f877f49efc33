import { describe, expect, it } from '@jest/globals';
import type { V1Deployment, V1Service } from '@kubernetes/client-node';
import { resolveSpec } from '../src/defaults.js';
import {
  computeStatus,
  MAX_MESSAGE,
  mergeConditions,
  roomUrl,
  statusChanged,
  type ObservedState,
} from '../src/status.js';
import type { StreamRoomSpec } from '../src/types.js';
import { room } from './fixtures.js';

const NOW = new Date('2026-11-25T10:00:00Z');

function deployment(p: {
  replicas?: number;
  ready?: number;
  updated?: number;
  available?: number;
  generation?: number;
  observedGeneration?: number;
  conditions?: { type: string; status: string; reason?: string; message?: string }[];
}): V1Deployment {
  const replicas = p.replicas ?? 1;
  return {
    metadata: { generation: p.generation ?? 1 },
    spec: { replicas, selector: {}, template: {} },
    status: {
      observedGeneration: p.observedGeneration ?? p.generation ?? 1,
      replicas,
      readyReplicas: p.ready ?? replicas,
      updatedReplicas: p.updated ?? replicas,
      availableReplicas: p.available ?? p.ready ?? replicas,
      conditions: p.conditions ?? [],
    },
  };
}

function observe(spec: StreamRoomSpec, extra: Partial<ObservedState> = {}): ObservedState {
  const r = room(spec);
  return {
    room: r,
    spec: resolveSpec(r, 'img:1'),
    backplane: 'none',
    clusterDomain: 'cluster.local',
    keysSecretName: 'demo-keys',
    now: NOW,
    ...extra,
  };
}

const cond = (s: ReturnType<typeof computeStatus>, type: string) =>
  s.conditions?.find((c) => c.type === type);

describe('computeStatus phases', () => {
  it('Pending before the Deployment is observed', () => {
    const s = computeStatus(observe({}));
    expect(s.phase).toBe('Pending');
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'Pending', observedGeneration: 3 });
  });

  it('Provisioning while no pod is ready', () => {
    const s = computeStatus(observe({}, { deployment: deployment({ replicas: 1, ready: 0, available: 0 }) }));
    expect(s.phase).toBe('Provisioning');
    expect(s.ready).toBe('0/1');
    expect(cond(s, 'Progressing')?.status).toBe('True');
    expect(cond(s, 'Available')?.status).toBe('False');
  });

  it('Ready with the URL, counts, observedGeneration and all five conditions', () => {
    const s = computeStatus(observe({}, { deployment: deployment({ replicas: 2 }) }));
    expect(s).toMatchObject({
      phase: 'Ready',
      url: 'http://demo.team-a.svc.cluster.local/',
      replicas: 2,
      readyReplicas: 2,
      ready: '2/2',
      observedGeneration: 3,
      keysSecretName: 'demo-keys',
    });
    expect(s.conditions?.map((c) => [c.type, c.status])).toEqual([
      ['Ready', 'True'],
      ['Available', 'True'],
      ['Progressing', 'False'],
      ['Degraded', 'False'],
      ['BackplaneReady', 'True'],
    ]);
    for (const c of s.conditions ?? []) {
      expect(c.reason).toMatch(/^[A-Z][A-Za-z]+$/);
      expect(c.message.length).toBeGreaterThan(5);
      expect(c.lastTransitionTime).toEqual(NOW);
    }
  });

  it("waits for a room's own Redis and says so in BackplaneReady and the Ready message", () => {
    const waiting = computeStatus(
      observe({}, { backplane: 'dedicated', deployment: deployment({ replicas: 2, ready: 0 }) }),
    );
    expect(waiting.phase).toBe('Provisioning');
    expect(cond(waiting, 'BackplaneReady')).toMatchObject({ status: 'False', reason: 'RedisNotReady' });
    expect(cond(waiting, 'Ready')?.message).toMatch(/Redis backplane/);
    const ready = computeStatus(
      observe(
        {},
        {
          backplane: 'dedicated',
          redis: deployment({ replicas: 1 }),
          deployment: deployment({ replicas: 2 }),
        },
      ),
    );
    expect(ready.phase).toBe('Ready');
    expect(cond(ready, 'BackplaneReady')).toMatchObject({ status: 'True', reason: 'RedisReady' });
    const shared = computeStatus(observe({}, { backplane: 'shared', deployment: deployment({}) }));
    expect(cond(shared, 'BackplaneReady')).toMatchObject({ status: 'True', reason: 'SharedRedis' });
  });

  it('stays Ready but Progressing during a rolling update', () => {
    const s = computeStatus(
      observe(
        {},
        { deployment: deployment({ replicas: 2, updated: 1, generation: 4, observedGeneration: 4 }) },
      ),
    );
    expect(s.phase).toBe('Ready');
    expect(cond(s, 'Progressing')).toMatchObject({ status: 'True', reason: 'RollingOut' });
  });

  it('Degraded when the rollout is stuck but some replicas serve', () => {
    const s = computeStatus(
      observe(
        {},
        {
          deployment: deployment({
            replicas: 3,
            ready: 1,
            conditions: [
              {
                type: 'Progressing',
                status: 'False',
                reason: 'ProgressDeadlineExceeded',
                message: 'timed out',
              },
            ],
          }),
        },
      ),
    );
    expect(s.phase).toBe('Degraded');
    expect(cond(s, 'Degraded')).toMatchObject({ status: 'True', reason: 'ProgressDeadlineExceeded' });
    expect(cond(s, 'Available')?.status).toBe('True');
    expect(cond(s, 'Degraded')?.message).toContain('timed out');
  });

  it('Failed when the rollout is stuck and nothing serves', () => {
    const s = computeStatus(
      observe(
        {},
        {
          deployment: deployment({
            replicas: 1,
            ready: 0,
            conditions: [
              { type: 'ReplicaFailure', status: 'True', reason: 'FailedCreate', message: 'quota' },
            ],
          }),
        },
      ),
    );
    expect(s.phase).toBe('Failed');
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'ReplicaFailure' });
  });

  it('Failed with the reconcile error as reason and message', () => {
    const s = computeStatus(
      observe({}, { error: { reason: 'NameConflict', message: 'Service demo exists' } }),
    );
    expect(s.phase).toBe('Failed');
    expect(cond(s, 'Degraded')).toMatchObject({
      status: 'True',
      reason: 'NameConflict',
      message: 'Service demo exists',
    });
  });

  it('Suspended with zero replicas wanted', () => {
    const s = computeStatus(
      observe({ suspend: true }, { deployment: deployment({ replicas: 0, ready: 0 }) }),
    );
    expect(s).toMatchObject({ phase: 'Suspended', replicas: 0, ready: '0/0' });
    expect(cond(s, 'Ready')).toMatchObject({ status: 'False', reason: 'Suspended' });
  });

  it('Provisioning while a load balancer has no address, Ready once it has', () => {
    const spec: StreamRoomSpec = { expose: { type: 'LoadBalancer', port: 8080 } };
    const svc: V1Service = { spec: { ports: [{ port: 8080 }] }, status: { loadBalancer: {} } };
    const pending = computeStatus(observe(spec, { deployment: deployment({}), service: svc }));
    expect(pending.phase).toBe('Provisioning');
    expect(pending.url).toBeUndefined();
    expect(cond(pending, 'Ready')?.reason).toBe('WaitingForAddress');
    const assigned = computeStatus(
      observe(spec, {
        deployment: deployment({}),
        service: { ...svc, status: { loadBalancer: { ingress: [{ ip: '203.0.113.7' }] } } },
      }),
    );
    expect(assigned).toMatchObject({ phase: 'Ready', url: 'http://203.0.113.7:8080/' });
  });
});

describe('roomUrl for each expose type', () => {
  const base = (spec: StreamRoomSpec, extra: Partial<ObservedState> = {}) => roomUrl(observe(spec, extra));

  it('ClusterIP: the in-cluster DNS name', () => {
    expect(base({})).toBe('http://demo.team-a.svc.cluster.local/');
    expect(base({ expose: { type: 'ClusterIP', port: 8080 } })).toBe(
      'http://demo.team-a.svc.cluster.local:8080/',
    );
  });

  it('NodePort: a node address and the node port', () => {
    const service: V1Service = { spec: { ports: [{ port: 80, nodePort: 31234 }] } };
    expect(base({ expose: { type: 'NodePort' } }, { service, nodeAddress: '192.0.2.10' })).toBe(
      'http://192.0.2.10:31234/',
    );
    expect(base({ expose: { type: 'NodePort' } }, { service, nodeAddress: 'fd00::1' })).toBe(
      'http://[fd00::1]:31234/',
    );
    expect(base({ expose: { type: 'NodePort' } }, { service })).toBeUndefined();
  });

  it('LoadBalancer: the assigned hostname', () => {
    const service: V1Service = { status: { loadBalancer: { ingress: [{ hostname: 'lb.example.net' }] } } };
    expect(base({ expose: { type: 'LoadBalancer' } }, { service })).toBe('http://lb.example.net/');
  });

  it('Ingress: https with a TLS secret, http without', () => {
    expect(base({ expose: { type: 'Ingress', host: 'live.example.com', tlsSecretName: 't' } })).toBe(
      'https://live.example.com/',
    );
    expect(base({ expose: { type: 'Ingress', host: 'live.example.com' } })).toBe('http://live.example.com/');
  });
});

describe('status changes', () => {
  it('leaves the live fields to the live poller: neither computed nor a reason to write', () => {
    const status = computeStatus(observe({}, { deployment: deployment({}) }));
    expect(status).not.toHaveProperty('live');
    expect(status).not.toHaveProperty('viewers');
    expect(status).not.toHaveProperty('lastActivityTime');
    const stored = { ...status, live: true, viewers: 12, lastActivityTime: '2026-12-02T00:00:00Z' };
    expect(statusChanged(JSON.parse(JSON.stringify(stored)), status)).toBe(false);
  });

  it('keeps lastTransitionTime while a condition keeps its status', () => {
    const first = computeStatus(observe({}, { deployment: deployment({}) }));
    const stored = JSON.parse(JSON.stringify(first)) as typeof first; // as the API server returns it
    const r = { ...room({}), status: stored };
    const later = new Date(NOW.getTime() + 60_000);
    const second = computeStatus({ ...observe({}, { deployment: deployment({}) }), room: r, now: later });
    expect(statusChanged(stored, second)).toBe(false);
    const third = computeStatus({
      ...observe({}, { deployment: deployment({ ready: 0, available: 0 }) }),
      room: r,
      now: later,
    });
    expect(statusChanged(stored, third)).toBe(true);
    expect(new Date(cond(third, 'Ready')?.lastTransitionTime ?? 0)).toEqual(later);
    expect(new Date(cond(third, 'Degraded')?.lastTransitionTime ?? 0)).toEqual(NOW);
  });

  it('ignores sub-second precision the API server drops', () => {
    const s = computeStatus(observe({}, { now: new Date('2026-11-25T10:00:00.456Z') }));
    const stored = JSON.parse(JSON.stringify(s).replace(/\.456Z/g, 'Z')) as typeof s;
    expect(statusChanged(stored, s)).toBe(false);
  });
});

describe('condition messages', () => {
  it('are cut to the length of an Event message', () => {
    const long = 'x'.repeat(5000);
    const [c] = mergeConditions(
      undefined,
      { Ready: { status: 'False', reason: 'R', message: long } } as never,
      1,
      new Date(),
    );
    expect(c?.message).toHaveLength(MAX_MESSAGE);
    expect(c?.message.endsWith('…')).toBe(true);
  });
});
