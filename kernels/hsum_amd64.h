// HSUM8 leaves hsum8 of Y0 in X0 lane 0: upper half onto lower (lane k
// is a[k]+a[k+4]), lanes 2,3 onto 0,1, lane 1 onto 0, which is hsum8's
// (r0+r2)+(r1+r3). Clobbers X1. Shared by the kernels of dot_amd64.s and
// bf16_amd64.s.
#define HSUM8 \
	VEXTRACTF128 $1, Y0, X1; \
	VADDPS       X1, X0, X0; \
	VMOVHLPS     X0, X0, X1; \
	VADDPS       X1, X0, X0; \
	VMOVSHDUP    X0, X1; \
	VADDSS       X1, X0, X0
