package cluster

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// tokenPrefix starts every join token: the format's name and version.
const tokenPrefix = "strata1."

// Why a join token is refused.
var (
	// ErrTokenMalformed: the token is not one this build can read.
	ErrTokenMalformed = errors.New("join token malformed")
	// ErrTokenSignature: the token was not signed by this cluster.
	ErrTokenSignature = errors.New("join token not signed by this cluster")
	// ErrTokenCluster: the token is for another cluster.
	ErrTokenCluster = errors.New("join token is for another cluster")
	// ErrTokenExpired: the token's time is up.
	ErrTokenExpired = errors.New("join token expired")
)

// Token is what a join token says: which cluster it admits to, until when.
type Token struct {
	Cluster string    `json:"c"`
	Expires time.Time `json:"e"`
	Nonce   string    `json:"n"`
}

// NewSecret returns a fresh random secret to sign tokens with, and a
// random cluster ID.
func NewSecret() (cluster string, secret []byte) {
	secret = make([]byte, 32)
	rand.Read(secret)
	id := make([]byte, 8)
	rand.Read(id)
	return hex.EncodeToString(id), secret
}

// SignToken returns a join token for cluster, valid until now+ttl, signed
// with secret (HMAC-SHA256).
func SignToken(cluster string, secret []byte, now time.Time, ttl time.Duration) string {
	nonce := make([]byte, 8)
	rand.Read(nonce)
	body, _ := json.Marshal(Token{Cluster: cluster, Expires: now.Add(ttl).UTC().Truncate(time.Second), Nonce: hex.EncodeToString(nonce)})
	payload := base64.RawURLEncoding.EncodeToString(body)
	return tokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(mac(secret, payload))
}

func mac(secret []byte, payload string) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(payload))
	return h.Sum(nil)
}

// ParseToken reads a token without checking its signature.
func ParseToken(s string) (Token, string, []byte, error) {
	rest, ok := strings.CutPrefix(strings.TrimSpace(s), tokenPrefix)
	if !ok {
		return Token{}, "", nil, fmt.Errorf("%w: no %q prefix", ErrTokenMalformed, tokenPrefix)
	}
	payload, sig64, ok := strings.Cut(rest, ".")
	if !ok {
		return Token{}, "", nil, fmt.Errorf("%w: no signature", ErrTokenMalformed)
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	if err != nil {
		return Token{}, "", nil, fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	sig, err := base64.RawURLEncoding.DecodeString(sig64)
	if err != nil || len(sig) != sha256.Size {
		return Token{}, "", nil, fmt.Errorf("%w: bad signature encoding", ErrTokenMalformed)
	}
	var t Token
	if err := json.Unmarshal(body, &t); err != nil {
		return Token{}, "", nil, fmt.Errorf("%w: %w", ErrTokenMalformed, err)
	}
	return t, payload, sig, nil
}

// VerifyToken checks that s was signed with secret for cluster and has
// not expired at now.
func VerifyToken(s, cluster string, secret []byte, now time.Time) error {
	t, payload, sig, err := ParseToken(s)
	if err != nil {
		return err
	}
	if !hmac.Equal(sig, mac(secret, payload)) {
		return ErrTokenSignature
	}
	if t.Cluster != cluster {
		return fmt.Errorf("%w (%s, this is %s)", ErrTokenCluster, t.Cluster, cluster)
	}
	if !now.Before(t.Expires) {
		return fmt.Errorf("%w at %s", ErrTokenExpired, t.Expires.Format(time.RFC3339))
	}
	return nil
}

// ErrTokenRevoked: the token is well signed and unexpired, but the
// cluster has no record of it: it was revoked, or never issued.
var ErrTokenRevoked = errors.New("join token revoked or never issued")

// CheckToken checks a joiner's token against the map at now: signed with
// the cluster's secret, for this cluster, unexpired, and on record in
// Tokens (not revoked). It returns the token's record.
func (m *Map) CheckToken(s string, now time.Time) (TokenInfo, error) {
	if err := VerifyToken(s, m.Cluster, m.Secret, now); err != nil {
		return TokenInfo{}, err
	}
	id := TokenID(s)
	r, ok := m.Tokens[id]
	if !ok {
		return TokenInfo{}, fmt.Errorf("%w (token %s)", ErrTokenRevoked, id)
	}
	return r, nil
}

// TokenID is the ID a token is recorded under: a hash of the whole token.
// Every member holds the map, the secret included; were a record to carry
// what a token is signed over (its nonce), any member could sign a copy of
// a recorded token. From the hash it cannot.
func TokenID(s string) string {
	h := sha256.Sum256([]byte(strings.TrimSpace(s)))
	return hex.EncodeToString(h[:16])
}
