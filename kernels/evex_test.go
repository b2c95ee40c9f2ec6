//go:build amd64 && !purego

package kernels

import (
	"debug/elf"
	"debug/gosym"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// TestAVX2KernelsNoEVEX disassembles every assembly function of this
// package named for AVX2 (those a CPU without AVX-512 runs) in the test
// binary and fails on any EVEX-encoded, that is AVX-512, instruction. The
// Go assembler picks the EVEX form silently where an operand combination
// exists only there (VPSRLW of a memory operand, say), and the AVX-512-off
// pass of make test cannot show it on a CPU that has AVX-512: the
// instruction still runs. It needs objdump (binutils, which gcc brings).
func TestAVX2KernelsNoEVEX(t *testing.T) {
	objdump, err := exec.LookPath("objdump")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("objdump (binutils) is not installed")
		}
		t.Skip("no objdump here")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	f, err := elf.Open(exe)
	if err != nil {
		t.Skipf("the test binary is not ELF: %v", err)
	}
	defer f.Close()
	// Test binaries carry no symbol table, but the runtime's own one,
	// .gopclntab, names every function with its extent.
	text, pcln := f.Section(".text"), f.Section(".gopclntab")
	if text == nil || pcln == nil {
		t.Fatal("the test binary has no .text or .gopclntab")
	}
	data, err := pcln.Data()
	if err != nil {
		t.Fatal(err)
	}
	tab, err := gosym.NewTable(nil, gosym.NewLineTable(data, text.Addr))
	if err != nil {
		t.Fatal(err)
	}
	evex := regexp.MustCompile(`^\s*[0-9a-f]+:\s+62 `) // 0x62 opens an EVEX prefix in 64-bit mode
	const pkg = "github.com/strata-llm/strata/kernels."
	checked := 0
	for _, fn := range tab.Funcs {
		name := strings.TrimSuffix(fn.Name, ".abi0")
		if !strings.HasPrefix(name, pkg) || !strings.HasSuffix(name, "AVX2") || fn.End <= fn.Entry {
			continue
		}
		out, err := exec.Command(objdump, "-d",
			fmt.Sprintf("--start-address=%#x", fn.Entry), fmt.Sprintf("--stop-address=%#x", fn.End), exe).Output()
		if err != nil {
			t.Fatalf("objdump %s: %v", name, err)
		}
		for _, line := range strings.Split(string(out), "\n") {
			if evex.MatchString(line) {
				t.Errorf("%s has an AVX-512 (EVEX) instruction:%s", strings.TrimPrefix(name, pkg), line)
			}
		}
		checked++
	}
	t.Logf("%d AVX2 assembly functions checked", checked)
	if checked < 20 {
		t.Fatalf("found only %d AVX2 assembly functions in the test binary", checked)
	}
}
