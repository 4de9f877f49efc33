// How the operator's API calls reach the API server: over one pool of keep-alive connections (client-node
// 1.4 makes a new agent, so a new TLS connection, for every request), under a client-side rate limit
// (QPS and burst, as client-go's), each request reported with its method, status code and duration.
import { createHash } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import {
  createConfiguration,
  ServerConfiguration,
  wrapHttpLibrary,
  type Configuration,
  type KubeConfig,
  type RequestContext,
} from '@kubernetes/client-node';

/**
 * A token bucket: `burst` requests at once, then `qps` per second; waiters are served in order.
 * (client-go's flowcontrol.NewTokenBucketRateLimiter.)
 */
export class TokenBucket {
  private tokens: number;
  private last: number;
  private readonly waiters: (() => void)[] = [];
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly qps: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error('a rate limit needs qps > 0 and burst >= 1');
    this.tokens = burst;
    this.last = now();
  }

  /** Requests waiting for a token. */
  get waiting(): number {
    return this.waiters.length;
  }

  /** Resolves when the caller may send its request. */
  take(): Promise<void> {
    this.refill();
    if (this.waiters.length === 0 && this.tokens >= 1) {
      this.tokens -= 1;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      this.waiters.push(resolve);
      this.schedule();
    });
  }

  private refill(): void {
    const now = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.qps) / 1000);
    this.last = now;
  }

  private schedule(): void {
    if (this.timer) return;
    const wait = Math.max(1, Math.ceil(((1 - this.tokens) * 1000) / this.qps));
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.refill();
      while (this.waiters.length > 0 && this.tokens >= 1) {
        this.tokens -= 1;
        this.waiters.shift()?.();
      }
      if (this.waiters.length > 0) this.schedule();
    }, wait);
  }
}

export interface ClientOptions {
  qps: number;
  burst: number;
  /**
   * Called once per request when it ends: its method, the resource (e.g. deployments,
   * streamrooms/status), the status code ('<error>' without one), and how long it took.
   */
  onResponse?: (request: { method: string; resource: string; code: string; seconds: number }) => void;
}

/** The resource a request URL addresses: "deployments", "streamrooms/status", "namespaces". */
export function resourceOf(url: string): string {
  const segments = new URL(url, 'http://localhost').pathname.split('/').filter(Boolean);
  let rest = segments.slice(segments[0] === 'api' ? 2 : 3);
  if (rest[0] === 'namespaces' && rest.length > 2) rest = rest.slice(2);
  return rest.length > 2 ? `${rest[0]}/${rest[2]}` : (rest[0] ?? '');
}

type AgentWithOptions = (http.Agent | https.Agent) & { options?: https.AgentOptions };

/**
 * One keep-alive agent per distinct TLS identity: client-node builds a fresh agent for each request
 * from the kubeconfig (so a rotated client certificate still takes effect); requests whose agents carry
 * the same credentials share connections. Agents of other kinds (proxies) are left as they are.
 */
function agentPool(): (agent: unknown) => unknown {
  const pool = new Map<string, http.Agent>();
  return (agent) => {
    const kind: unknown = (agent as object | undefined)?.constructor;
    if (kind !== https.Agent && kind !== http.Agent) return agent;
    const secure = kind === https.Agent;
    const o = (agent as AgentWithOptions).options ?? {};
    const fingerprint = createHash('sha256');
    for (const part of [o.ca, o.cert, o.key, o.pfx, o.passphrase, o.servername, o.rejectUnauthorized]) {
      fingerprint.update(`${String(part)}\0`);
    }
    const key = `${secure ? 'https' : 'http'}:${fingerprint.digest('hex')}`;
    let shared = pool.get(key);
    if (!shared) {
      // No socket limit (Node's default): concurrency is bounded by the workers and the rate limit. A
      // request that waits at the agent is handed the socket of a response the moment it ends, and
      // node-fetch 2 (under client-node) then fails that complete chunked response with "Premature
      // close" (node-fetch issue #1767): with 64 sockets, reconciles of a busy fleet failed that way.
      const options = { ...o, keepAlive: true, maxSockets: Infinity, maxFreeSockets: 16 };
      shared = secure ? new https.Agent(options) : new http.Agent(options);
      pool.set(key, shared);
    }
    return shared;
  };
}

/** The configuration every API client of the operator is made with (see the top of this file). */
export function clientConfiguration(kc: KubeConfig, options: ClientOptions): Configuration {
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error('the kubeconfig names no current cluster');
  const limiter = new TokenBucket(options.qps, options.burst);
  const pooled = agentPool();
  const base = createConfiguration().httpApi;
  const httpApi = wrapHttpLibrary({
    async send(request: RequestContext) {
      request.setAgent(pooled(request.getAgent()) as http.Agent);
      await limiter.take();
      const started = performance.now();
      const report = (code: string) =>
        options.onResponse?.({
          method: request.getHttpMethod().toString(),
          resource: resourceOf(request.getUrl()),
          code,
          seconds: (performance.now() - started) / 1000,
        });
      try {
        const response = await base.send(request).toPromise();
        report(String(response.httpStatusCode));
        return response;
      } catch (err) {
        report('<error>');
        throw err;
      }
    },
  });
  return createConfiguration({
    baseServer: new ServerConfiguration(cluster.server, {}),
    authMethods: { default: kc },
    httpApi,
  });
}
