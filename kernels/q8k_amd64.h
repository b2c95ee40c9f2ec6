// Q8KSCALE sets a Q8_K block's scales from its largest magnitude's first
// element, x[AX] of the block at SI: X4 = iscale = -127/max and d =
// 1/iscale, stored at (DI) (quantizeQ8_KAVX512 and quantizeQ8_KAVX2).
// Clobbers AX, X3 and X5.
#define Q8KSCALE \
	VMOVSS (SI)(AX*4), X3; \
	MOVL   $0xc2fe0000, AX; \
	VMOVD  AX, X4; \
	VDIVSS X3, X4, X4; \
	MOVL   $0x3f800000, AX; \
	VMOVD  AX, X5; \
	VDIVSS X4, X5, X5; \
	VMOVSS X5, (DI)
