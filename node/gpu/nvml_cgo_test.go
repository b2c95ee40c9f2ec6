//go:build linux && cgo

package gpu

import (
	"bytes"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"testing"

	"github.com/NVIDIA/go-nvml/pkg/nvml"
	"github.com/NVIDIA/go-nvml/pkg/nvml/mock"
)

// fakeDevice is a mock device; failOn names the query that fails.
func fakeDevice(i int, failOn string) *mock.Device {
	ret := func(q string) nvml.Return {
		if q == failOn {
			return nvml.ERROR_UNKNOWN
		}
		return nvml.SUCCESS
	}
	return &mock.Device{
		GetNameFunc: func() (string, nvml.Return) { return "NVIDIA H200", ret("name") },
		GetUUIDFunc: func() (string, nvml.Return) { return fmt.Sprintf("GPU-%d", i), ret("uuid") },
		GetMemoryInfoFunc: func() (nvml.Memory, nvml.Return) {
			return nvml.Memory{Total: 140 << 30, Free: uint64(100+i) << 30}, ret("memory")
		},
	}
}

// fakeLib is a mock NVML with the given devices; failOn names the library
// call that fails or panics ("init", "init-panic", "count", "driver",
// "count-panic", "handle1").
func fakeLib(devs []*mock.Device, failOn string) *mock.Interface {
	return &mock.Interface{
		InitFunc: func() nvml.Return {
			switch failOn {
			case "init":
				return nvml.ERROR_LIBRARY_NOT_FOUND
			case "init-panic":
				panic("no libnvidia-ml")
			}
			return nvml.SUCCESS
		},
		ShutdownFunc: func() nvml.Return { return nvml.SUCCESS },
		SystemGetDriverVersionFunc: func() (string, nvml.Return) {
			if failOn == "driver" {
				return "", nvml.ERROR_UNKNOWN
			}
			return "570.86.15", nvml.SUCCESS
		},
		DeviceGetCountFunc: func() (int, nvml.Return) {
			switch failOn {
			case "count":
				return 0, nvml.ERROR_UNKNOWN
			case "count-panic":
				panic("boom")
			}
			return len(devs), nvml.SUCCESS
		},
		DeviceGetHandleByIndexFunc: func(i int) (nvml.Device, nvml.Return) {
			if failOn == fmt.Sprintf("handle%d", i) {
				return nil, nvml.ERROR_INVALID_ARGUMENT
			}
			return devs[i], nvml.SUCCESS
		},
	}
}

func h200(i int) GPU {
	return GPU{Index: i, Name: "NVIDIA H200", UUID: fmt.Sprintf("GPU-%d", i), MemoryTotal: 140 << 30, MemoryFree: uint64(100+i) << 30}
}

func TestProbeNVML(t *testing.T) {
	tests := []struct {
		name       string
		libFail    string
		devFail    map[int]string // device index -> failing query
		want       []GPU
		driver     string
		shutdowns  int
		wantLogs   []string
		noWarnings bool
	}{
		{name: "three devices", want: []GPU{h200(0), h200(1), h200(2)}, driver: "570.86.15", shutdowns: 1, noWarnings: true},
		{name: "library missing", libFail: "init", wantLogs: []string{`level=DEBUG msg="nvml unavailable"`}, noWarnings: true},
		{name: "init panics", libFail: "init-panic", wantLogs: []string{`level=DEBUG msg="nvml unavailable" err="no libnvidia-ml"`}, noWarnings: true},
		{name: "panic after init still shuts down", libFail: "count-panic", shutdowns: 1, wantLogs: []string{`level=DEBUG msg="nvml unavailable" err=boom`}},
		{name: "count fails", libFail: "count", driver: "570.86.15", shutdowns: 1, wantLogs: []string{`level=WARN msg="nvml device count"`}},
		{name: "driver fails", libFail: "driver", want: []GPU{h200(0), h200(1), h200(2)}, shutdowns: 1, wantLogs: []string{`level=WARN msg="nvml driver version"`}},
		{name: "handle fails", libFail: "handle1", want: []GPU{h200(0), h200(2)}, driver: "570.86.15", shutdowns: 1,
			wantLogs: []string{`level=WARN msg="skip gpu" gpu=1 err="handle: ERROR_INVALID_ARGUMENT"`}},
		{name: "device queries fail", devFail: map[int]string{0: "name", 1: "uuid", 2: "memory"}, driver: "570.86.15", shutdowns: 1,
			wantLogs: []string{`gpu=0 err="name: `, `gpu=1 err="uuid: `, `gpu=2 err="memory info: `}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var devs []*mock.Device
			for i := range 3 {
				devs = append(devs, fakeDevice(i, tt.devFail[i]))
			}
			lib := fakeLib(devs, tt.libFail)
			var buf bytes.Buffer
			log := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
			gpus, driver := probeNVML(lib, log)
			if !reflect.DeepEqual(gpus, tt.want) {
				t.Errorf("GPUs = %+v, want %+v", gpus, tt.want)
			}
			if driver != tt.driver {
				t.Errorf("driver = %q, want %q", driver, tt.driver)
			}
			if n := len(lib.ShutdownCalls()); n != tt.shutdowns {
				t.Errorf("Shutdown called %d times, want %d", n, tt.shutdowns)
			}
			logs := buf.String()
			for _, w := range tt.wantLogs {
				if !strings.Contains(logs, w) {
					t.Errorf("logs lack %q:\n%s", w, logs)
				}
			}
			if tt.noWarnings && strings.Contains(logs, "level=WARN") {
				t.Errorf("unexpected warning:\n%s", logs)
			}
		})
	}
}
