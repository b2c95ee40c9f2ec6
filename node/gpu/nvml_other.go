//go:build !linux || !cgo

package gpu

import "log/slog"

// probeGPUs reports zero GPUs: NVML needs linux and cgo.
func probeGPUs(log *slog.Logger) ([]GPU, string) {
	log.Debug("nvml unavailable", "err", "built without linux and cgo")
	return nil, ""
}
