import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, beforeEach, describe, expect, it, jest } from '@jest/globals';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { clientConfiguration, resourceOf, TokenBucket } from '../src/client.js';
import { eventMessage, eventReason } from '../src/controller.js';

describe('TokenBucket', () => {
  beforeEach(() => {
    jest.useFakeTimers();
  });
  afterEach(() => {
    jest.useRealTimers();
  });

  it('lets a burst through at once, then qps per second, in order', async () => {
    const bucket = new TokenBucket(10, 3, () => Date.now());
    const done: number[] = [];
    for (let i = 0; i < 6; i++) void bucket.take().then(() => done.push(i));
    await Promise.resolve();
    expect(done).toEqual([0, 1, 2]);
    expect(bucket.waiting).toBe(3);
    await jest.advanceTimersByTimeAsync(100);
    expect(done).toEqual([0, 1, 2, 3]);
    await jest.advanceTimersByTimeAsync(200);
    expect(done).toEqual([0, 1, 2, 3, 4, 5]);
    expect(bucket.waiting).toBe(0);
  });

  it('refills up to the burst while idle, no further', async () => {
    const bucket = new TokenBucket(100, 2, () => Date.now());
    await bucket.take();
    await bucket.take();
    jest.advanceTimersByTime(60_000);
    const done: number[] = [];
    for (let i = 0; i < 3; i++) void bucket.take().then(() => done.push(i));
    await Promise.resolve();
    expect(done).toEqual([0, 1]);
    await jest.advanceTimersByTimeAsync(10);
    expect(done).toEqual([0, 1, 2]);
  });

  it('refuses a limit that would never let a request through', () => {
    expect(() => new TokenBucket(0, 1)).toThrow(/qps > 0/);
    expect(() => new TokenBucket(5, 0)).toThrow(/burst >= 1/);
  });
});

describe('resourceOf', () => {
  it.each([
    ['https://h:6443/api/v1/namespaces/a/secrets/x-keys', 'secrets'],
    ['https://h:6443/api/v1/namespaces/a/events', 'events'],
    ['https://h:6443/apis/apps/v1/namespaces/a/deployments/x?fieldManager=f&force=true', 'deployments'],
    ['https://h:6443/apis/streamroom.dev/v1alpha1/namespaces/a/streamrooms/x/status', 'streamrooms/status'],
    ['https://h:6443/apis/streamroom.dev/v1alpha1/streamrooms', 'streamrooms'],
    ['https://h:6443/api/v1/nodes?limit=50', 'nodes'],
    ['https://h:6443/api/v1/namespaces/a', 'namespaces'],
    ['https://h:6443/apis/apps/v1', ''],
  ])('%s is %s', (url, resource) => expect(resourceOf(url)).toBe(resource));
});

describe('the Event of a reconcile', () => {
  it('says in one message what was created, updated and deleted', () => {
    const changes = [
      { verb: 'Created' as const, what: 'NetworkPolicy a' },
      { verb: 'Created' as const, what: 'Deployment a' },
      { verb: 'Deleted' as const, what: 'Ingress a' },
      { verb: 'Updated' as const, what: 'Service a' },
    ];
    expect(eventReason(changes)).toBe('Created');
    expect(eventMessage(changes)).toBe(
      'Created NetworkPolicy a, Deployment a; Updated Service a; Deleted Ingress a',
    );
    expect(eventReason(changes.slice(2))).toBe('Updated');
    expect(eventReason(changes.slice(2, 3))).toBe('Deleted');
  });
});

describe('the shared keep-alive connections', () => {
  // node-fetch 2 (under client-node) fails a complete chunked response with "Premature close" when the
  // response's socket is handed straight to a request queued at the agent (node-fetch issue #1767); an
  // agent with a socket limit below the operator's concurrency queued requests, and reconciles failed.
  it('answer many concurrent requests, each response chunked, without a false "Premature close"', async () => {
    const server = http.createServer((_req, res) => {
      const body = JSON.stringify({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'a' } });
      res.setHeader('Content-Type', 'application/json');
      // no Content-Length: chunked, in two pieces
      setTimeout(() => {
        res.write(body.slice(0, 20));
        setTimeout(() => res.end(body.slice(20)), Math.random() * 3);
      }, Math.random() * 3);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const kc = new KubeConfig();
      kc.loadFromOptions({
        clusters: [
          {
            name: 'c',
            server: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
            skipTLSVerify: true,
          },
        ],
        users: [{ name: 'u' }],
        contexts: [{ name: 'x', cluster: 'c', user: 'u' }],
        currentContext: 'x',
      });
      const api = new CoreV1Api(clientConfiguration(kc, { qps: 1e6, burst: 1e6 }));
      const failures: string[] = [];
      for (let round = 0; round < 6; round++) {
        await Promise.all(
          Array.from({ length: 160 }, () =>
            api.readNamespace({ name: 'a' }).catch((err: unknown) => void failures.push(String(err))),
          ),
        );
      }
      expect(failures.slice(0, 3)).toEqual([]);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  }, 60_000);
});
