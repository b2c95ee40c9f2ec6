package node

import (
	"bytes"
	"encoding/binary"
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
	f.Add(binary.BigEndian.AppendUint32(nil, maxControlBytes+1))
	f.Add([]byte{0, 0, 0, 2, '{', '}'})
	f.Fuzz(func(t *testing.T, b []byte) {
		var req controlRequest
		if err := readControl(bytes.NewReader(b), &req); err != nil {
			return
		}
		if req.Command != nil {
			req.Command.Encode() // a decoded command re-encodes
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
