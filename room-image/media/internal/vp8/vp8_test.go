package vp8

import "testing"

func TestKeyframeStart(t *testing.T) {
	b := make([]byte, 32)
	Descriptor(b, true, 0x1234)
	FrameHeader(b[DescriptorSize:], true, 1000)
	if !IsKeyframeStart(b) {
		t.Error("key frame start not recognised")
	}
	FrameHeader(b[DescriptorSize:], false, 1000)
	if IsKeyframeStart(b) {
		t.Error("delta frame taken for a key frame")
	}
	Descriptor(b, false, 0x1234)
	FrameHeader(b[DescriptorSize:], true, 1000)
	if IsKeyframeStart(b) {
		t.Error("a continuation packet taken for a key frame start")
	}
	// Browser-style descriptors: no extension; 7-bit picture ID with TL0PICIDX and TID.
	if !IsKeyframeStart([]byte{0x10, 0x00}) {
		t.Error("minimal descriptor")
	}
	if !IsKeyframeStart([]byte{0x90, 0xe0, 0x05, 0x01, 0x20, 0x00}) {
		t.Error("descriptor with I, L, T")
	}
	for _, p := range [][]byte{nil, {0x90}, {0x90, 0x80}, {0x90, 0x80, 0x81}} {
		if IsKeyframeStart(p) {
			t.Errorf("truncated %x taken for a key frame", p)
		}
	}
}
