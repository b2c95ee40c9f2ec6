package gpu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

const gib1 = 1 << 30

// Compile-time checks that both probers implement Prober.
var (
	_ Prober = NVML{}
	_ Prober = Fake{}
)

func TestNVMLProbe(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelDebug}))
	inv, err := NVML{Logger: log}.Probe(t.Context())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	t.Logf("inventory: %v (driver %q)", inv, inv.Driver)
	if inv.CPUCores <= 0 {
		t.Errorf("CPUCores = %d, want > 0", inv.CPUCores)
	}
	if runtime.GOOS == "linux" {
		if inv.RAMBytes == 0 {
			t.Errorf("RAMBytes = 0, want > 0")
		}
		if inv.RAMAvailable > inv.RAMBytes {
			t.Errorf("RAMAvailable %d > RAMBytes %d", inv.RAMAvailable, inv.RAMBytes)
		}
	}
	if _, err := os.Stat("/dev/nvidiactl"); err != nil {
		// No NVIDIA driver on this machine: zero GPUs, not an error.
		if len(inv.GPUs) != 0 || inv.Driver != "" {
			t.Errorf("without /dev/nvidiactl got %d GPUs, driver %q; want 0 and \"\"", len(inv.GPUs), inv.Driver)
		}
	}
	seen := make(map[int]bool)
	for _, g := range inv.GPUs {
		if seen[g.Index] {
			t.Errorf("duplicate GPU index %d", g.Index)
		}
		seen[g.Index] = true
		if g.Name == "" || g.UUID == "" || g.MemoryTotal == 0 || g.MemoryFree > g.MemoryTotal {
			t.Errorf("implausible GPU %+v", g)
		}
	}
	if len(inv.GPUs) > 0 && inv.Driver == "" {
		t.Errorf("%d GPUs but no driver version", len(inv.GPUs))
	}
}

func TestNVMLProbeNilLogger(t *testing.T) {
	if _, err := (NVML{}).Probe(t.Context()); err != nil {
		t.Fatalf("Probe: %v", err)
	}
}

func TestProbeCanceled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	for _, p := range []Prober{NVML{}, Fake{Inventory: Inventory{CPUCores: 1}}} {
		if _, err := p.Probe(ctx); !errors.Is(err, context.Canceled) {
			t.Errorf("%T.Probe(canceled) error = %v, want context.Canceled", p, err)
		}
	}
}

func TestNVMLProbeConcurrent(t *testing.T) {
	errs := make(chan error, 4)
	for range cap(errs) {
		go func() {
			_, err := NVML{}.Probe(t.Context())
			errs <- err
		}()
	}
	for range cap(errs) {
		if err := <-errs; err != nil {
			t.Errorf("Probe: %v", err)
		}
	}
}

func TestReadMemInfoMissing(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	total, avail := readMemInfo(log, t.TempDir()+"/nonexistent")
	if total != 0 || avail != 0 {
		t.Errorf("readMemInfo(missing) = %d, %d; want 0, 0", total, avail)
	}
}

func TestFake(t *testing.T) {
	want := Inventory{GPUs: []GPU{{Index: 0, Name: "A", MemoryFree: 1}}, CPUCores: 2}
	f := Fake{Inventory: want}
	got, err := f.Probe(t.Context())
	if err != nil {
		t.Fatalf("Probe: %v", err)
	}
	got.GPUs[0].Name = "changed"
	if f.Inventory.GPUs[0].Name != "A" {
		t.Errorf("Probe result aliases the fake's GPUs")
	}
	boom := errors.New("boom")
	if _, err := (Fake{Inventory: want, Err: boom}).Probe(t.Context()); !errors.Is(err, boom) {
		t.Errorf("Probe error = %v, want %v", err, boom)
	}
}

func h100(i int, free uint64) GPU {
	return GPU{Index: i, Name: "NVIDIA H100 80GB", UUID: fmt.Sprintf("GPU-%d", i), MemoryTotal: 80 * gib1, MemoryFree: free}
}

