// Package gpu is a node's hardware inventory: which GPUs it has and how much
// of their memory is free, how many CPU cores, how much RAM, and the NVIDIA
// driver version. A node probes it at start-up, reports it to the cluster and
// uses [Inventory.Capacity] as the default number of weight bytes it offers.
//
// [NVML] is the real [Prober]. It asks NVML (through go-nvml, which loads
// libnvidia-ml.so.1 with dlopen) for GPUs when built on linux with cgo, and
// reports zero GPUs otherwise, so CGO_ENABLED=0 builds still work. A machine
// without the NVIDIA library or without GPUs has zero GPUs; that is not an
// error. [Fake] returns a fixed inventory for tests.
//
// The package is independent of the cluster types: node converts an
// [Inventory] into whatever the cluster wants. It may import the standard
// library and github.com/NVIDIA/go-nvml only, and only the linux && cgo files
// import go-nvml.
package gpu
