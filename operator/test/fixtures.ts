import type { StreamRoom, StreamRoomSpec } from '../src/types.js';

export function room(spec: StreamRoomSpec = {}, name = 'demo', namespace = 'team-a'): StreamRoom {
  return {
    apiVersion: 'streamroom.dev/v1alpha1',
    kind: 'StreamRoom',
    metadata: { name, namespace, uid: '1b4e28ba-2fa1-11d2-883f-0016d3cca427', generation: 3 },
    spec,
  };
}
