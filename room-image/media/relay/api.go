package relay

import (
	"fmt"
	"net"
	"sync/atomic"

	"github.com/pion/ice/v4"
	"github.com/pion/interceptor"
	"github.com/pion/interceptor/pkg/nack"
	"github.com/pion/interceptor/pkg/report"
	"github.com/pion/rtcp"
	"github.com/pion/sdp/v3"
	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/pionlog"
)

// Payload types the relay offers to viewers (a source's offer keeps its own).
const (
	payloadTypeVP8  = 96
	payloadTypeOpus = 111
)

var (
	videoCodec = webrtc.RTPCodecCapability{
		MimeType:  webrtc.MimeTypeVP8,
		ClockRate: 90000,
		RTCPFeedback: []webrtc.RTCPFeedback{
			{Type: webrtc.TypeRTCPFBNACK},
			{Type: webrtc.TypeRTCPFBNACK, Parameter: "pli"},
			{Type: webrtc.TypeRTCPFBCCM, Parameter: "fir"},
		},
	}
	audioCodec = webrtc.RTPCodecCapability{
		MimeType:    webrtc.MimeTypeOpus,
		ClockRate:   48000,
		Channels:    2,
		SDPFmtpLine: "minptime=10;useinbandfec=1",
	}
)

// newMediaEngine registers VP8 and Opus only, so every source fits every viewer.
func newMediaEngine() (*webrtc.MediaEngine, error) {
	m := &webrtc.MediaEngine{}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: videoCodec, PayloadType: payloadTypeVP8}, webrtc.RTPCodecTypeVideo); err != nil {
		return nil, fmt.Errorf("register VP8: %w", err)
	}
	if err := m.RegisterCodec(webrtc.RTPCodecParameters{RTPCodecCapability: audioCodec, PayloadType: payloadTypeOpus}, webrtc.RTPCodecTypeAudio); err != nil {
		return nil, fmt.Errorf("register Opus: %w", err)
	}
	return m, nil
}

// buildAPIs makes the two WebRTC stacks, both on the shared ports: the source's, with pion's
// NACK generator, receiver reports and transport-wide congestion control feedback (so a browser
// ramps its bitrate up quickly), and the viewers', with no interceptor at all: the relay answers
// viewers' NACKs from its shared packet cache instead of pion's per-connection buffers.
func (r *Relay) buildAPIs() error {
	se, err := r.settingEngine()
	if err != nil {
		return err
	}

	sourceMedia, err := newMediaEngine()
	if err != nil {
		return err
	}
	for _, kind := range []webrtc.RTPCodecType{webrtc.RTPCodecTypeVideo, webrtc.RTPCodecTypeAudio} {
		if err := sourceMedia.RegisterHeaderExtension(webrtc.RTPHeaderExtensionCapability{URI: sdp.SDESMidURI}, kind); err != nil {
			return fmt.Errorf("register mid extension: %w", err)
		}
	}
	sourceInterceptors := &interceptor.Registry{}
	// First in the chain, so that it sees the NACKs that the generator below writes.
	sourceInterceptors.Add(&nackCounterFactory{counter: &r.counters.nacksOut})
	generator, err := nack.NewGeneratorInterceptor(nack.GeneratorLog(pionlog.Factory{Logger: r.log}.NewLogger("nack")))
	if err != nil {
		return fmt.Errorf("nack generator: %w", err)
	}
	sourceInterceptors.Add(generator)
	receiverReports, err := report.NewReceiverInterceptor()
	if err != nil {
		return fmt.Errorf("receiver reports: %w", err)
	}
	sourceInterceptors.Add(receiverReports)
	if err := webrtc.ConfigureTWCCSender(sourceMedia, sourceInterceptors); err != nil {
		return fmt.Errorf("transport-cc: %w", err)
	}
	r.sourceAPI = webrtc.NewAPI(
		webrtc.WithSettingEngine(se),
		webrtc.WithMediaEngine(sourceMedia),
		webrtc.WithInterceptorRegistry(sourceInterceptors),
	)

	viewerMedia, err := newMediaEngine()
	if err != nil {
		return err
	}
	r.viewerAPI = webrtc.NewAPI(
		webrtc.WithSettingEngine(se),
		webrtc.WithMediaEngine(viewerMedia),
		webrtc.WithInterceptorRegistry(&interceptor.Registry{}),
	)
	return nil
}

func (r *Relay) settingEngine() (webrtc.SettingEngine, error) {
	se := webrtc.SettingEngine{LoggerFactory: pionlog.Factory{Logger: r.log}}
	se.SetICEUDPMux(r.udpMux)
	ip := net.ParseIP(r.cfg.ListenAddress)
	udp, tcp := webrtc.NetworkTypeUDP4, webrtc.NetworkTypeTCP4
	if ip.To4() == nil {
		udp, tcp = webrtc.NetworkTypeUDP6, webrtc.NetworkTypeTCP6
	}
	networks := []webrtc.NetworkType{udp}
	if r.tcpMux != nil {
		se.SetICETCPMux(r.tcpMux)
		networks = append(networks, tcp)
	}
	se.SetNetworkTypes(networks)
	if !ip.IsUnspecified() {
		// TCP candidates are gathered per interface address: keep only the one listened on.
		se.SetIPFilter(func(candidate net.IP) bool { return candidate.Equal(ip) })
	}
	se.SetIncludeLoopbackCandidate(r.cfg.IncludeLoopback)
	se.SetICEMulticastDNSMode(ice.MulticastDNSModeDisabled)
	if len(r.cfg.AnnounceAddresses) > 0 {
		for _, a := range r.cfg.AnnounceAddresses {
			if net.ParseIP(a) == nil {
				return se, fmt.Errorf("announce address %q is not an IP address", a)
			}
		}
		rule := webrtc.ICEAddressRewriteRule{
			External:        r.cfg.AnnounceAddresses,
			AsCandidateType: webrtc.ICECandidateTypeHost,
			Mode:            webrtc.ICEAddressRewriteReplace,
		}
		if err := se.SetICEAddressRewriteRules(rule); err != nil {
			return se, fmt.Errorf("announce addresses: %w", err)
		}
	}
	return se, nil
}

// nackCounterFactory counts the packets that the source connection's NACKs ask for.
type nackCounterFactory struct{ counter *atomic.Uint64 }

func (f *nackCounterFactory) NewInterceptor(string) (interceptor.Interceptor, error) {
	return &nackCounter{counter: f.counter}, nil
}

type nackCounter struct {
	interceptor.NoOp
	counter *atomic.Uint64
}

func (n *nackCounter) BindRTCPWriter(writer interceptor.RTCPWriter) interceptor.RTCPWriter {
	return interceptor.RTCPWriterFunc(func(pkts []rtcp.Packet, attrs interceptor.Attributes) (int, error) {
		n.counter.Add(countNacked(pkts))
		return writer.Write(pkts, attrs)
	})
}

// countNacked returns how many packets the NACKs among pkts ask for.
func countNacked(pkts []rtcp.Packet) uint64 {
	var n uint64
	for _, p := range pkts {
		if nack, ok := p.(*rtcp.TransportLayerNack); ok {
			for _, pair := range nack.Nacks {
				n += uint64(len(pair.PacketList()))
			}
		}
	}
	return n
}
