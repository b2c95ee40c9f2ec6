package p2p

import (
	"context"
	"errors"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/event"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// fullAddrs returns h's addresses with its /p2p/ID, as Bootstrap takes
// them.
func fullAddrs(t testing.TB, h *Host) []string {
	t.Helper()
	ai := h.AddrInfo()
	mas, err := peer.AddrInfoToP2pAddrs(&ai)
	if err != nil {
		t.Fatal(err)
	}
	s := make([]string, len(mas))
	for i, a := range mas {
		s[i] = a.String()
	}
	return s
}

// waitConnected waits up to d for h to be connected to p.
func waitConnected(t testing.TB, h *Host, p peer.ID, d time.Duration) {
	t.Helper()
	sub, err := h.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	timeout := time.After(d)
	for h.Network().Connectedness(p) != network.Connected {
		select {
		case <-sub.Out():
		case <-timeout:
			t.Fatalf("%s not connected to %s after %v", h.ID(), p, d)
		}
	}
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	timeout := time.After(d)
	for !cond() {
		select {
		case <-tick.C:
		case <-timeout:
			t.Fatalf("%s: not within %v", what, d)
		}
	}
}

func TestBootstrap(t *testing.T) {
	a := newHost(t, HostConfig{Listen: []string{loopTCP}})
	b := newHost(t, HostConfig{Bootstrap: fullAddrs(t, a)})
	waitConnected(t, b, a.ID(), 10*time.Second)
}

func TestBootstrapUnreachableIsNoError(t *testing.T) {
	a := newHost(t, HostConfig{Listen: []string{loopTCP}})
	addrs := fullAddrs(t, a)
	a.Close()
	// The peer is gone: the host starts anyway, and Close stops the
	// connecting goroutine.
	b := newHost(t, HostConfig{Bootstrap: addrs})
	b.Close()
}

func TestHostConfigRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  HostConfig
		want error
	}{
		{"bootstrap without ID", HostConfig{Bootstrap: []string{"/ip4/127.0.0.1/tcp/4001"}}, ErrBootstrap},
		{"bootstrap not a multiaddr", HostConfig{Bootstrap: []string{"strata.example:4001"}}, ErrBootstrap},
		{"DHT mode", HostConfig{DHT: "everywhere"}, nil},
		{"mDNS tag", HostConfig{MDNS: true, MDNSTag: "a.b"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Logger = quiet
			h, err := NewHost(context.Background(), tc.cfg)
			if err == nil {
				h.Close()
				t.Fatal("taken")
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("err %v, want %v", err, tc.want)
			}
		})
	}
}

// TestDHTFindPeer: A is a DHT server, B and C clients bootstrapped from
// it. C learns B's addresses through the DHT, never told them, and
// connects to B.
func TestDHTFindPeer(t *testing.T) {
	a := newHost(t, HostConfig{Listen: []string{loopTCP}, DHT: DHTServer})
	boot := fullAddrs(t, a)
	b := newHost(t, HostConfig{Listen: []string{loopTCP}, DHT: DHTClient, Bootstrap: boot})
	c := newHost(t, HostConfig{Listen: []string{loopTCP}, DHT: DHTClient, Bootstrap: boot})
	waitConnected(t, b, a.ID(), 10*time.Second)
	waitConnected(t, c, a.ID(), 10*time.Second)
	if len(c.Peerstore().Addrs(b.ID())) != 0 || c.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatal("C knew B before asking the DHT")
	}
	// The server learns B's addresses by identify, and C puts the server
	// in its routing table once identify shows it speaks the DHT.
	eventually(t, 10*time.Second, "A knows B's addresses", func() bool { return len(a.Peerstore().Addrs(b.ID())) > 0 })
	eventually(t, 10*time.Second, "C's routing table holds A", func() bool { return c.kad.RoutingTable().Find(a.ID()) != "" })

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ai, err := c.FindPeer(ctx, b.ID())
	if err != nil {
		t.Fatal(err)
	}
	if ai.ID != b.ID() || len(ai.Addrs) == 0 {
		t.Fatalf("found %v, want B's addresses", ai)
	}
	if err := c.Connect(ctx, ai); err != nil {
		t.Fatalf("connect to B at the addresses found: %v", err)
	}

	// Without a DHT there is nothing to ask.
	if _, err := newHost(t, HostConfig{}).FindPeer(ctx, b.ID()); !errors.Is(err, ErrNoDHT) {
		t.Errorf("FindPeer without a DHT: %v, want ErrNoDHT", err)
	}
}

// TestDHTRoutedConnect: with a DHT, dialing a peer by its ID alone looks
// its addresses up.
func TestDHTRoutedConnect(t *testing.T) {
	a := newHost(t, HostConfig{Listen: []string{loopTCP}, DHT: DHTServer})
	boot := fullAddrs(t, a)
	b := newHost(t, HostConfig{Listen: []string{loopTCP}, DHT: DHTServer, Bootstrap: boot})
	c := newHost(t, HostConfig{Listen: []string{loopTCP}, DHT: DHTAuto, Bootstrap: boot})
	waitConnected(t, b, a.ID(), 10*time.Second)
	eventually(t, 10*time.Second, "C's routing table holds A", func() bool { return c.kad.RoutingTable().Find(a.ID()) != "" })
	eventually(t, 10*time.Second, "A knows B's addresses", func() bool { return len(a.Peerstore().Addrs(b.ID())) > 0 })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx, peer.AddrInfo{ID: b.ID()}); err != nil {
		t.Fatalf("connect to B by ID: %v", err)
	}
}

// TestMDNS: two hosts on the LAN find each other. Multicast may be
// missing (a container without a multicast route): then the test skips.
func TestMDNS(t *testing.T) {
	tag := "test-" + strconv.Itoa(os.Getpid()) // apart from other runs on the LAN
	a := newHost(t, HostConfig{Listen: []string{loopTCP, "/ip4/0.0.0.0/tcp/0"}, MDNS: true, MDNSTag: tag})
	b := newHost(t, HostConfig{Listen: []string{loopTCP, "/ip4/0.0.0.0/tcp/0"}, MDNS: true, MDNSTag: tag})
	if a.mdns == nil || b.mdns == nil {
		t.Skip("mDNS could not start here (no multicast interface)")
	}
	sub, err := b.EventBus().Subscribe(new(event.EvtPeerConnectednessChanged))
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	timeout := time.After(5 * time.Second)
	for b.Network().Connectedness(a.ID()) != network.Connected {
		select {
		case <-sub.Out():
		case <-timeout:
			t.Skip("mDNS found no peer within 5s: no multicast route here?")
		}
	}
}

// TestMDNSPeerFound drives the mDNS notifee by hand, as the mDNS service
// does when it finds a peer: the host connects to it.
func TestMDNSPeerFound(t *testing.T) {
	a := newHost(t, HostConfig{Listen: []string{loopTCP}})
	b := newHost(t, HostConfig{})
	n := notifee{b}
	n.HandlePeerFound(b.AddrInfo()) // itself: ignored
	n.HandlePeerFound(a.AddrInfo())
	waitConnected(t, b, a.ID(), 10*time.Second)
	n.HandlePeerFound(a.AddrInfo()) // connected already: ignored

	// Once the host is closed a found peer starts nothing.
	b.Close()
	n.HandlePeerFound(newHost(t, HostConfig{Listen: []string{loopTCP}}).AddrInfo())
}
