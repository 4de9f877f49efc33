package turngw

import (
	"crypto/hmac"
	"crypto/sha1" // the TURN REST API scheme is HMAC-SHA1, as coturn's use-auth-secret
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Credentials follow the TURN REST API scheme (coturn's use-auth-secret), with one key per room
// instead of one shared secret, so that a room's pods never hold the master secret:
//
//	roomKey  = base64url, no padding, of HMAC-SHA256(master secret, "<namespace>/<name>")
//	username = "<expiry unix seconds>:<namespace>/<name>:<user id>"
//	password = standard base64 of HMAC-SHA1(key: roomKey as its ASCII text, message: username)
//
// The gateway derives roomKey from the room in the username, so a room that knows only its own
// key can mint credentials for itself and for no other room.

// MinSecretBytes is the shortest master secret the gateway accepts.
const MinSecretBytes = 32

// maxUserIDBytes bounds the user ID part of a username.
const maxUserIDBytes = 64

// ErrBadUsername is wrapped by ParseUsername's errors.
var ErrBadUsername = errors.New("malformed TURN username")

// Credential is a parsed username.
type Credential struct {
	Expiry    time.Time // the credential is refused from this instant on
	Namespace string    // the room's namespace (a DNS label)
	Name      string    // the room's name (a DNS label)
	UserID    string    // [A-Za-z0-9_-]{1,64}
}

// Room returns "<namespace>/<name>", the string roomKey is derived from.
func (c Credential) Room() string { return c.Namespace + "/" + c.Name }

// Username formats the credential as a TURN username.
func (c Credential) Username() string {
	return strconv.FormatInt(c.Expiry.Unix(), 10) + ":" + c.Room() + ":" + c.UserID
}

// RoomKey derives a room's key from the master secret: base64url without padding of
// HMAC-SHA256(master, room), room being "<namespace>/<name>".
func RoomKey(master []byte, room string) string {
	mac := hmac.New(sha256.New, master)
	mac.Write([]byte(room))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// Password is the TURN password for username under a room's key: standard base64 (with
// padding) of HMAC-SHA1 keyed with roomKey's ASCII text.
func Password(roomKey, username string) string {
	mac := hmac.New(sha1.New, []byte(roomKey))
	mac.Write([]byte(username))
	return base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

// Mint returns a username and password for userID in room ("<namespace>/<name>") that expire at
// expiry, as a room server holding roomKey would make them. It checks the parts it is given.
func Mint(roomKey, room, userID string, expiry time.Time) (username, password string, err error) {
	ns, name, ok := strings.Cut(room, "/")
	c := Credential{Expiry: expiry, Namespace: ns, Name: name, UserID: userID}
	if !ok {
		return "", "", fmt.Errorf("%w: room %q is not <namespace>/<name>", ErrBadUsername, room)
	}
	username = c.Username()
	if _, err := ParseUsername(username); err != nil {
		return "", "", err
	}
	return username, Password(roomKey, username), nil
}

// ParseUsername parses and checks "<expiry unix seconds>:<namespace>/<name>:<user id>". It does
// not look at the clock.
func ParseUsername(username string) (Credential, error) {
	expiry, rest, ok := strings.Cut(username, ":")
	if !ok {
		return Credential{}, fmt.Errorf("%w: no ':' after the expiry", ErrBadUsername)
	}
	room, userID, ok := strings.Cut(rest, ":")
	if !ok {
		return Credential{}, fmt.Errorf("%w: no ':' after the room", ErrBadUsername)
	}
	seconds, err := parseExpiry(expiry)
	if err != nil {
		return Credential{}, err
	}
	ns, name, ok := strings.Cut(room, "/")
	if !ok || !isDNSLabel(ns) || !isDNSLabel(name) {
		return Credential{}, fmt.Errorf("%w: room %q is not <dns label>/<dns label>", ErrBadUsername, room)
	}
	if !isUserID(userID) {
		return Credential{}, fmt.Errorf("%w: user ID %q is not [A-Za-z0-9_-]{1,%d}", ErrBadUsername, userID, maxUserIDBytes)
	}
	return Credential{Expiry: time.Unix(seconds, 0), Namespace: ns, Name: name, UserID: userID}, nil
}

// parseExpiry takes 1 to 12 decimal digits (no sign, no spaces).
func parseExpiry(s string) (int64, error) {
	if len(s) == 0 || len(s) > 12 {
		return 0, fmt.Errorf("%w: expiry %q is not 1 to 12 digits", ErrBadUsername, s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, fmt.Errorf("%w: expiry %q is not decimal digits", ErrBadUsername, s)
		}
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: expiry %q: %v", ErrBadUsername, s, err)
	}
	return n, nil
}

// isDNSLabel reports whether s is an RFC 1123 label as Kubernetes names namespaces: 1 to 63
// characters of [a-z0-9-], starting and ending with a letter or digit.
func isDNSLabel(s string) bool {
	if len(s) == 0 || len(s) > 63 || s[0] == '-' || s[len(s)-1] == '-' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') && c != '-' {
			return false
		}
	}
	return true
}

func isUserID(s string) bool {
	if len(s) == 0 || len(s) > maxUserIDBytes {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < 'A' || c > 'Z') && (c < '0' || c > '9') && c != '-' && c != '_' {
			return false
		}
	}
	return true
}
