package cluster

import (
	"encoding/base64"
	"errors"
	"strings"
	"testing"
	"time"
)

var (
	tokenSecret = []byte("token secret, 32 bytes long.....")
	tokenNow    = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
)

// reencode returns token s with its payload replaced by body, keeping the
// signature.
func reencode(t *testing.T, s, body string) string {
	t.Helper()
	_, _, sig, err := ParseToken(s)
	if err != nil {
		t.Fatal(err)
	}
	return tokenPrefix + base64.RawURLEncoding.EncodeToString([]byte(body)) + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestNewSecret(t *testing.T) {
	c1, s1 := NewSecret()
	c2, s2 := NewSecret()
	if len(s1) != 32 || len(c1) != 16 || c1 == c2 || string(s1) == string(s2) {
		t.Errorf("NewSecret = %q %x, %q %x; want distinct 16-hex-digit IDs and 32-byte secrets", c1, s1, c2, s2)
	}
	// A fresh secret is one CmdInit accepts.
	if err := (&Command{Type: CmdInit, Cluster: c1, Secret: s1}).validate(); err != nil {
		t.Errorf("CmdInit with NewSecret: %v", err)
	}
}

func TestVerifyToken(t *testing.T) {
	tok := SignToken("c1", tokenSecret, tokenNow, time.Hour)
	tests := []struct {
		name    string
		token   string
		cluster string
		secret  []byte
		now     time.Time
		want    error
	}{
		{"ok", tok, "c1", tokenSecret, tokenNow, nil},
		{"ok before expiry", tok, "c1", tokenSecret, tokenNow.Add(time.Hour - time.Nanosecond), nil},
		{"ok with spaces", " \n" + tok + "\n", "c1", tokenSecret, tokenNow, nil},
		{"ok before it was signed", tok, "c1", tokenSecret, tokenNow.Add(-24 * time.Hour), nil},
		{"expired at expiry", tok, "c1", tokenSecret, tokenNow.Add(time.Hour), ErrTokenExpired},
		{"expired later", tok, "c1", tokenSecret, tokenNow.Add(48 * time.Hour), ErrTokenExpired},
		{"expired at signing", SignToken("c1", tokenSecret, tokenNow, 0), "c1", tokenSecret, tokenNow, ErrTokenExpired},
		{"negative ttl", SignToken("c1", tokenSecret, tokenNow, -time.Minute), "c1", tokenSecret, tokenNow, ErrTokenExpired},
		{"another secret", tok, "c1", []byte("another secret, 32 bytes long..."), tokenNow, ErrTokenSignature},
		{"no secret", tok, "c1", nil, tokenNow, ErrTokenSignature},
		{"another cluster", tok, "c2", tokenSecret, tokenNow, ErrTokenCluster},
		{"another cluster, same secret", SignToken("c2", tokenSecret, tokenNow, time.Hour), "c1", tokenSecret, tokenNow, ErrTokenCluster},
		// The signature is checked before anything the payload says.
		{"another secret and cluster, expired", tok, "c2", []byte("x"), tokenNow.Add(48 * time.Hour), ErrTokenSignature},
		{"tampered cluster", reencode(t, tok, `{"c":"c2","e":"2025-06-01T13:00:00Z","n":"00"}`), "c2", tokenSecret, tokenNow, ErrTokenSignature},
		{"tampered expiry", reencode(t, tok, `{"c":"c1","e":"2035-06-01T13:00:00Z","n":"00"}`), "c1", tokenSecret, tokenNow.Add(48 * time.Hour), ErrTokenSignature},
		{"tampered signature", tok[:len(tok)-6] + "AAAAAA", "c1", tokenSecret, tokenNow, ErrTokenSignature},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := VerifyToken(tt.token, tt.cluster, tt.secret, tt.now)
			if !errors.Is(err, tt.want) || (err != nil && tt.want == nil) {
				t.Errorf("VerifyToken = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestSignToken(t *testing.T) {
	a := SignToken("c1", tokenSecret, tokenNow.Add(500*time.Millisecond), time.Hour)
	b := SignToken("c1", tokenSecret, tokenNow.Add(500*time.Millisecond), time.Hour)
	if a == b {
		t.Error("two tokens are equal: no nonce")
	}
	if !strings.HasPrefix(a, tokenPrefix) {
		t.Errorf("token %q lacks the %q prefix", a, tokenPrefix)
	}
	tok, payload, sig, err := ParseToken(a)
	if err != nil {
		t.Fatalf("ParseToken: %v", err)
	}
	want := tokenNow.Add(time.Hour) // truncated to the second
	if tok.Cluster != "c1" || !tok.Expires.Equal(want) || len(tok.Nonce) != 16 {
		t.Errorf("ParseToken = %+v, want cluster c1, expiry %s and a nonce", tok, want)
	}
	if !strings.Contains(a, payload) || len(sig) != 32 {
		t.Errorf("payload %q, signature of %d bytes", payload, len(sig))
	}
}

func TestParseTokenMalformed(t *testing.T) {
	tok := SignToken("c1", tokenSecret, tokenNow, time.Hour)
	payload, sig, _ := strings.Cut(strings.TrimPrefix(tok, tokenPrefix), ".")
	b64 := base64.RawURLEncoding.EncodeToString
	tests := []struct {
		name, token string
	}{
		{"empty", ""},
		{"spaces", "   "},
		{"prefix only", tokenPrefix},
		{"no prefix", payload + "." + sig},
		{"another version", "strata2." + payload + "." + sig},
		{"upper case prefix", "STRATA1." + payload + "." + sig},
		{"no signature", tokenPrefix + payload},
		{"empty signature", tokenPrefix + payload + "."},
		{"short signature", tokenPrefix + payload + "." + sig[:len(sig)-4]},
		{"long signature", tokenPrefix + payload + "." + sig + "AAAA"},
		{"signature not base64", tokenPrefix + payload + "." + strings.Repeat("!", len(sig))},
		{"padded signature", tokenPrefix + payload + "." + sig + "="},
		{"extra part", tokenPrefix + payload + "." + sig + ".x"},
		{"payload not base64", tokenPrefix + "**" + payload + "." + sig},
		{"payload std base64", tokenPrefix + base64.StdEncoding.EncodeToString([]byte(`{"c":"c1"}`)) + "." + sig},
		{"empty payload", tokenPrefix + "." + sig},
		{"payload not JSON", tokenPrefix + b64([]byte("c1 until tomorrow")) + "." + sig},
		{"payload JSON array", tokenPrefix + b64([]byte(`["c1"]`)) + "." + sig},
		{"payload bad expiry", tokenPrefix + b64([]byte(`{"c":"c1","e":"tomorrow"}`)) + "." + sig},
		{"payload wrong types", tokenPrefix + b64([]byte(`{"c":1,"e":2}`)) + "." + sig},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, _, err := ParseToken(tt.token); !errors.Is(err, ErrTokenMalformed) {
				t.Errorf("ParseToken(%q) = %v, want ErrTokenMalformed", tt.token, err)
			}
			if err := VerifyToken(tt.token, "c1", tokenSecret, tokenNow); !errors.Is(err, ErrTokenMalformed) {
				t.Errorf("VerifyToken(%q) = %v, want ErrTokenMalformed", tt.token, err)
			}
		})
	}
}

func FuzzParseToken(f *testing.F) {
	f.Add(SignToken("c1", tokenSecret, tokenNow, time.Hour))
	f.Add(SignToken("", tokenSecret, tokenNow, 0))
	f.Add(SignToken("c2", []byte("other"), tokenNow, time.Hour))
	f.Add("")
	f.Add(tokenPrefix)
	f.Add(tokenPrefix + ".")
	f.Add(tokenPrefix + "e30." + strings.Repeat("A", 43))
	f.Fuzz(func(t *testing.T, s string) {
		tok, payload, sig, perr := ParseToken(s)
		if perr != nil {
			if !errors.Is(perr, ErrTokenMalformed) {
				t.Fatalf("ParseToken error %v does not wrap ErrTokenMalformed", perr)
			}
		} else if len(sig) != 32 || !strings.Contains(s, payload) {
			t.Fatalf("ParseToken(%q) = payload %q, %d-byte signature", s, payload, len(sig))
		}
		verr := VerifyToken(s, tok.Cluster, tokenSecret, tokenNow)
		if verr == nil && perr != nil {
			t.Fatalf("VerifyToken(%q) succeeded where ParseToken fails: %v", s, perr)
		}
		if perr != nil && !errors.Is(verr, ErrTokenMalformed) {
			t.Fatalf("VerifyToken(%q) = %v, want ErrTokenMalformed as ParseToken", s, verr)
		}
	})
}
