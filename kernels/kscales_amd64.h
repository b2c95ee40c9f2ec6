// KSCALES unpacks the 6-bit scales and mins of the K-quant super-block at
// SI (12 bytes at SI+4, as dot.go's scaleMinK4 reads them) into R8 (the 8
// scales, a byte each) and R10 (the 8 mins): for j < 4, s[j]&63 and
// s[j+4]&63; for j >= 4, s[j+4]&15 | (s[j-4]>>6)<<4 and s[j+4]>>4 |
// (s[j]>>6)<<4. Clobbers AX, BX, DX, R9 and R11. Shared by the Q4_K and
// Q5_K kernels.
#define KSCALES \
	MOVL 4(SI), AX; \
	MOVL 8(SI), BX; \
	MOVL 12(SI), DX; \
	MOVL AX, R8; \
	ANDL $0x3f3f3f3f, R8; \
	MOVL DX, R9; \
	ANDL $0x0f0f0f0f, R9; \
	MOVL AX, R11; \
	SHRL $6, R11; \
	ANDL $0x03030303, R11; \
	SHLL $4, R11; \
	ORL  R11, R9; \
	SHLQ $32, R9; \
	ORQ  R9, R8; \
	MOVL BX, R10; \
	ANDL $0x3f3f3f3f, R10; \
	MOVL DX, R11; \
	SHRL $4, R11; \
	ANDL $0x0f0f0f0f, R11; \
	MOVL BX, R9; \
	SHRL $6, R9; \
	ANDL $0x03030303, R9; \
	SHLL $4, R9; \
	ORL  R9, R11; \
	SHLQ $32, R11; \
	ORQ  R11, R10
