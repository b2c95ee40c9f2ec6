package cluster

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"reflect"
	"slices"
	"testing"
	"time"
)

// TestFSMAccess runs the commands of join tokens and revocations over a
// populated map.
func TestFSMAccess(t *testing.T) {
	f := scriptFSM(t) // n1, n2 (replica 0) and n3 (replica 1), serving
	idx := uint64(100)
	step := func(c *Command, want error) *Map {
		t.Helper()
		idx++
		if err := applyCmd(t, f, idx, c); !errors.Is(err, want) || (err != nil && want == nil) {
			t.Fatalf("%s: %v, want %v", c.Type, err, want)
		}
		return f.Map()
	}
	tokens := func(m *Map) []string {
		var ids []string
		for id, r := range m.Tokens {
			if r.ID != id {
				t.Errorf("token record %q has ID %q", id, r.ID)
			}
			ids = append(ids, id)
		}
		slices.Sort(ids)
		return ids
	}

	// Tokens are recorded; a token's record goes once it has expired by
	// the time another is issued.
	step(cmdToken("t1", fsmT0, time.Hour), nil)
	m := step(cmdToken("t2", fsmT0.Add(time.Minute), 24*time.Hour), nil)
	if got := tokens(m); !slices.Equal(got, []string{"t1", "t2"}) {
		t.Fatalf("tokens %v, want [t1 t2]", got)
	}
	if r := m.Tokens["t2"]; r.Note != "for t2" || !r.Expires.Equal(fsmT0.Add(time.Minute+24*time.Hour)) {
		t.Errorf("t2's record %+v", r)
	}
	m = step(cmdToken("t3", fsmT0.Add(time.Hour), time.Hour), nil)
	if got := tokens(m); !slices.Equal(got, []string{"t2", "t3"}) {
		t.Fatalf("tokens %v after t1 expired, want [t2 t3]", got)
	}
	m = step(&Command{Type: CmdRevokeToken, TokenID: "t2"}, nil)
	if got := tokens(m); !slices.Equal(got, []string{"t3"}) {
		t.Fatalf("tokens %v after revoking t2, want [t3]", got)
	}
	step(&Command{Type: CmdRevokeToken, TokenID: "t2"}, ErrUnknownToken)

	// Revoking n2 removes it and re-plans: replica 0 loses its second
	// half, and n2 cannot be added back.
	before := f.Map()
	m = step(&Command{Type: CmdRevokeNode, NodeID: "n2", Reason: "stolen", Time: fsmT0, By: "n1"}, nil)
	if m.Nodes["n2"] != nil {
		t.Fatal("revoked n2 still in the map")
	}
	if _, ok := m.AssignmentOf("n2"); ok || m.Epoch == before.Epoch {
		t.Errorf("assignments %v at epoch %d (was %d): want n2's gone in a new plan", fmtAssignments(m.Assignments), m.Epoch, before.Epoch)
	}
	if want := (Revocation{Node: "n2", At: fsmT0, Reason: "stolen", By: "n1"}); !reflect.DeepEqual(m.Revoked["n2"], want) {
		t.Errorf("revocation %+v, want %+v", m.Revoked["n2"], want)
	}
	step(cmdAdd(fsmNode("n2", 600)), ErrRevoked)
	// Revoking a peer that never joined bans it ahead; again changes
	// nothing but its record.
	m = step(&Command{Type: CmdRevokeNode, NodeID: "n9", Time: fsmT0}, nil)
	if len(m.Revoked) != 2 || len(m.Nodes) != 2 {
		t.Errorf("revoked %v, %d nodes; want n2 and n9, 2 nodes", m.Revoked, len(m.Nodes))
	}
	// Lifting a revocation lets the node be added again.
	step(&Command{Type: CmdLiftRevocation, NodeID: "n2"}, nil)
	step(&Command{Type: CmdLiftRevocation, NodeID: "n2"}, ErrNotRevoked)
	m = step(cmdAdd(fsmNode("n2", 600)), nil)
	if m.Nodes["n2"] == nil || len(m.Revoked) != 1 {
		t.Errorf("after the lift: n2 %v, revoked %v", m.Nodes["n2"], m.Revoked)
	}

	// The records survive a snapshot and a restore, and copies are deep.
	g := NewFSM()
	if err := g.Restore(io.NopCloser(bytes.NewReader(snapshotBytes(t, f)))); err != nil {
		t.Fatal(err)
	}
	if got, want := mapJSON(t, g.Map()), mapJSON(t, f.Map()); got != want {
		t.Errorf("restored map:\n got %s\nwant %s", got, want)
	}
	c := f.Map()
	c.Tokens["t3"] = TokenInfo{ID: "changed"}
	delete(c.Revoked, "n9")
	if m := f.Map(); m.Tokens["t3"].ID != "t3" || len(m.Revoked) != 1 {
		t.Error("changing a copy changed the FSM's map")
	}
}

