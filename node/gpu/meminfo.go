package gpu

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"
)

// ErrMemInfo is wrapped by every error ParseMemInfo returns for malformed
// input (not for read errors).
var ErrMemInfo = errors.New("malformed meminfo")

// ParseMemInfo reads the linux /proc/meminfo format ("MemTotal:  16318540 kB"
// per line) and returns MemTotal and MemAvailable in bytes. MemAvailable is
// optional (kernels before 3.14 lack it) and 0 when absent; MemTotal is
// required and must be positive. Both must be in kB and appear at most once;
// other lines are ignored as long as they have the "Key: value" shape.
func ParseMemInfo(r io.Reader) (total, available uint64, err error) {
	var haveTotal, haveAvailable bool
	sc := bufio.NewScanner(r)
	for line := 1; sc.Scan(); line++ {
		text := sc.Text()
		if strings.TrimSpace(text) == "" {
			continue
		}
		key, value, ok := strings.Cut(text, ":")
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return 0, 0, fmt.Errorf("%w: line %d: want \"Key: value\", got %q", ErrMemInfo, line, text)
		}
		var dst *uint64
		var seen *bool
		switch key {
		case "MemTotal":
			dst, seen = &total, &haveTotal
		case "MemAvailable":
			dst, seen = &available, &haveAvailable
		default:
			continue
		}
		if *seen {
			return 0, 0, fmt.Errorf("%w: line %d: duplicate %s", ErrMemInfo, line, key)
		}
		*seen = true
		n, err := parseKB(value)
		if err != nil {
			return 0, 0, fmt.Errorf("%w: line %d: %s: %v", ErrMemInfo, line, key, err)
		}
		*dst = n
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return 0, 0, fmt.Errorf("%w: line longer than %d bytes", ErrMemInfo, bufio.MaxScanTokenSize)
	} else if err != nil {
		return 0, 0, fmt.Errorf("read meminfo: %w", err)
	}
	if !haveTotal {
		return 0, 0, fmt.Errorf("%w: no MemTotal", ErrMemInfo)
	}
	if total == 0 {
		return 0, 0, fmt.Errorf("%w: MemTotal is 0", ErrMemInfo)
	}
	return total, available, nil
}

// parseKB parses " 16318540 kB" into bytes.
func parseKB(s string) (uint64, error) {
	fields := strings.Fields(s)
	if len(fields) != 2 || fields[1] != "kB" {
		return 0, fmt.Errorf("want \"<n> kB\", got %q", strings.TrimSpace(s))
	}
	n, err := strconv.ParseUint(fields[0], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("bad number %q", fields[0])
	}
	if n > math.MaxUint64/1024 {
		return 0, fmt.Errorf("%d kB overflows", n)
	}
	return n * 1024, nil
}
