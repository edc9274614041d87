#include "textflag.h"

// func pauseLoop(n uint32)
TEXT ·pauseLoop(SB), NOSPLIT, $0-4
	MOVL	n+0(FP), CX
loop:
	TESTL	CX, CX
	JZ	done
	PAUSE
	DECL	CX
	JMP	loop
done:
	RET
