import { describe, expect, it } from '@jest/globals';
import { choosePort, parsePortRange, portHolders } from '../src/ports.js';

const RANGE = { from: 20000, to: 20003 };

describe('media ports of HostPort rooms', () => {
  it('keeps a room on its port while nobody else holds it', () => {
    expect(choosePort('a/x', 20002, new Map([[20002, 'a/x']]), RANGE)).toBe(20002);
    expect(choosePort('a/x', 20002, new Map(), RANGE)).toBe(20002);
  });

  it('gives the lowest free port, skipping those held', () => {
    const taken = new Map([
      [20000, 'a/one'],
      [20001, 'a/two'],
    ]);
    expect(choosePort('a/new', undefined, taken, RANGE)).toBe(20002);
    // a port another room holds, or one outside the range, is replaced
    expect(choosePort('a/new', 20001, taken, RANGE)).toBe(20002);
    expect(choosePort('a/new', 19000, taken, RANGE)).toBe(20002);
  });

  it('says so when the range is full', () => {
    const taken = new Map([20000, 20001, 20002, 20003].map((p) => [p, `a/r${p}`]));
    expect(choosePort('a/late', undefined, taken, RANGE)).toBeUndefined();
  });

  it('settles two rooms claiming one port in favour of the older', () => {
    const holders = portHolders([
      { key: 'b/young', port: 20001, created: '2026-12-01T10:00:00.000Z' },
      { key: 'a/old', port: 20001, created: '2026-11-01T10:00:00.000Z' },
      { key: 'c/none', port: undefined, created: '2026-10-01T10:00:00.000Z' },
    ]);
    expect([...holders]).toEqual([[20001, 'a/old']]);
    expect(choosePort('b/young', 20001, holders, RANGE)).toBe(20000);
  });

  it('parses a range', () => {
    expect(parsePortRange('7000-7999')).toEqual({ from: 7000, to: 7999 });
    expect(() => parsePortRange('7000')).toThrow(/--media-port-range/);
    expect(() => parsePortRange('100-200')).toThrow(/from >= 1024/);
  });
});
