//go:build linux && cgo

package gpu

import (
	"fmt"
	"log/slog"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
)

// probeGPUs lists the GPUs NVML sees and the driver version.
func probeGPUs(log *slog.Logger) ([]GPU, string) {
	return probeNVML(globalNVML{}, log)
}

// nvmlLib is the part of nvml.Interface a probe uses; the go-nvml mock
// satisfies it in tests.
type nvmlLib interface {
	Init() nvml.Return
	Shutdown() nvml.Return
	SystemGetDriverVersion() (string, nvml.Return)
	DeviceGetCount() (int, nvml.Return)
	DeviceGetHandleByIndex(int) (nvml.Device, nvml.Return)
}

// globalNVML is go-nvml's process-wide library. Every probe shares it
// (rather than nvml.New per probe) because loading a library instance
// rewrites go-nvml's package state, which only the shared instance's lock
// guards; its Init and Shutdown are reference counted.
type globalNVML struct{}

func (globalNVML) Init() nvml.Return     { return nvml.Init() }
func (globalNVML) Shutdown() nvml.Return { return nvml.Shutdown() }
func (globalNVML) SystemGetDriverVersion() (string, nvml.Return) {
	return nvml.SystemGetDriverVersion()
}
func (globalNVML) DeviceGetCount() (int, nvml.Return) { return nvml.DeviceGetCount() }
func (globalNVML) DeviceGetHandleByIndex(i int) (nvml.Device, nvml.Return) {
	return nvml.DeviceGetHandleByIndex(i)
}

// probeNVML lists lib's GPUs and driver version. A library that cannot be
// loaded or initialised, or panics, means zero GPUs (logged at Debug); a
// device that cannot be queried is skipped (logged at Warn).
func probeNVML(lib nvmlLib, log *slog.Logger) (gpus []GPU, driver string) {
	defer func() {
		if r := recover(); r != nil {
			log.Debug("nvml unavailable", "err", fmt.Sprint(r))
			gpus, driver = nil, ""
		}
	}()
	if ret := lib.Init(); ret != nvml.SUCCESS {
		log.Debug("nvml unavailable", "err", ret.Error())
		return nil, ""
	}
	defer func() {
		if ret := lib.Shutdown(); ret != nvml.SUCCESS {
			log.Warn("nvml shutdown", "err", ret.Error())
		}
	}()

	driver, ret := lib.SystemGetDriverVersion()
	if ret != nvml.SUCCESS {
		log.Warn("nvml driver version", "err", ret.Error())
		driver = ""
	}
	count, ret := lib.DeviceGetCount()
	if ret != nvml.SUCCESS {
		log.Warn("nvml device count", "err", ret.Error())
		return nil, driver
	}
	for i := range count {
		g, err := probeDevice(lib, i)
		if err != nil {
			log.Warn("skip gpu", "gpu", i, "err", err)
			continue
		}
		gpus = append(gpus, g)
	}
	return gpus, driver
}

// probeDevice queries device i.
func probeDevice(lib nvmlLib, i int) (GPU, error) {
	dev, ret := lib.DeviceGetHandleByIndex(i)
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("handle: %w", ret)
	}
	name, ret := dev.GetName()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("name: %w", ret)
	}
	uuid, ret := dev.GetUUID()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("uuid: %w", ret)
	}
	mem, ret := dev.GetMemoryInfo()
	if ret != nvml.SUCCESS {
		return GPU{}, fmt.Errorf("memory info: %w", ret)
	}
	return GPU{Index: i, Name: name, UUID: uuid, MemoryTotal: mem.Total, MemoryFree: mem.Free}, nil
}
