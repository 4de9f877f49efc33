package relay

import (
	"fmt"
	"strings"

	"github.com/pion/sdp/v3"

	"streamroom.dev/media/internal/control"
)

// checkPublishOffer refuses, before any WebRTC work, an offer that is not SDP, that has more than
// one audio, video or data channel section, other sections, or no VP8 video or Opus audio to take.
// (Browsers' peer libraries such as simple-peer always open a data channel; the relay accepts it
// and ignores what arrives on it.)
func checkPublishOffer(offer string) error {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(offer); err != nil {
		return control.Errorf(control.CodeBadSDP, "unparsable offer: %v", err)
	}
	var audio, video, application int
	for _, md := range sd.MediaDescriptions {
		switch md.MediaName.Media {
		case "audio":
			audio++
		case "video":
			video++
		case "application":
			application++
		}
	}
	if audio > 1 || video > 1 || application > 1 {
		return control.Errorf(control.CodeTooManyTracks, "the offer has %d audio, %d video and %d data channel sections, at most one of each is taken", audio, video, application)
	}
	for _, md := range sd.MediaDescriptions {
		var want string
		switch md.MediaName.Media {
		case "audio":
			want = "opus/"
		case "video":
			want = "vp8/"
		case "application":
			continue
		default:
			return control.Errorf(control.CodeBadSDP, "unsupported %q section: only audio and video are taken", md.MediaName.Media)
		}
		if !offersCodec(md, want) {
			return control.Errorf(control.CodeBadSDP, "the %s section offers no %s", md.MediaName.Media, strings.TrimSuffix(strings.ToUpper(want), "/"))
		}
	}
	if audio+video == 0 {
		return control.Errorf(control.CodeBadSDP, "the offer has no audio or video section")
	}
	return nil
}

func offersCodec(md *sdp.MediaDescription, encodingPrefix string) bool {
	for _, a := range md.Attributes {
		if a.Key != "rtpmap" {
			continue
		}
		// "<payload type> <encoding name>/<clock rate>[/<channels>]"
		_, encoding, ok := strings.Cut(a.Value, " ")
		if ok && strings.HasPrefix(strings.ToLower(encoding), encodingPrefix) {
			return true
		}
	}
	return false
}

// videoTIAS is the share of the publish cap that the answer grants to video (b=TIAS), leaving
// room for audio and RTP headers under the relay's own policing.
func videoTIAS(maxBitrate int) uint64 { return uint64(maxBitrate) * 9 / 10 }

// withVideoBandwidth adds b=TIAS to the video sections of a description.
func withVideoBandwidth(desc string, bitsPerSecond uint64) (string, error) {
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(desc); err != nil {
		return "", fmt.Errorf("parse own answer: %w", err)
	}
	for _, md := range sd.MediaDescriptions {
		if md.MediaName.Media == "video" {
			md.Bandwidth = append(md.Bandwidth, sdp.Bandwidth{Type: "TIAS", Bandwidth: bitsPerSecond})
		}
	}
	out, err := sd.Marshal()
	if err != nil {
		return "", fmt.Errorf("write answer: %w", err)
	}
	return string(out), nil
}
