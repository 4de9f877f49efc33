import { describe, expect, it } from '@jest/globals';
import { hostRefusal, imageRefusal, parseHosts, parseImages, type RoomPolicy } from '../src/policy.js';

const policy: RoomPolicy = {
  images: parseImages('registry.example.com/rooms/, streamroom/room@sha256:'),
  hosts: parseHosts('team-a=a.example.com,shop.example.com; *=rooms.example.com'),
};

describe('what tenants may ask for', () => {
  it('allows images under the prefixes, and the default image', () => {
    expect(imageRefusal(policy, 'registry.example.com/rooms/room:2', 'streamroom/room:1')).toBeUndefined();
    expect(imageRefusal(policy, 'streamroom/room@sha256:abc', 'streamroom/room:1')).toBeUndefined();
    expect(imageRefusal(policy, 'streamroom/room:1', 'streamroom/room:1')).toBeUndefined();
    expect(imageRefusal(policy, 'evil.example.com/miner:1', 'streamroom/room:1')).toMatch(
      /spec.image evil.example.com\/miner:1 is not allowed here: images must start with one of/,
    );
    expect(imageRefusal({ images: [], hosts: new Map() }, 'anything:1', 'x')).toBeUndefined();
  });

  it('allows a namespace its own host suffixes only, and wildcards only below them', () => {
    expect(hostRefusal(policy, 'team-a', 'live.a.example.com')).toBeUndefined();
    expect(hostRefusal(policy, 'team-a', 'a.example.com')).toBeUndefined();
    expect(hostRefusal(policy, 'team-a', '*.a.example.com')).toBeUndefined();
    expect(hostRefusal(policy, 'team-a', 'xa.example.com')).toMatch(/not allowed in namespace team-a/);
    expect(hostRefusal(policy, 'team-a', 'shop.b.example.com')).toMatch(/not allowed/);
    // another team's name, and a wildcard that would claim everything under example.com
    expect(hostRefusal(policy, 'team-b', 'live.a.example.com')).toMatch(/must be rooms.example.com or below/);
    expect(hostRefusal(policy, 'team-a', '*.example.com')).toMatch(/not allowed/);
    expect(hostRefusal(policy, 'team-b', 'x.rooms.example.com')).toBeUndefined();
    expect(
      hostRefusal({ images: [], hosts: parseHosts('team-a=a.example.com') }, 'team-b', 'b.example.com'),
    ).toMatch(/namespace team-b may not use Ingress hosts/);
  });

  it('refuses a malformed policy with a clear message', () => {
    expect(() => parseHosts('team-a')).toThrow(/"team-a" is not <namespace>=<host suffix>/);
    expect(() => parseHosts('Team_A=a.example.com')).toThrow(/--allowed-ingress-hosts/);
    expect(() => parseHosts('team-a=a example.com')).toThrow(/is not a DNS name/);
  });
});
