//go:build amd64 && !purego

package kernels

// dotQ4_KQ8_Kx16PackedAVX2 is dotQ4_KQ8_Kx16PackedAVX512 for CPUs with
// AVX2 but not AVX-512 (q4k16_amd64.s): dotQ4_KQ8_K of groups*16 rows
// packed by packK16 (group g's nb super-blocks at w + g*nb*q4KPacked) into
// dst[16g+r], with x's records from packedSumsQ8_K at xs, each result
// bitwise the row kernel's. It runs a group's super-block 8 rows at a time,
// row r of the 8 in lane r, so that the scales, mins and activations are
// read once for 8 rows and the weights stream from one run of memory;
// the row kernel (dotQ4_KQ8_KAVX2) unpacks each row's scales itself.
//
//go:noescape
func dotQ4_KQ8_Kx16PackedAVX2(dst *float32, w *byte, x *byte, xs *byte, nb int, groups int)
