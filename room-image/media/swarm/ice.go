package swarm

import (
	"encoding/json"
	"errors"
	"fmt"

	"github.com/pion/stun/v4"
	"github.com/pion/webrtc/v4"

	"streamroom.dev/media/internal/control"
)

// maxICEServers bounds iceServers and each server's urls.
const maxICEServers = 10

// iceServer is a browser's RTCIceServer: urls is a string or an array of strings.
type iceServer struct {
	URLs       urlList `json:"urls"`
	Username   string  `json:"username"`
	Credential string  `json:"credential"`
}

type urlList []string

func (l *urlList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = urlList{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return errors.New("urls is neither a string nor an array of strings")
	}
	*l = many
	return nil
}

// configuration makes a peer connection's configuration from publish's or view's iceServers
// and relayOnly, refusing what a browser's RTCPeerConnection would refuse (a URL that is not
// stun:, stuns:, turn: or turns:, a TURN server without username and credential), and a
// relayOnly without any TURN server (such a peer could have no candidate at all).
func (prm params) configuration() (webrtc.Configuration, error) {
	var cfg webrtc.Configuration
	if len(prm.ICEServers) > maxICEServers {
		return cfg, control.Errorf(control.CodeBadRequest, "iceServers: more than %d servers", maxICEServers)
	}
	hasTURN := false
	for i, srv := range prm.ICEServers {
		if len(srv.URLs) == 0 || len(srv.URLs) > maxICEServers {
			return cfg, control.Errorf(control.CodeBadRequest, "iceServers[%d].urls: want 1 to %d URLs", i, maxICEServers)
		}
		turn := false
		for _, u := range srv.URLs {
			uri, err := stun.ParseURI(u)
			if err != nil {
				return cfg, control.Errorf(control.CodeBadRequest, "iceServers[%d].urls: %q: %v", i, u, err)
			}
			if uri.Scheme == stun.SchemeTypeTURN || uri.Scheme == stun.SchemeTypeTURNS {
				turn = true
			}
		}
		server := webrtc.ICEServer{URLs: srv.URLs, Username: srv.Username}
		if srv.Credential != "" {
			server.Credential = srv.Credential
		}
		if turn {
			if srv.Username == "" || srv.Credential == "" {
				return cfg, control.Errorf(control.CodeBadRequest, "iceServers[%d]: a TURN server needs username and credential", i)
			}
			hasTURN = true
		}
		cfg.ICEServers = append(cfg.ICEServers, server)
	}
	if prm.RelayOnly {
		if !hasTURN {
			return cfg, control.Errorf(control.CodeBadRequest, "relayOnly needs a turn: or turns: server in iceServers")
		}
		cfg.ICETransportPolicy = webrtc.ICETransportPolicyRelay
	}
	return cfg, nil
}

// describeICE is the configuration's summary for logs (no credentials).
func describeICE(cfg webrtc.Configuration) string {
	var urls []string
	for _, s := range cfg.ICEServers {
		urls = append(urls, s.URLs...)
	}
	return fmt.Sprintf("policy=%s servers=%v", cfg.ICETransportPolicy, urls)
}