// TestRestoreRefusesAccessRecords: a snapshot whose records disagree with
// their keys is refused.
func TestRestoreRefusesAccessRecords(t *testing.T) {
	for name, body := range map[string]string{
		"token":      `{"cluster":"c1","nodes":{},"tokens":{"t1":{"id":"t2"}}}`,
		"revocation": `{"cluster":"c1","nodes":{},"revoked":{"n1":{"node":"n2"}}}`,
	} {
		t.Run(name, func(t *testing.T) {
			if err := NewFSM().Restore(io.NopCloser(bytes.NewReader(withVersion(body)))); !errors.Is(err, ErrBadCommand) {
				t.Errorf("Restore = %v, want ErrBadCommand", err)
			}
		})
	}
}

// TestCheckToken: a token admits only while it is well signed, for this
// cluster, unexpired and on record.
func TestCheckToken(t *testing.T) {
	m := &Map{Cluster: "c1", Secret: tokenSecret}
	tok := SignToken("c1", tokenSecret, tokenNow, time.Hour)
	tt, _, _, err := ParseToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.CheckToken(tok, tokenNow); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("unrecorded token: %v, want ErrTokenRevoked", err)
	}
	id := TokenID(tok)
	m.Tokens = map[string]TokenInfo{id: {ID: id, Issued: tokenNow, Expires: tt.Expires, Volunteer: true}}
	if r, err := m.CheckToken(" "+tok+"\n", tokenNow); err != nil || r.ID != id || !r.Volunteer {
		t.Errorf("recorded token: %+v, %v; want its record", r, err)
	}
	// A member holds the secret and the record: a token it signs over
	// what the record says (the ID as the nonce, the same expiry) is
	// still not the recorded one.
	body, _ := json.Marshal(Token{Cluster: "c1", Expires: tt.Expires, Nonce: id})
	payload := base64.RawURLEncoding.EncodeToString(body)
	forged := tokenPrefix + payload + "." + base64.RawURLEncoding.EncodeToString(mac(tokenSecret, payload))
	if err := VerifyToken(forged, "c1", tokenSecret, tokenNow); err != nil {
		t.Fatalf("the forged token is not well signed: %v", err)
	}
	if _, err := m.CheckToken(forged, tokenNow); !errors.Is(err, ErrTokenRevoked) {
		t.Errorf("a token signed from the record: %v, want ErrTokenRevoked", err)
	}
	if _, err := m.CheckToken(tok, tokenNow.Add(2*time.Hour)); !errors.Is(err, ErrTokenExpired) {
		t.Errorf("expired token: %v, want ErrTokenExpired", err)
	}
	if _, err := m.CheckToken(SignToken("c1", []byte("another secret of 32 bytes......"), tokenNow, time.Hour), tokenNow); !errors.Is(err, ErrTokenSignature) {
		t.Errorf("foreign token: %v, want ErrTokenSignature", err)
	}
}
