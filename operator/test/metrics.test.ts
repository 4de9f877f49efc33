// The operator's metrics (metrics.ts) in the names controller users graph, and the chart's Grafana
// dashboard, which must only query series the operator exposes and be a dashboard Grafana imports.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { OperatorMetrics } from '../src/metrics.js';

const metrics = () =>
  new OperatorMetrics({
    queueDepth: () => 3,
    activeWorkers: () => 2,
    roomsByPhase: () =>
      new Map([
        ['Ready', 5],
        ['Provisioning', 1],
      ]),
    informerRestarts: () => 7,
    isLeader: () => true,
    leaseName: 'streamroom-operator',
  });

/** Metric family names in an exposition (histograms and counters by their family name). */
function families(text: string): Set<string> {
  return new Set([...text.matchAll(/^# TYPE (\S+) /gm)].map((m) => m[1] as string));
}

describe('OperatorMetrics', () => {
  it('exposes what controller dashboards query, with values from the operator', async () => {
    const m = metrics();
    m.reconciled(0.02, 'success');
    m.reconciled(0.3, 'error');
    m.queue.added();
    m.queue.started(0.004);
    m.queue.finished(0.02);
    m.queue.retried();
    m.request({ method: 'PATCH', resource: 'deployments', code: '200', seconds: 0.01 });
    const text = await m.text();
    for (const name of [
      'controller_runtime_reconcile_total',
      'controller_runtime_reconcile_errors_total',
      'controller_runtime_reconcile_time_seconds',
      'controller_runtime_active_workers',
      'workqueue_depth',
      'workqueue_adds_total',
      'workqueue_queue_duration_seconds',
      'workqueue_work_duration_seconds',
      'workqueue_retries_total',
      'rest_client_requests_total',
      'rest_client_request_duration_seconds',
      'leader_election_master_status',
      'streamroom_rooms',
      'streamroom_informer_restarts_total',
      'process_cpu_seconds_total',
      'process_resident_memory_bytes',
    ]) {
      expect(families(text)).toContain(name);
    }
    expect(text).toContain('controller_runtime_reconcile_total{controller="streamroom",result="success"} 1');
    expect(text).toContain('controller_runtime_reconcile_total{controller="streamroom",result="error"} 1');
    expect(text).toContain('controller_runtime_reconcile_errors_total{controller="streamroom"} 1');
    expect(text).toContain(
      'controller_runtime_reconcile_time_seconds_bucket{le="0.025",controller="streamroom"} 1',
    );
    expect(text).toContain('workqueue_depth{name="streamroom"} 3');
    expect(text).toContain('workqueue_retries_total{name="streamroom"} 1');
    expect(text).toContain('rest_client_requests_total{code="200",method="PATCH",resource="deployments"} 1');
    expect(text).toContain('leader_election_master_status{name="streamroom-operator"} 1');
    expect(text).toContain('streamroom_rooms{phase="Ready"} 5');
    expect(text).toContain('streamroom_informer_restarts_total 7');
  });

  it('keeps registries apart (several operators in one process)', async () => {
    const a = metrics();
    a.reconciled(0.1, 'success');
    const b = metrics();
    expect(await b.text()).toContain(
      'controller_runtime_reconcile_total{controller="streamroom",result="success"} 0',
    );
  });
});

describe("the chart's Grafana dashboard", () => {
  const dashboard = JSON.parse(
    readFileSync(
      new URL('../../charts/streamroom-operator/dashboards/streamroom-operator.json', import.meta.url),
      'utf8',
    ),
  ) as {
    uid: string;
    title: string;
    schemaVersion: number;
    templating: { list: { name: string; type: string }[] };
    panels: {
      id: number;
      type: string;
      title: string;
      datasource: { uid: string };
      gridPos: { x: number; y: number; w: number; h: number };
      targets: { expr: string; refId: string; datasource: { uid: string } }[];
    }[];
  };

  it('is a dashboard Grafana imports: uid, title, unique panel ids, panels on the 24-column grid', () => {
    expect(dashboard.uid).toMatch(/^[\w-]{1,40}$/);
    expect(dashboard.title).toBeTruthy();
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(30);
    const ids = dashboard.panels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const { gridPos: g, title } of dashboard.panels) {
      expect(g.x + g.w).toBeLessThanOrEqual(24);
      for (let x = g.x; x < g.x + g.w; x++) {
        for (let y = g.y; y < g.y + g.h; y++) {
          expect({ title, cell: cells.has(`${x},${y}`) }).toEqual({ title, cell: false }); // no overlap
          cells.add(`${x},${y}`);
        }
      }
    }
  });

  it('queries through its data source variable, only series the operator exposes', async () => {
    const variables = dashboard.templating.list.map((v) => v.name);
    expect(dashboard.templating.list.find((v) => v.name === 'datasource')?.type).toBe('datasource');
    const exposed = families(await metrics().text());
    const series = (name: string) => name.replace(/_(bucket|sum|count)$/, '');
    for (const panel of dashboard.panels) {
      expect(panel.datasource.uid).toBe('${datasource}');
      expect(panel.targets.length).toBeGreaterThan(0);
      for (const t of panel.targets) {
        expect(t.datasource.uid).toBe('${datasource}');
        for (const v of t.expr.matchAll(/\$(\w+)/g)) {
          if (!v[1]?.startsWith('__')) expect(variables).toContain(v[1]);
        }
        const names = [...t.expr.matchAll(/([a-z_:][a-z0-9_:]*)\s*\{/g)].map((m) => series(m[1] as string));
        expect(names.length).toBeGreaterThan(0);
        for (const name of names)
          expect({ panel: panel.title, name, exposed: exposed.has(name) }).toMatchObject({ exposed: true });
      }
    }
  });
});
