package turngw

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// The README's test vectors, for the TypeScript side's minting (computed independently with
// Python's hmac and OpenSSL).
var credentialVectors = []struct {
	master, room, username, roomKey, password string
}{
	{
		master:   "streamroom-test-master-secret-0123456789",
		room:     "default/demo",
		username: "1767225600:default/demo:viewer-1",
		roomKey:  "7g5kKlG83albhUIaEdRQ7k-9nUL3K7a1G8s4mCDxqgw",
		password: "L2/QsIpf5nEM59beKLVIUfYuCXI=",
	},
	{
		master:   "streamroom-test-master-secret-0123456789",
		room:     "team-a/town-hall",
		username: "1893456000:team-a/town-hall:u_42",
		roomKey:  "SlSSWxwjmS_2zs8cGGtd_aewzQ6AIELlG0LXt_-6EvI",
		password: "Itm782G3c6ddZ6stK/evaXekvd0=",
	},
	{
		master:   "0123456789abcdef0123456789abcdef",
		room:     "ns1/room-2",
		username: "4102444800:ns1/room-2:Broadcaster_7",
		roomKey:  "mJtJJ_HarXYzFXALGgnTtgJ_5XXwhKORuaZo8-3se8k",
		password: "BpDdsF1vFxJCJw9+HypOPNZU4j8=",
	},
}

func TestCredentialVectors(t *testing.T) {
	for _, v := range credentialVectors {
		key := RoomKey([]byte(v.master), v.room)
		if key != v.roomKey {
			t.Errorf("RoomKey(%q, %q) = %q, want %q", v.master, v.room, key, v.roomKey)
		}
		if got := Password(key, v.username); got != v.password {
			t.Errorf("Password(%q, %q) = %q, want %q", key, v.username, got, v.password)
		}
		cred, err := ParseUsername(v.username)
		if err != nil {
			t.Fatalf("ParseUsername(%q): %v", v.username, err)
		}
		if cred.Room() != v.room || cred.Username() != v.username {
			t.Errorf("ParseUsername(%q) = %+v", v.username, cred)
		}
		username, password, err := Mint(key, v.room, cred.UserID, cred.Expiry)
		if err != nil || username != v.username || password != v.password {
			t.Errorf("Mint = %q, %q, %v; want %q, %q", username, password, err, v.username, v.password)
		}
	}
}

func TestParseUsernameRefuses(t *testing.T) {
	long := strings.Repeat("a", 64)
	for _, u := range []string{
		"",
		"1767225600",
		"1767225600:default/demo",             // no user ID
		"1767225600:default/demo:",            // empty user ID
		"1767225600:default:viewer",           // no name
		"1767225600:/demo:viewer",             // empty namespace
		"1767225600:default/:viewer",          // empty name
		"1767225600:Default/demo:viewer",      // upper case
		"1767225600:-default/demo:viewer",     // starts with '-'
		"1767225600:default/demo-:viewer",     // ends with '-'
		"1767225600:default/de.mo:viewer",     // a dot: not a label
		"1767225600:a/b/c:viewer",             // two slashes
		"1767225600:" + long + "/demo:viewer", // 64 characters
		"1767225600:default/demo:" + long + "x",
		"1767225600:default/demo:view er",
		"1767225600:default/demo:viewer:extra",
		"+1767225600:default/demo:viewer",
		"-1:default/demo:viewer",
		"17672256.0:default/demo:viewer",
		"1234567890123:default/demo:viewer", // 13 digits
		"x:default/demo:viewer",
		":default/demo:viewer",
	} {
		if c, err := ParseUsername(u); err == nil || !errors.Is(err, ErrBadUsername) {
			t.Errorf("ParseUsername(%q) = %+v, %v; want ErrBadUsername", u, c, err)
		}
	}
	ok := "1767225600:" + strings.Repeat("n", 63) + "/r0-1:" + long
	if _, err := ParseUsername(ok); err != nil {
		t.Errorf("ParseUsername(%q): %v", ok, err)
	}
	if _, _, err := Mint("k", "nodash", "u", time.Now()); err == nil {
		t.Error("Mint with a room without '/' succeeded")
	}
}

// A room's key mints nothing that passes for another room.
func TestRoomKeysDiffer(t *testing.T) {
	master := []byte(credentialVectors[0].master)
	a, b := RoomKey(master, "ns/a"), RoomKey(master, "ns/b")
	if a == b {
		t.Fatal("two rooms share a key")
	}
	if RoomKey([]byte("another-master-secret-0123456789abcdef"), "ns/a") == a {
		t.Fatal("two master secrets give the same room key")
	}
	username := "1767225600:ns/b:u"
	if Password(a, username) == Password(b, username) {
		t.Fatal("room a's key minted room b's password")
	}
}

func TestParseConfigLists(t *testing.T) {
	prefixes, err := ParsePrefixes(" 10.0.0.0/8, 127.0.0.1 ,::ffff:192.168.0.0/112")
	if err != nil {
		t.Fatal(err)
	}
	if got := []string{prefixes[0].String(), prefixes[1].String(), prefixes[2].String()}; got[0] != "10.0.0.0/8" || got[1] != "127.0.0.1/32" || got[2] != "192.168.0.0/16" {
		t.Errorf("prefixes %v", got)
	}
	for _, bad := range []string{"", "10.0.0.0/33", "nonsense", ","} {
		if _, err := ParsePrefixes(bad); err == nil {
			t.Errorf("ParsePrefixes(%q) succeeded", bad)
		}
	}
	ports, err := ParsePortRanges("3478, 10000-10100")
	if err != nil || len(ports) != 2 || ports[0] != (PortRange{3478, 3478}) || ports[1] != (PortRange{10000, 10100}) {
		t.Errorf("ParsePortRanges = %v, %v", ports, err)
	}
	for _, bad := range []string{"", "0", "65536", "10-5", "a-b", "1-"} {
		if _, err := ParsePortRanges(bad); err == nil {
			t.Errorf("ParsePortRanges(%q) succeeded", bad)
		}
	}
}
