package gpu

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"math/bits"
	"os"
	"runtime"
	"strings"
)

// GPU is one device.
type GPU struct {
	// Index is the device's NVML index on this node.
	Index int
	// Name is the product name, such as "NVIDIA H100 80GB HBM3".
	Name string
	// UUID is the device's stable identifier ("GPU-...").
	UUID string
	// MemoryTotal is the device memory in bytes.
	MemoryTotal uint64
	// MemoryFree is the device memory not in use when probed, in bytes.
	MemoryFree uint64
}

// Inventory is what a node has.
type Inventory struct {
	// GPUs lists the devices in index order; empty when there are none.
	GPUs []GPU
	// CPUCores is the number of logical CPUs usable by this process.
	CPUCores int
	// RAMBytes is the total RAM in bytes; 0 when unknown.
	RAMBytes uint64
	// RAMAvailable is the RAM available to new work in bytes; 0 when unknown.
	RAMAvailable uint64
	// Driver is the NVML driver version, "" without NVML.
	Driver string
}

// Prober measures an inventory (the seam for tests).
//
// Probe may be called from any goroutine, any number of times; each call
// returns a fresh Inventory whose GPUs slice belongs to the caller.
type Prober interface {
	Probe(ctx context.Context) (Inventory, error)
}

// NVML is the real prober: NVML for GPUs (on linux with cgo; elsewhere zero
// GPUs), runtime.NumCPU for cores and /proc/meminfo for RAM (0 where
// unknown). Its zero value works.
type NVML struct {
	// Logger receives Debug and Warn records; nil means slog.Default().
	Logger *slog.Logger
}

// memInfoPath is the file NVML.Probe reads RAM figures from on linux.
const memInfoPath = "/proc/meminfo"

// Probe measures this machine. A missing NVIDIA library, a machine without
// GPUs, a device that cannot be queried or an unreadable /proc/meminfo is not
// an error: the inventory just lacks what could not be measured, and the
// reason is logged. Probe fails only when ctx is done.
func (n NVML) Probe(ctx context.Context) (Inventory, error) {
	log := n.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := ctx.Err(); err != nil {
		return Inventory{}, fmt.Errorf("probe inventory: %w", err)
	}
	inv := Inventory{CPUCores: runtime.NumCPU()}
	inv.GPUs, inv.Driver = probeGPUs(log)
	if runtime.GOOS == "linux" {
		inv.RAMBytes, inv.RAMAvailable = readMemInfo(log, memInfoPath)
	}
	if err := ctx.Err(); err != nil {
		return Inventory{}, fmt.Errorf("probe inventory: %w", err)
	}
	return inv, nil
}

// readMemInfo returns MemTotal and MemAvailable from path, or zeros (logged
// at Warn) when it cannot be read or parsed.
func readMemInfo(log *slog.Logger, path string) (total, available uint64) {
	f, err := os.Open(path)
	if err != nil {
		log.Warn("read meminfo", "path", path, "err", err)
		return 0, 0
	}
	defer f.Close()
	total, available, err = ParseMemInfo(f)
	if err != nil {
		log.Warn("read meminfo", "path", path, "err", err)
		return 0, 0
	}
	return total, available
}

// Fake returns a fixed inventory.
type Fake struct {
	// Inventory is returned by every Probe.
	Inventory Inventory
	// Err, when non-nil, is returned by every Probe instead.
	Err error
}

// Probe returns f.Err if set, else a copy of f.Inventory (with its own GPUs
// slice, so callers may modify it).
func (f Fake) Probe(ctx context.Context) (Inventory, error) {
	if f.Err != nil {
		return Inventory{}, f.Err
	}
	if err := ctx.Err(); err != nil {
		return Inventory{}, fmt.Errorf("probe inventory: %w", err)
	}
	inv := f.Inventory
	if inv.GPUs != nil {
		inv.GPUs = append([]GPU(nil), inv.GPUs...)
	}
	return inv, nil
}

// Capacity is the bytes of weights this node can offer by default: with GPUs,
// the sum of their free memory less 10% headroom; without, 80% of
// RAMAvailable, or of RAMBytes when available memory is unknown. It is 0 when
// nothing is known and saturates at math.MaxInt64.
func (inv Inventory) Capacity() int64 {
	var c uint64
	if len(inv.GPUs) > 0 {
		var free uint64
		for _, g := range inv.GPUs {
			s, carry := bits.Add64(free, g.MemoryFree, 0)
			if carry != 0 {
				s = math.MaxUint64
			}
			free = s
		}
		c = scale(free, 9, 10)
	} else {
		ram := inv.RAMAvailable
		if ram == 0 {
			ram = inv.RAMBytes
		}
		c = scale(ram, 8, 10)
	}
	if c > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(c)
}

// scale returns floor(x*num/den) without overflow; num must be below den.
func scale(x, num, den uint64) uint64 {
	hi, lo := bits.Mul64(x, num)
	q, _ := bits.Div64(hi, lo, den)
	return q
}

// String is one line for logs, such as
// "2 GPUs (NVIDIA H100 80GB x2, 158.0 GiB free), 16 cores, 125.3 GiB RAM".
// GPUs of the same name are grouped in order of first appearance.
func (inv Inventory) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%d %s", len(inv.GPUs), plural(len(inv.GPUs), "GPU", "GPUs"))
	if len(inv.GPUs) > 0 {
		var names []string
		count := make(map[string]int)
		var free uint64
		for _, g := range inv.GPUs {
			if count[g.Name] == 0 {
				names = append(names, g.Name)
			}
			count[g.Name]++
			free += g.MemoryFree
		}
		b.WriteString(" (")
		for _, name := range names {
			if name == "" {
				b.WriteString("unnamed")
			} else {
				b.WriteString(name)
			}
			if n := count[name]; n > 1 {
				fmt.Fprintf(&b, " x%d", n)
			}
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s free)", gib(free))
	}
	fmt.Fprintf(&b, ", %d %s, %s RAM", inv.CPUCores, plural(inv.CPUCores, "core", "cores"), gib(inv.RAMBytes))
	return b.String()
}

// plural picks one or many by n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// gib formats bytes as GiB with one decimal.
func gib(n uint64) string {
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}