func TestCapacity(t *testing.T) {
	tests := []struct {
		name string
		inv  Inventory
		want int64
	}{
		{"empty", Inventory{}, 0},
		{"one GPU", Inventory{GPUs: []GPU{h100(0, 10*gib1)}, RAMAvailable: 500 * gib1}, 9 * gib1},
		{"two GPUs", Inventory{GPUs: []GPU{h100(0, 79*gib1), h100(1, 79*gib1)}}, 158 * gib1 * 9 / 10},
		{"GPU rounds down", Inventory{GPUs: []GPU{{MemoryFree: 19}}}, 17},
		{"GPUs with no free memory ignore RAM", Inventory{GPUs: []GPU{{MemoryFree: 0}}, RAMBytes: 100}, 0},
		{"CPU uses available", Inventory{RAMBytes: 100 * gib1, RAMAvailable: 50 * gib1}, 40 * gib1},
		{"CPU falls back to total", Inventory{RAMBytes: 100 * gib1}, 80 * gib1},
		{"CPU rounds down", Inventory{RAMAvailable: 9}, 7},
		{"GPU sum saturates", Inventory{GPUs: []GPU{{MemoryFree: math.MaxUint64}, {MemoryFree: math.MaxUint64}}}, math.MaxInt64},
		{"RAM saturates", Inventory{RAMAvailable: math.MaxUint64}, math.MaxInt64},
		{"huge RAM exact", Inventory{RAMAvailable: math.MaxInt64}, 7378697629483820645 /* floor((2^63-1)*0.8) */},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.inv.Capacity(); got != tt.want {
				t.Errorf("Capacity() = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	ram := uint64(1253) * gib1 / 10
	tests := []struct {
		name string
		inv  Inventory
		want string
	}{
		{"two GPUs", Inventory{GPUs: []GPU{h100(0, 79*gib1), h100(1, 79*gib1)}, CPUCores: 16, RAMBytes: ram},
			"2 GPUs (NVIDIA H100 80GB x2, 158.0 GiB free), 16 cores, 125.3 GiB RAM"},
		{"one GPU", Inventory{GPUs: []GPU{h100(0, gib1/2)}, CPUCores: 1, RAMBytes: 2 * gib1},
			"1 GPU (NVIDIA H100 80GB, 0.5 GiB free), 1 core, 2.0 GiB RAM"},
		{"mixed GPUs", Inventory{GPUs: []GPU{h100(0, gib1), {Name: "NVIDIA A10", MemoryFree: gib1}, h100(2, gib1), {MemoryFree: gib1}}, CPUCores: 8, RAMBytes: 64 * gib1},
			"4 GPUs (NVIDIA H100 80GB x2, NVIDIA A10, unnamed, 4.0 GiB free), 8 cores, 64.0 GiB RAM"},
		{"no GPUs", Inventory{CPUCores: 4, RAMBytes: 16 * gib1},
			"0 GPUs, 4 cores, 16.0 GiB RAM"},
		{"zero", Inventory{}, "0 GPUs, 0 cores, 0.0 GiB RAM"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.inv.String(); got != tt.want {
				t.Errorf("String() =\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

// realMemInfo is the head of a real /proc/meminfo.
const realMemInfo = `MemTotal:       131386604 kB
MemFree:        97312452 kB
MemAvailable:   125297372 kB
Buffers:          812500 kB
Cached:         26431564 kB
SwapCached:            0 kB
HugePages_Total:       0
HugePages_Free:        0
Hugepagesize:       2048 kB
DirectMap1G:    104857600 kB
`

func TestParseMemInfo(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		total, av  uint64
		wantErr    bool
		wantSyntax bool // the error wraps ErrMemInfo
	}{
		{name: "real", in: realMemInfo, total: 131386604 * 1024, av: 125297372 * 1024},
		{name: "no available (old kernel)", in: "MemTotal: 1000 kB\nMemFree: 10 kB\n", total: 1024000},
		{name: "order and no trailing newline", in: "MemAvailable: 1 kB\nMemTotal:2 kB", total: 2048, av: 1024},
		{name: "blank lines and tabs", in: "\nMemTotal:\t4 kB\n\n", total: 4096},
		{name: "CRLF", in: "MemTotal: 4 kB\r\nMemAvailable: 3 kB\r\n", total: 4096, av: 3072},
		{name: "empty", in: "", wantErr: true, wantSyntax: true},
		{name: "no MemTotal", in: "MemFree: 10 kB\nMemAvailable: 5 kB\n", wantErr: true, wantSyntax: true},
		{name: "zero MemTotal", in: "MemTotal: 0 kB\n", wantErr: true, wantSyntax: true},
		{name: "no colon", in: "MemTotal 100 kB\n", wantErr: true, wantSyntax: true},
		{name: "space in key", in: "Mem Total: 100 kB\n", wantErr: true, wantSyntax: true},
		{name: "empty key", in: ": 100 kB\nMemTotal: 1 kB\n", wantErr: true, wantSyntax: true},
		{name: "garbage line", in: "MemTotal: 1 kB\nhello world\n", wantErr: true, wantSyntax: true},
		{name: "no unit", in: "MemTotal: 100\n", wantErr: true, wantSyntax: true},
		{name: "wrong unit", in: "MemTotal: 100 MB\n", wantErr: true, wantSyntax: true},
		{name: "no value", in: "MemTotal:\n", wantErr: true, wantSyntax: true},
		{name: "negative", in: "MemTotal: -5 kB\n", wantErr: true, wantSyntax: true},
		{name: "not a number", in: "MemTotal: lots kB\n", wantErr: true, wantSyntax: true},
		{name: "extra field", in: "MemTotal: 1 2 kB\n", wantErr: true, wantSyntax: true},
		{name: "bad available", in: "MemTotal: 1 kB\nMemAvailable: x kB\n", wantErr: true, wantSyntax: true},
		{name: "too big for uint64", in: "MemTotal: 99999999999999999999 kB\n", wantErr: true, wantSyntax: true},
		{name: "overflows in bytes", in: "MemTotal: 18014398509481984 kB\n", wantErr: true, wantSyntax: true},
		{name: "duplicate", in: "MemTotal: 1 kB\nMemTotal: 2 kB\n", wantErr: true, wantSyntax: true},
		{name: "line too long", in: "MemTotal: 1 kB\nX:" + strings.Repeat("9", 70000) + " kB\n", wantErr: true, wantSyntax: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			total, av, err := ParseMemInfo(strings.NewReader(tt.in))
			if tt.wantErr {
				if err == nil {
					t.Fatalf("ParseMemInfo = %d, %d, nil; want error", total, av)
				}
				if got := errors.Is(err, ErrMemInfo); got != tt.wantSyntax {
					t.Errorf("errors.Is(%v, ErrMemInfo) = %v, want %v", err, got, tt.wantSyntax)
				}
				if total != 0 || av != 0 {
					t.Errorf("ParseMemInfo error returned nonzero %d, %d", total, av)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("ParseMemInfo: %v", err)
			}
			if total != tt.total || av != tt.av {
				t.Errorf("ParseMemInfo = %d, %d; want %d, %d", total, av, tt.total, tt.av)
			}
		})
	}
}

func TestParseMemInfoReadError(t *testing.T) {
	boom := errors.New("boom")
	_, _, err := ParseMemInfo(io.MultiReader(strings.NewReader("MemTotal: 1 kB\n"), iotest.ErrReader(boom)))
	if !errors.Is(err, boom) || errors.Is(err, ErrMemInfo) {
		t.Errorf("ParseMemInfo error = %v, want one wrapping only %v", err, boom)
	}
}

func FuzzParseMemInfo(f *testing.F) {
	f.Add(realMemInfo)
	f.Add("MemTotal: 1 kB\n")
	f.Add("MemTotal: 2 kB\nMemAvailable: 1 kB")
	f.Add("MemTotal: 100\n")
	f.Add("MemTotal:\n: kB\n")
	f.Add("MemTotal: 18014398509481983 kB\n")
	f.Fuzz(func(t *testing.T, in string) {
		total, av, err := ParseMemInfo(strings.NewReader(in))
		if err != nil {
			if total != 0 || av != 0 {
				t.Fatalf("error %v with nonzero results %d, %d", err, total, av)
			}
			return
		}
		if total == 0 || total%1024 != 0 || av%1024 != 0 {
			t.Fatalf("ParseMemInfo(%q) = %d, %d: want positive whole kB", in, total, av)
		}
		// Round trip: the figures, written back, parse to the same figures.
		out := fmt.Sprintf("MemTotal: %d kB\nMemAvailable: %d kB\n", total/1024, av/1024)
		t2, a2, err := ParseMemInfo(strings.NewReader(out))
		if err != nil || t2 != total || a2 != av {
			t.Fatalf("round trip of %q = %d, %d, %v; want %d, %d", out, t2, a2, err, total, av)
		}
	})
}
