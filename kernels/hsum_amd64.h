// HSUM8R(y, x, t) leaves hsum8 of the 8 lanes of y in lane 0 of x, the
// low half of y: upper half onto lower (lane k is a[k]+a[k+4]), lanes 2,3
// onto 0,1, lane 1 onto 0, which is hsum8's (r0+r2)+(r1+r3). Clobbers t.
#define HSUM8R(y, x, t) \
	VEXTRACTF128 $1, y, t; \
	VADDPS       t, x, x; \
	VMOVHLPS     x, x, t; \
	VADDPS       t, x, x; \
	VMOVSHDUP    x, t; \
	VADDSS       t, x, x

// HSUM8 is HSUM8R of Y0 into X0, clobbering X1. Shared by the kernels of
// dot_amd64.s, the BF16 kernels and the K-quants' 4-token kernels.
#define HSUM8 HSUM8R(Y0, X0, X1)

// HSUMD8R(y, x, t) leaves the sum of the 8 int32 lanes of y in every lane
// of x, the low half of y. Clobbers t.
#define HSUMD8R(y, x, t) \
	VEXTRACTI128 $1, y, t; \
	VPADDD       t, x, x; \
	VPSHUFD      $0x4e, x, t; \
	VPADDD       t, x, x; \
	VPSHUFD      $0xb1, x, t; \
	VPADDD       t, x, x

// HMAX8 leaves the largest of the 8 lanes of Y0 in every lane of X0,
// clobbering X1. Shared by maxAVX2 and the Q8_K quantizer.
#define HMAX8 \
	VEXTRACTF128 $1, Y0, X1; \
	VMAXPS       X1, X0, X0; \
	VPERMILPS    $0x4e, X0, X1; \
	VMAXPS       X1, X0, X0; \
	VPERMILPS    $0xb1, X0, X1; \
	VMAXPS       X1, X0, X0
