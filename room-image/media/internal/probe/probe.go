// Package probe defines the trailer that the swarm's synthetic publisher puts at the end of every
// video RTP payload, so that viewers on the same machine measure one-way delay and count frames.
//
// Layout of the last Size bytes of the payload (big endian):
//
//	offset len-20: magic "SRPB" (4 bytes)
//	offset len-16: send time, Unix nanoseconds (8 bytes)
//	offset len-8:  sequence counter of the publisher's video packets (8 bytes)
package probe

import (
	"encoding/binary"
	"time"
)

// Size is the trailer's length in bytes.
const Size = 20

var magic = [4]byte{'S', 'R', 'P', 'B'}

// Put writes the trailer into the last Size bytes of payload, which must be at least Size long.
func Put(payload []byte, sent time.Time, counter uint64) {
	t := payload[len(payload)-Size:]
	copy(t, magic[:])
	binary.BigEndian.PutUint64(t[4:], uint64(sent.UnixNano()))
	binary.BigEndian.PutUint64(t[12:], counter)
}

// Parse reads the trailer of payload. ok is false when the payload carries none (for example a
// browser's VP8 frame).
func Parse(payload []byte) (sent time.Time, counter uint64, ok bool) {
	if len(payload) < Size {
		return time.Time{}, 0, false
	}
	t := payload[len(payload)-Size:]
	if [4]byte(t[:4]) != magic {
		return time.Time{}, 0, false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(t[4:]))), binary.BigEndian.Uint64(t[12:]), true
}
