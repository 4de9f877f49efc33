// The CRD in crds/ and the operator's own defaults must agree: one name and one default for one thing.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from '@jest/globals';
import { parse } from 'yaml';
import { DEFAULTS } from '../src/defaults.js';

type Schema = {
  properties?: Record<string, Schema>;
  default?: unknown;
  description?: string;
  items?: Schema;
  type?: string;
  additionalProperties?: Schema;
};

const crd = parse(
  readFileSync(new URL('../../crds/streamrooms.streamroom.dev.yaml', import.meta.url), 'utf8'),
) as {
  spec: { versions: { name: string; schema: { openAPIV3Schema: Schema } }[] };
};
const root = crd.spec.versions[0]?.schema.openAPIV3Schema as Schema;
const spec = root.properties?.spec as Schema;

const at = (path: string): Schema | undefined =>
  path.split('.').reduce<Schema | undefined>((s, p) => s?.properties?.[p], spec);

describe('the StreamRoom CRD', () => {
  it.each([
    ['private', DEFAULTS.private],
    ['replicas.min', DEFAULTS.replicas.min],
    ['replicas.max', DEFAULTS.replicas.max],
    ['autoscaling.targetCPUUtilizationPercentage', DEFAULTS.autoscaling.targetCPUUtilizationPercentage],
    [
      'autoscaling.scaleDownStabilizationWindowSeconds',
      DEFAULTS.autoscaling.scaleDownStabilizationWindowSeconds,
    ],
    ['expose.type', DEFAULTS.expose.type],
    ['expose.port', DEFAULTS.expose.port],
    ['chat.enabled', DEFAULTS.chat.enabled],
    ['chat.historySize', DEFAULTS.chat.historySize],
    ['chat.maxMessageLength', DEFAULTS.chat.maxMessageLength],
    ['chat.messagesPerMinute', DEFAULTS.chat.messagesPerMinute],
    ['media.mode', DEFAULTS.media.mode],
    ['suspend', DEFAULTS.suspend],
  ])('defaults spec.%s to the operator default %p', (path, value) => {
    expect(at(path)?.default).toEqual(value);
  });

  it('leaves maxViewers to the operator, which defaults it by media mode', () => {
    expect(at('maxViewers')?.default).toBeUndefined();
  });

  it('describes every field, so `kubectl explain` reads well', () => {
    const missing: string[] = [];
    const walk = (s: Schema, path: string) => {
      if (!s.description && path !== 'metadata') missing.push(path);
      for (const [k, v] of Object.entries(s.properties ?? {})) {
        if (path === '' && k === 'metadata') continue;
        walk(v, path ? `${path}.${k}` : k);
      }
      if (s.items) walk(s.items, `${path}[]`);
    };
    for (const [k, v] of Object.entries(root.properties ?? {})) if (k !== 'metadata') walk(v, k);
    expect(missing).toEqual([]);
  });
});
