package hub

import (
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

const (
	barWidth    = 20                     // cells between the brackets
	barInterval = 100 * time.Millisecond // at most ~10 redraws a second
	plainStep   = 10                     // percent between plain lines
	plainEvery  = 30 * time.Second       // between plain lines when the size is unknown
)

// snapshot is one moment of a download, for rendering.
type snapshot struct {
	Name  string
	Done  int64   // bytes in the file so far
	Total int64   // bytes in all; <= 0 when unknown
	Rate  float64 // bytes a second over this session; 0 when not yet known
}

// percent returns Done as a whole percentage of Total, within [0, 100], or
// -1 when Total is unknown.
func (s snapshot) percent() int {
	if s.Total <= 0 {
		return -1
	}
	p := int(float64(s.Done) * 100 / float64(s.Total))
	return max(0, min(100, p))
}

// barLine renders s as a progress bar line, without the leading \r:
//
//	[=========>          ] 45% 512.0 MiB / 1.1 GiB  23.4 MiB/s  ETA 25s  FILE
func barLine(s snapshot) string {
	var b strings.Builder
	p := s.percent()
	b.WriteByte('[')
	fill := 0
	if p >= 0 {
		fill = p * barWidth / 100
	}
	for i := range barWidth {
		switch {
		case i < fill:
			b.WriteByte('=')
		case i == fill && p >= 0 && p < 100:
			b.WriteByte('>')
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteByte(']')
	if p >= 0 {
		fmt.Fprintf(&b, " %3d%% %s / %s", p, FormatBytes(s.Done), FormatBytes(s.Total))
	} else {
		fmt.Fprintf(&b, "    ? %s", FormatBytes(s.Done))
	}
	fmt.Fprintf(&b, "  %s  ETA %s  %s", formatRate(s.Rate), formatETA(s), s.Name)
	return b.String()
}

// plainLine renders s as a log-style line:
//
//	pull FILE: 45% (512.0 MiB of 1.1 GiB) 23.4 MiB/s
func plainLine(s snapshot) string {
	if p := s.percent(); p >= 0 {
		return fmt.Sprintf("pull %s: %d%% (%s of %s) %s", s.Name, p, FormatBytes(s.Done), FormatBytes(s.Total), formatRate(s.Rate))
	}
	return fmt.Sprintf("pull %s: %s %s", s.Name, FormatBytes(s.Done), formatRate(s.Rate))
}

// FormatBytes renders n bytes in binary units: "512 B", "1.5 KiB", "1.1
// GiB". The node's admin views use it too.
func FormatBytes(n int64) string {
	const units = "KMGTPE"
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n) / 1024
	i := 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.1f %ciB", f, units[i])
}

// formatRate renders a rate in bytes a second, or "-- B/s" when unknown.
func formatRate(r float64) string {
	if r <= 0 {
		return "-- B/s"
	}
	return FormatBytes(int64(r)) + "/s"
}

// formatETA renders the time left at s.Rate: "25s", "3m05s", "1h02m", or
// "--" when it cannot be told.
func formatETA(s snapshot) string {
	if s.Total <= 0 || s.Rate <= 0 || s.Done > s.Total {
		return "--"
	}
	sec := int64(float64(s.Total-s.Done) / s.Rate)
	switch {
	case sec < 60:
		return fmt.Sprintf("%ds", sec)
	case sec < 3600:
		return fmt.Sprintf("%dm%02ds", sec/60, sec%60)
	case sec < 100*3600:
		return fmt.Sprintf("%dh%02dm", sec/3600, sec/60%60)
	}
	return "--"
}

// meter reports a download's progress to w: a bar redrawn in place when w
// is a terminal, plain lines otherwise. Time is passed in, so its output is
// a pure function of its calls. A nil *meter reports nothing.
type meter struct {
	w     io.Writer
	tty   bool
	width int // terminal columns; 0 when unknown

	name  string
	total int64
	base  int64     // bytes already there when the session started
	start time.Time // when the session started
	done  int64

	drawn     bool      // something was written
	lastDraw  time.Time // when
	lastPct   int       // the 10% step a plain line last reported
	finished  bool
	writeErrs int
}

// newMeter returns a meter for a download of name, of total bytes (<= 0:
// unknown), with done bytes already there at now; nil when w is nil.
func newMeter(w io.Writer, name string, total, done int64, now time.Time) *meter {
	if w == nil {
		return nil
	}
	m := &meter{w: w, name: name, total: total, base: done, done: done, start: now}
	if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		m.tty = true
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil {
			m.width = cols
		}
	}
	m.draw(now, true)
	return m
}

// snapshot returns the meter's state at now.
func (m *meter) snapshot(now time.Time) snapshot {
	s := snapshot{Name: m.name, Done: m.done, Total: m.total}
	if el := now.Sub(m.start).Seconds(); el > 0 && m.done > m.base {
		s.Rate = float64(m.done-m.base) / el
	}
	return s
}

// add records n more bytes at now.
func (m *meter) add(n int64, now time.Time) {
	if m == nil {
		return
	}
	m.done += n
	m.draw(now, false)
}

// finish draws the final state and ends the bar's line.
func (m *meter) finish(now time.Time) {
	if m == nil || m.finished {
		return
	}
	m.draw(now, true)
	m.finished = true
	if m.tty {
		m.write("\n")
	}
}

// draw renders the state at now when it is due (always with force).
func (m *meter) draw(now time.Time, force bool) {
	s := m.snapshot(now)
	if m.tty {
		if !force && m.drawn && now.Sub(m.lastDraw) < barInterval {
			return
		}
		line := barLine(s)
		if m.width > 1 && len(line) > m.width-1 {
			line = line[:m.width-1]
		}
		m.write("\r" + line + "\x1b[K")
		m.drawn, m.lastDraw = true, now
		return
	}
	if p := s.percent(); p >= 0 {
		step := p / plainStep * plainStep
		if m.drawn && step <= m.lastPct {
			return
		}
		m.lastPct = step
	} else if m.drawn && !force && now.Sub(m.lastDraw) < plainEvery {
		return
	}
	m.write(plainLine(s) + "\n")
	m.drawn, m.lastDraw = true, now
}

// write writes to w; progress is best effort, so after a few failures it
// stops trying.
func (m *meter) write(s string) {
	if m.writeErrs > 3 {
		return
	}
	if _, err := io.WriteString(m.w, s); err != nil {
		m.writeErrs++
	}
}
