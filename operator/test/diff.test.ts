import { describe, expect, it } from '@jest/globals';
import { buildDeployment } from '../src/builders.js';
import { resolveSpec } from '../src/defaults.js';
import { APPLIED_HASH_ANNOTATION, contains, drift, withHash } from '../src/diff.js';

const needsApply = (d: Parameters<typeof drift>[0], a: Parameters<typeof drift>[1]) =>
  drift(d, a) !== undefined;
import { parseQuantity, sameQuantity } from '../src/quantity.js';
import { room } from './fixtures.js';

describe('quantities', () => {
  it.each([
    ['100m', 0.1],
    ['0.1', 0.1],
    ['2', 2],
    ['128Mi', 128 * 2 ** 20],
    ['1G', 1e9],
    ['1e3', 1000],
    ['1.5Gi', 1.5 * 2 ** 30],
    ['500u', 0.0005],
  ])('%s = %d', (text, value) => expect(parseQuantity(text)).toBeCloseTo(value, 12));

  it('rejects what is not a quantity', () => {
    expect(parseQuantity('12XB')).toBeUndefined();
    expect(parseQuantity('http')).toBeUndefined();
    expect(sameQuantity('abc', 'abc')).toBe(false);
  });

  it('compares by value', () => {
    expect(sameQuantity('0.5', '500m')).toBe(true);
    expect(sameQuantity('1Gi', '1024Mi')).toBe(true);
    expect(sameQuantity(1, '1000m')).toBe(true);
    expect(sameQuantity('1G', '1Gi')).toBe(false);
  });
});

describe('contains', () => {
  it('ignores fields only the actual object has', () => {
    expect(contains({ a: 1, b: { c: 2, d: 3 }, extra: true }, { a: 1, b: { c: 2 } })).toBe(true);
  });
  it('sees a changed or missing field', () => {
    expect(contains({ a: 1 }, { a: 2 })).toBe(false);
    expect(contains({}, { a: 1 })).toBe(false);
    expect(contains({ a: { b: 1 } }, { a: { b: 1, c: 0 } })).toBe(false);
  });
  it('matches lists element by element and by length', () => {
    expect(contains([{ a: 1, x: 9 }, { a: 2 }], [{ a: 1 }, { a: 2 }])).toBe(true);
    expect(contains([{ a: 1 }, { a: 2 }, { a: 3 }], [{ a: 1 }, { a: 2 }])).toBe(false);
    expect(contains([{ a: 2 }, { a: 1 }], [{ a: 1 }, { a: 2 }])).toBe(false);
  });
  it('takes an empty list for none, as the API server omits empty lists', () => {
    expect(contains({ policyTypes: ['Egress'] }, { policyTypes: ['Egress'], egress: [] })).toBe(true);
    expect(contains({ egress: [{ ports: [] }] }, { egress: [] })).toBe(false);
    expect(contains({}, { egress: [{}] })).toBe(false);
  });
  it('compares quantities by value', () => {
    expect(contains({ cpu: '500m' }, { cpu: '0.5' })).toBe(true);
    expect(contains({ cpu: '600m' }, { cpu: '0.5' })).toBe(false);
  });
});

describe('needsApply', () => {
  const r = room({});
  const desired = withHash(
    buildDeployment(r, resolveSpec(r, 'img:1'), { mode: 'none' }, { mode: 'PeerToPeer' }),
  );

  it('is true when the child does not exist', () => {
    expect(needsApply(desired, undefined)).toBe(true);
  });

  it('is false for what the API server returns after applying (defaults added, no kind in lists)', () => {
    const { apiVersion: _a, kind: _k, ...stored } = structuredClone(desired);
    const spec = stored.spec as NonNullable<typeof stored.spec>;
    spec.replicas = 4; // set by the HPA
    spec.revisionHistoryLimit = 10;
    (spec.template.spec as { dnsPolicy?: string }).dnsPolicy = 'ClusterFirst';
    expect(needsApply(desired, stored)).toBe(false);
  });

  it('is true when someone changed a field the operator sets, and names it', () => {
    const stored = structuredClone(desired);
    (stored.spec?.template.spec?.containers[0] as { image: string }).image = 'other:2';
    expect(needsApply(desired, stored)).toBe(true);
    expect(drift(desired, stored)).toBe('.spec.template.spec.containers[0].image');
    expect(drift(desired, undefined)).toBe('missing');
  });

  it('is true when the configuration changed, even if only by a removed field', () => {
    const suspended = room({ suspend: true });
    const before = withHash(
      buildDeployment(suspended, resolveSpec(suspended, 'img:1'), { mode: 'none' }, { mode: 'PeerToPeer' }),
    );
    // Unsuspending removes spec.replicas from the applied configuration: only the hash shows it.
    const stored = structuredClone(before);
    expect(needsApply(desired, stored)).toBe(true);
    expect(desired.metadata?.annotations?.[APPLIED_HASH_ANNOTATION]).not.toBe(
      before.metadata?.annotations?.[APPLIED_HASH_ANNOTATION],
    );
  });
});
