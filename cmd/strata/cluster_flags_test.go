package main

import "testing"

func TestParseBytes(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true}, {"123", 123, true}, {"600K", 600 << 10, true}, {"1.5G", 3 << 29, true},
		{"12GiB", 12 << 30, true}, {"2m", 2 << 20, true}, {"1T", 1 << 40, true},
		{"abc", 0, false}, {"-1G", 0, false}, {"G", 0, false},
	} {
		got, err := parseBytes(tc.in)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("parseBytes(%q) = %d, %v; want %d, ok %v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}
