// Package vp8 reads and writes the parts of VP8 RTP payloads (RFC 7741) that a forwarder needs:
// the payload descriptor and the key frame flag.
package vp8

// DescriptorSize is the size of the descriptor that Descriptor writes: X, I and M set, with a
// 15-bit picture ID, like browsers send.
const DescriptorSize = 4

// Descriptor writes a payload descriptor into b (at least DescriptorSize long): start is the S
// bit (first packet of a frame, partition 0).
func Descriptor(b []byte, start bool, pictureID uint16) {
	b[0] = 0x80 // X
	if start {
		b[0] |= 0x10 // S, PID 0
	}
	b[1] = 0x80 // I
	b[2] = 0x80 | byte(pictureID>>8)&0x7f
	b[3] = byte(pictureID)
}

// payloadStart returns the offset of the VP8 payload after the descriptor, and whether the
// packet starts partition 0 of a frame.
func payloadStart(p []byte) (offset int, frameStart bool, ok bool) {
	if len(p) < 1 {
		return 0, false, false
	}
	x := p[0]&0x80 != 0
	s := p[0]&0x10 != 0
	pid := p[0] & 0x07
	offset = 1
	if x {
		if len(p) < 2 {
			return 0, false, false
		}
		ext := p[1]
		offset = 2
		if ext&0x80 != 0 { // I: picture ID, 7 or 15 bits
			if len(p) <= offset {
				return 0, false, false
			}
			if p[offset]&0x80 != 0 {
				offset += 2
			} else {
				offset++
			}
		}
		if ext&0x40 != 0 { // L: TL0PICIDX
			offset++
		}
		if ext&0x30 != 0 { // T or K: TID/KEYIDX byte
			offset++
		}
	}
	if offset >= len(p) {
		return 0, false, false
	}
	return offset, s && pid == 0, true
}

// IsKeyframeStart reports whether an RTP payload is the first packet of a VP8 key frame.
func IsKeyframeStart(payload []byte) bool {
	offset, start, ok := payloadStart(payload)
	if !ok || !start {
		return false
	}
	// Frame tag (RFC 6386 9.1): bit 0 of the first byte is 0 for a key frame.
	return payload[offset]&0x01 == 0
}

// FrameHeader writes the start of a VP8 frame into b: the 3-byte frame tag, and for a key frame
// the start code and a 640x360 size (10 bytes in all). It returns the number of bytes written;
// b must be at least 10 long.
func FrameHeader(b []byte, keyframe bool, firstPartitionSize uint32) int {
	tag := firstPartitionSize<<5 | 1<<4 // show_frame
	if !keyframe {
		tag |= 1
	}
	b[0], b[1], b[2] = byte(tag), byte(tag>>8), byte(tag>>16)
	if !keyframe {
		return 3
	}
	b[3], b[4], b[5] = 0x9d, 0x01, 0x2a
	b[6], b[7] = 640&0xff, 640>>8
	b[8], b[9] = 360&0xff, 360>>8
	return 10
}
