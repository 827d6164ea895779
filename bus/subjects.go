// Package bus is the Plex bus contract: the NATS subjects, header names and
// payload types that edges, the auth service, the HTTP API and business
// services share, with small typed helpers to publish, request and
// subscribe. It is the only package that spells subjects and header names,
// and it knows nothing of TCP clients.
package bus

import (
	"errors"
	"fmt"
)

// Subjects and queue groups of the contract.
const (
	// SubjectAuth is requested by edges and answered by the auth service.
	SubjectAuth = "plex.auth"
	// QueueAuth is the auth service's queue group.
	QueueAuth = "plex-auth"
	// SubjectPresence carries a Presence event per connect and disconnect.
	SubjectPresence = "plex.presence"
	// SubjectEdgeStats carries each edge's EdgeStats every few seconds.
	SubjectEdgeStats = "plex.edge.stats"
	// UserPrefix starts every user subject: plex.user.<uid>.
	UserPrefix = "plex.user."
	// UserWildcard matches every user subject (for monitoring, not for edges).
	UserWildcard = UserPrefix + "*"
)

// Header names on user subjects.
const (
	HeaderURI  = "Plex-Uri"  // uri of the pushed frame; default /push
	HeaderSeq  = "Plex-Seq"  // seq of the pushed frame; default assigned by the edge
	HeaderOp   = "Plex-Op"   // control operation instead of delivery
	HeaderConn = "Plex-Conn" // with kick: the connection to spare
)

// Values of HeaderOp.
const (
	OpPresence = "presence"
	OpKick     = "kick"
)

// MaxUIDLen is the longest uid accepted.
const MaxUIDLen = 128

// ErrInvalidUID is returned for a uid outside the contract's alphabet or length.
var ErrInvalidUID = errors.New("bus: invalid uid")

// ValidUID checks a uid: 1–128 characters of [A-Za-z0-9_@:=+-]. These never
// form a NATS wildcard or token separator, so a uid is always one token.
func ValidUID(uid string) error {
	if len(uid) == 0 || len(uid) > MaxUIDLen {
		return fmt.Errorf("%w: length %d not in 1..%d", ErrInvalidUID, len(uid), MaxUIDLen)
	}
	for i := 0; i < len(uid); i++ {
		if !uidChar[uid[i]] {
			return fmt.Errorf("%w: character %q at %d (allowed: A-Z a-z 0-9 _ @ : = + -)", ErrInvalidUID, uid[i], i)
		}
	}
	return nil
}

var uidChar = func() (t [256]bool) {
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for _, c := range "_@:=+-" {
		t[c] = true
	}
	return t
}()

// UserSubject returns plex.user.<uid> after validating uid.
func UserSubject(uid string) (string, error) {
	if err := ValidUID(uid); err != nil {
		return "", err
	}
	return UserPrefix + uid, nil
}

// UIDFromSubject extracts the uid of a user subject without allocating.
func UIDFromSubject(subject string) (string, bool) {
	if len(subject) <= len(UserPrefix) || subject[:len(UserPrefix)] != UserPrefix {
		return "", false
	}
	uid := subject[len(UserPrefix):]
	if ValidUID(uid) != nil {
		return "", false
	}
	return uid, true
}
