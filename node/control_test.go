package node

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/http/httptest"
	"testing"

	"github.com/strata-llm/strata/cluster"
)

// FuzzReadControl: a control message from a peer is refused or decoded,
// never a panic, and never more than maxControlBytes read into memory.
func FuzzReadControl(f *testing.F) {
	var buf bytes.Buffer
	writeControl(&buf, &controlRequest{Op: "join", Token: "strata1.x.y", Node: &cluster.Node{ID: "12D3KooW", Addrs: []string{"/ip4/127.0.0.1/tcp/1"}}})
	f.Add(buf.Bytes())
	buf.Reset()
	writeControl(&buf, &controlRequest{Op: "apply", Command: &cluster.Command{Type: cluster.CmdSetState, NodeID: "a", State: cluster.StateServing}})
	f.Add(buf.Bytes())
	buf.Reset()
	writeControl(&buf, &controlRequest{Op: "revoked", Revocation: &cluster.Revocation{Node: "12D3KooW", Reason: "r"}})
	f.Add(buf.Bytes())
	buf.Reset()
	writeControl(&buf, &controlRequest{Op: "apply", Origin: "12D3KooX", Command: &cluster.Command{Type: cluster.CmdSetAddrs, NodeID: "12D3KooX"}})
	f.Add(buf.Bytes())
	buf.Reset()
	writeControl(&buf, NodeLoad{Node: "12D3KooW", Sessions: 2, StageTokensPerSec: 1.5})
	f.Add(buf.Bytes())
	f.Add(binary.BigEndian.AppendUint32(nil, maxControlBytes+1))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var l NodeLoad // a status reply
		readControl(bytes.NewReader(b), &l)
		var rep controlReply
		readControl(bytes.NewReader(b), &rep)
		var req controlRequest
		if err := readControl(bytes.NewReader(b), &req); err != nil {
			return
		}
		if req.Command != nil {
			req.Command.Encode() // a decoded command re-encodes
		}
	})
}

// FuzzAdminRequest: the body of an admin route is decoded or refused as a
// bad request, never a panic.
func FuzzAdminRequest(f *testing.F) {
	for _, s := range []string{`{"ttl_seconds":60,"note":"rack 2"}`, `{"node":"12D3KooW","reason":"lost"}`, `{}`, `{"ttl_seconds":1e99}`, `{"node":1}`, `{} {}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, v := range []any{&tokenRequest{}, &revokeRequest{}} {
			r := httptest.NewRequest("POST", "/cluster/tokens", bytes.NewReader(b))
			if err := readJSON(r, v); err != nil && !errors.Is(err, errBadRequest) {
				t.Fatalf("readJSON(%q) = %v, not a bad request", b, err)
			}
		}
	})
}

// TestReadControlRefuses: oversized and truncated messages are errors.
func TestReadControlRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"too large": binary.BigEndian.AppendUint32(nil, maxControlBytes+1),
		"truncated": {0, 0, 0, 9, '{'},
		"no length": {0, 0},
		"not json":  {0, 0, 0, 3, 'a', 'b', 'c'},
	} {
		var req controlRequest
		if err := readControl(bytes.NewReader(b), &req); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
