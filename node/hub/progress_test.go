package hub

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const (
	kib = 1 << 10
	mib = 1 << 20
	gib = 1 << 30
)

func TestProgressLines(t *testing.T) {
	tests := []struct {
		s          snapshot
		bar, plain string
	}{
		{
			snapshot{Name: "m.gguf", Done: 512 * mib, Total: 1126 * mib, Rate: 23.4 * mib},
			"[=========>          ]  45% 512.0 MiB / 1.1 GiB  23.4 MiB/s  ETA 26s  m.gguf",
			"pull m.gguf: 45% (512.0 MiB of 1.1 GiB) 23.4 MiB/s",
		},
		{
			snapshot{Name: "m.gguf", Done: 0, Total: 3 * gib},
			"[>                   ]   0% 0 B / 3.0 GiB  -- B/s  ETA --  m.gguf",
			"pull m.gguf: 0% (0 B of 3.0 GiB) -- B/s",
		},
		{
			snapshot{Name: "m.gguf", Done: 3 * gib, Total: 3 * gib, Rate: 100 * mib},
			"[====================] 100% 3.0 GiB / 3.0 GiB  100.0 MiB/s  ETA 0s  m.gguf",
			"pull m.gguf: 100% (3.0 GiB of 3.0 GiB) 100.0 MiB/s",
		},
		{
			snapshot{Name: "m.gguf", Done: 1 * gib, Total: 41 * gib, Rate: 10 * mib},
			"[>                   ]   2% 1.0 GiB / 41.0 GiB  10.0 MiB/s  ETA 1h08m  m.gguf",
			"pull m.gguf: 2% (1.0 GiB of 41.0 GiB) 10.0 MiB/s",
		},
		{
			snapshot{Name: "x", Done: 1536, Total: -1, Rate: 512},
			"[                    ]    ? 1.5 KiB  512 B/s  ETA --  x",
			"pull x: 1.5 KiB 512 B/s",
		},
	}
	for _, tt := range tests {
		if got := barLine(tt.s); got != tt.bar {
			t.Errorf("barLine(%+v)\n got %q\nwant %q", tt.s, got, tt.bar)
		}
		if got := plainLine(tt.s); got != tt.plain {
			t.Errorf("plainLine(%+v)\n got %q\nwant %q", tt.s, got, tt.plain)
		}
	}
}

func TestProgressFormat(t *testing.T) {
	for n, want := range map[int64]string{0: "0 B", 1023: "1023 B", 1024: "1.0 KiB", 1536: "1.5 KiB", 5 * mib: "5.0 MiB", 1 << 40: "1.0 TiB"} {
		if got := FormatBytes(n); got != want {
			t.Errorf("FormatBytes(%d) = %q, want %q", n, got, want)
		}
	}
	for sec, want := range map[int64]string{0: "0s", 59: "59s", 60: "1m00s", 185: "3m05s", 3720: "1h02m", 1000 * 3600: "--"} {
		s := snapshot{Done: 100, Total: 100 + sec*100, Rate: 100}
		if got := formatETA(s); got != want {
			t.Errorf("formatETA(%d s) = %q, want %q", sec, got, want)
		}
	}
}

// TestProgressMeterTTY: the bar is redrawn at most every 100ms, with time
// passed in, and the final state is always drawn.
func TestProgressMeterTTY(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Unix(1000, 0)
	m := &meter{w: &buf, tty: true, name: "f", total: 100 * kib, start: t0}
	m.draw(t0, true)
	m.add(10*kib, t0.Add(50*time.Millisecond))  // too soon
	m.add(10*kib, t0.Add(150*time.Millisecond)) // drawn
	m.add(10*kib, t0.Add(200*time.Millisecond)) // too soon
	m.add(70*kib, t0.Add(time.Second))          // drawn
	m.finish(t0.Add(time.Second))               // drawn again, then a newline
	draws := strings.Split(buf.String(), "\r")[1:]
	if len(draws) != 4 {
		t.Fatalf("%d draws, want 4: %q", len(draws), buf.String())
	}
	for i, want := range []string{"  0% 0 B / 100.0 KiB", " 20% 20.0 KiB / 100.0 KiB  133.3 KiB/s", "100% 100.0 KiB / 100.0 KiB  100.0 KiB/s", "100%"} {
		if !strings.Contains(draws[i], want) {
			t.Errorf("draw %d %q does not hold %q", i, draws[i], want)
		}
	}
	if !strings.HasSuffix(buf.String(), "\x1b[K\n") {
		t.Errorf("the bar's line is not ended: %q", buf.String())
	}
}

// TestProgressMeterPlain: plain lines at each 10% step, resumed downloads
// counting only their own bytes for the rate.
func TestProgressMeterPlain(t *testing.T) {
	var buf bytes.Buffer
	t0 := time.Unix(1000, 0)
	m := newMeter(&buf, "f", 100, 40, t0)
	for i := 1; i <= 60; i++ {
		m.add(1, t0.Add(time.Duration(i)*time.Second))
	}
	m.finish(t0.Add(time.Minute))
	want := "pull f: 40% (40 B of 100 B) -- B/s\n"
	for p := 50; p <= 100; p += 10 {
		want += "pull f: " + strconv.Itoa(p) + "% (" + strconv.Itoa(p) + " B of 100 B) 1 B/s\n"
	}
	if buf.String() != want {
		t.Errorf("got\n%s\nwant\n%s", buf.String(), want)
	}
}

// openPTY opens a pseudo-terminal pair, or skips the test.
func openPTY(t *testing.T) (master, slave *os.File) {
	t.Helper()
	fd, err := unix.Open("/dev/ptmx", unix.O_RDWR|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: open /dev/ptmx: %v", err)
	}
	master = os.NewFile(uintptr(fd), "/dev/ptmx")
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		master.Close()
		t.Skipf("unlockpt: %v", err)
	}
	n, err := unix.IoctlGetInt(fd, unix.TIOCGPTN)
	if err != nil {
		master.Close()
		t.Skipf("ptsname: %v", err)
	}
	slave, err = os.OpenFile("/dev/pts/"+strconv.Itoa(n), os.O_RDWR|unix.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		t.Skipf("open /dev/pts/%d: %v", n, err)
	}
	return master, slave
}

// TestPullProgressTerminal pulls with a pseudo-terminal as Progress: a bar
// redrawn with \r appears on the other side.
func TestPullProgressTerminal(t *testing.T) {
	master, slave := openPTY(t)
	defer master.Close()
	read := make(chan []byte)
	go func() {
		b, err := io.ReadAll(master)
		if err != nil && !errors.Is(err, syscall.EIO) { // EIO: the slave side is closed
			t.Errorf("read pty: %v", err)
		}
		read <- b
	}()

	_, data := model(t)
	h := newFakeHub(t)
	h.add(modelKey, fakeFile{data: data})
	opts := Options{Endpoint: h.hub.URL, CacheDir: t.TempDir(), Progress: slave}
	path, err := Pull(context.Background(), mustRef(t, "hf://o/r/stories260K-f32.gguf"), opts)
	slave.Close()
	out := string(<-read)
	if err != nil {
		t.Fatal(err)
	}
	checkFile(t, path, data)
	if !strings.Contains(out, "\r[") || !strings.Contains(out, "%") || !strings.Contains(out, "100% 1.1 MiB / 1.1 MiB") {
		t.Errorf("no progress bar on the terminal: %q", out)
	}
	if strings.Contains(out, "pull stories260K-f32.gguf:") {
		t.Errorf("plain lines on a terminal: %q", out)
	}
}
