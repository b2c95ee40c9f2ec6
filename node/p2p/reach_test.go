package p2p

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/host/eventbus"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
)

// relayed is a relay R and a host A behind it: A does not listen, so
// that it is reachable only through its reservation on R, and serves a
// stage.
type relayed struct {
	r, a    *Host
	circuit peer.AddrInfo // A at /.../p2p/R/p2p-circuit
}

func newRelayed(t *testing.T) *relayed {
	t.Helper()
	r := newHost(t, HostConfig{Listen: []string{loopTCP}, RelayService: true})
	a := newHost(t, HostConfig{NAT: true})
	srv, err := ServeStage(a, echoStage{}, ServeOptions{Layers: LayerRange{0, 1}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// AutoRelay reserves only once AutoNAT finds the host private, which
	// loopback never gives: reserve by hand.
	if _, err := client.Reserve(ctx, a, r.AddrInfo()); err != nil {
		t.Fatalf("reserve a slot on the relay: %v", err)
	}
	circuit, err := ma.NewMultiaddr(fullAddrs(t, r)[0] + "/p2p-circuit")
	if err != nil {
		t.Fatal(err)
	}
	return &relayed{r: r, a: a, circuit: peer.AddrInfo{ID: a.ID(), Addrs: []ma.Multiaddr{circuit}}}
}

// TestRelayOnlyRefusedForStages: B reaches A only through the relay. It
// can connect, but the link is limited: RelayOnly says so, DialStage
// refuses the peer with ErrRelayOnly, and libp2p opens no stream on it.
func TestRelayOnlyRefusedForStages(t *testing.T) {
	rl := newRelayed(t)
	// Hole punching needs public addresses, which loopback hosts have
	// not: the relayed connection stays relayed.
	b := newHost(t, HostConfig{NAT: true})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.Connect(ctx, rl.circuit); err != nil {
		t.Fatalf("connect through the relay: %v", err)
	}
	if !RelayOnly(b, rl.a.ID()) {
		t.Fatalf("RelayOnly is false; connections %v", b.Network().ConnsToPeer(rl.a.ID()))
	}
	for _, c := range b.Network().ConnsToPeer(rl.a.ID()) {
		if !isRelayAddr(c.RemoteMultiaddr()) {
			t.Fatalf("a direct connection to A: %v", c.RemoteMultiaddr())
		}
	}
	if RelayOnly(b, rl.r.ID()) {
		t.Error("RelayOnly is true of the relay itself, connected directly")
	}
	if RelayOnly(b, newHost(t, HostConfig{}).ID()) {
		t.Error("RelayOnly is true of a peer without connections")
	}

	for _, tc := range []struct {
		name string
		ai   peer.AddrInfo
	}{{"circuit address", rl.circuit}, {"connected, by ID", peer.AddrInfo{ID: rl.a.ID()}}} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DialStage(ctx, b, tc.ai, RemoteConfig{DialTimeout: 5 * time.Second, Logger: quiet})
			var re *RemoteError
			if !errors.Is(err, ErrRelayOnly) || !errors.Is(err, ErrPeerUnreachable) || !errors.As(err, &re) || re.Peer != rl.a.ID() {
				t.Errorf("err %v, want ErrRelayOnly from %s", err, rl.a.ID())
			}
		})
	}

	// A stage stream to the peer is refused too, should the check in
	// DialStage have passed.
	r := &RemoteStage{h: b, peer: rl.a.ID(), cfg: RemoteConfig{DialTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}, open: make(map[*rstream]struct{})}
	if _, err := r.stream(ctx); !errors.Is(err, ErrRelayOnly) {
		t.Errorf("open a stage stream: %v, want ErrRelayOnly", err)
	}

	// libp2p itself opens no stream on a limited connection unless told
	// to (network.WithAllowLimitedConn): it waits for a direct one.
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer scancel()
	if s, err := b.NewStream(sctx, rl.a.ID(), StageProtocol); err == nil {
		s.Reset()
		t.Error("a stage stream opened over the relayed connection")
	}
}

// TestNoRelayWithoutNAT: a zero-value host has no relay transport, as
// before HostConfig.NAT: a /p2p-circuit address cannot be dialed.
func TestNoRelayWithoutNAT(t *testing.T) {
	rl := newRelayed(t)
	b := newHost(t, HostConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := b.Connect(ctx, rl.circuit); err == nil {
		t.Fatal("a host without NAT dialed a circuit address")
	}
	if got := b.Reachability(); got != ReachUnknown {
		t.Errorf("Reachability %q without NAT, want %q", got, ReachUnknown)
	}
}

// TestReachabilityTracked: the host reports the reachability AutoNAT
// emits on the event bus (emitted by hand here: AutoNAT never finds a
// loopback host public).
func TestReachabilityTracked(t *testing.T) {
	h := newHost(t, HostConfig{NAT: true, Listen: []string{loopTCP}})
	if got := h.Reachability(); got == ReachPublic {
		t.Errorf("Reachability %q on loopback", got)
	}
	em, err := h.EventBus().Emitter(new(event.EvtLocalReachabilityChanged), eventbus.Stateful)
	if err != nil {
		t.Fatal(err)
	}
	defer em.Close()
	for _, tc := range []struct {
		v    network.Reachability
		want string
	}{
		{network.ReachabilityPublic, ReachPublic},
		{network.ReachabilityPrivate, ReachPrivate},
		{network.ReachabilityUnknown, ReachUnknown},
	} {
		if err := em.Emit(event.EvtLocalReachabilityChanged{Reachability: tc.v}); err != nil {
			t.Fatal(err)
		}
		eventually(t, 5*time.Second, "reachability "+tc.want, func() bool { return h.Reachability() == tc.want })
	}
}

// TestCloseStopsEverything: Close stops a host with every option on,
// while a bootstrap dial hangs, and leaves none of its goroutines.
func TestCloseStopsEverything(t *testing.T) {
	// A listener that accepts and never answers: a dial to it hangs in
	// the security handshake.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	dead := fmt.Sprintf("/ip4/127.0.0.1/tcp/%d/p2p/%s", port, newHost(t, HostConfig{}).ID())
	h := newHost(t, HostConfig{
		Listen: []string{loopTCP}, Bootstrap: []string{dead}, MDNS: true,
		DHT: DHTServer, NAT: true, RelayService: true,
	})
	done := make(chan struct{})
	go func() {
		h.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close hangs")
	}
	for _, g := range stageGoroutines() {
		if strings.Contains(g, "node/p2p.(*Host)") || strings.Contains(g, "node/p2p.notifee") {
			t.Errorf("a host goroutine outlived Close:\n%s", g)
		}
	}
}
