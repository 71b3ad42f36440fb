/*
 * ctx_aarch64.S — coroutine context switch for AArch64, AAPCS64 (Linux).
 *
 *   void *ch_ctx_jump(void **save_sp, void *to_sp, void *arg);
 *   void *ch_ctx_make(void *stack_top, void (*entry)(void *arg));
 *   (trampoline) ch_ctx_start: calls entry(arg) on a fresh stack; traps if entry returns.
 *
 * References: Procedure Call Standard for the Arm 64-bit Architecture (AAPCS64), §6.1.1 (x19-x28 are
 * callee-saved; x29 is the frame pointer, x30 the link register), §6.1.2 (only the low 64 bits of
 * v8-v15, i.e. d8-d15, are callee-saved), §6.4 (SP must be 16-byte aligned at every public interface;
 * the hardware checks alignment on SP-relative accesses when SCTLR_EL1.SA0 is set, as on Linux), and
 * the FPCR: its rounding-mode and trap-enable fields are preserved across calls by convention (only
 * fesetround-like functions change them), so they are part of a coroutine's state here.
 *
 * Saved frame (what `save_sp` points to, lowest address first), 176 bytes:
 *
 *     offset  contents
 *       0     x19, x20         (fresh context: x19 = entry function)
 *      16     x21, x22
 *      32     x23, x24
 *      48     x25, x26
 *      64     x27, x28
 *      80     x29 (fp), x30 (lr)   (fresh context: fp = 0, lr = ch_ctx_start)
 *      96     d8,  d9
 *     112     d10, d11
 *     128     d12, d13
 *     144     d14, d15
 *     160     FPCR             (8 bytes, mrs)
 *     168     padding          (keeps the frame a multiple of 16)
 *
 * Invariants:
 *   I1  SP is 16-byte aligned at all times (AAPCS64 §6.4): the frame is 176 = 11 * 16 bytes and
 *       ch_ctx_make aligns the top down to 16.
 *   I2  Only callee-saved state is saved; caller-saved registers are dead across the call by the ABI.
 *   I3  The signal mask is never touched and no syscall is made.
 *   I4  `arg` travels in x2 -> x0: it is both the value the resumed ch_ctx_jump returns and the first
 *       argument a fresh context's ch_ctx_start passes to entry.
 *   I5  FPCR is per coroutine (rounding mode isolation); FPSR status bits are not preserved.
 *   Not handled: pointer authentication (PAC) and BTI. Debian does not build with them by default; a
 *   PAC-enabled build would need to sign x30 consistently across stacks.
 */

#if defined(__aarch64__)

        .text

/* void *ch_ctx_jump(void **save_sp [x0], void *to_sp [x1], void *arg [x2]) */
        .globl  ch_ctx_jump
        .hidden ch_ctx_jump
        .type   ch_ctx_jump, %function
        .p2align 4
ch_ctx_jump:
        .cfi_startproc
        sub     sp, sp, #176            /* reserve the frame; SP stays 16-aligned (I1)             */
        stp     x19, x20, [sp, #0]      /* callee-saved general registers ...                      */
        stp     x21, x22, [sp, #16]
        stp     x23, x24, [sp, #32]
        stp     x25, x26, [sp, #48]
        stp     x27, x28, [sp, #64]
        stp     x29, x30, [sp, #80]     /* frame pointer and return address                        */
        stp     d8,  d9,  [sp, #96]     /* low halves of v8-v15 ...                                */
        stp     d10, d11, [sp, #112]
        stp     d12, d13, [sp, #128]
        stp     d14, d15, [sp, #144]
        mrs     x9, fpcr                /* x9 is caller-saved scratch: read the FP control register */
        str     x9, [sp, #160]          /* ... and keep it with the frame (I5)                     */
        mov     x9, sp                  /* SP cannot be stored directly; go through x9             */
        str     x9, [x0]                /* *save_sp = sp: the caller is now fully saved            */

        mov     sp, x1                  /* switch stacks: now on the target's stack                */
        ldr     x9, [sp, #160]          /* the target's FPCR                                       */
        msr     fpcr, x9                /* restore it (rounding mode, flush-to-zero, traps)        */
        ldp     x19, x20, [sp, #0]      /* restore callee-saved general registers ...              */
        ldp     x21, x22, [sp, #16]
        ldp     x23, x24, [sp, #32]
        ldp     x25, x26, [sp, #48]
        ldp     x27, x28, [sp, #64]
        ldp     x29, x30, [sp, #80]     /* x30 = where the target resumes                          */
        ldp     d8,  d9,  [sp, #96]     /* ... and the FP callee-saved registers                   */
        ldp     d10, d11, [sp, #112]
        ldp     d12, d13, [sp, #128]
        ldp     d14, d15, [sp, #144]
        add     sp, sp, #176            /* pop the frame                                           */
        mov     x0, x2                  /* return value / fresh entry's argument = arg (I4)        */
        ret                             /* branch to x30                                           */
        .cfi_endproc
        .size   ch_ctx_jump, .-ch_ctx_jump

/* void *ch_ctx_make(void *stack_top [x0], void (*entry)(void *) [x1])
 * Builds the frame above just below stack_top so that ch_ctx_jump "returns" into ch_ctx_start with
 * x19 = entry. Returns the new saved stack pointer. */
        .globl  ch_ctx_make
        .hidden ch_ctx_make
        .type   ch_ctx_make, %function
        .p2align 4
ch_ctx_make:
        .cfi_startproc
        and     x0, x0, #~15            /* align the top down to 16 (I1)                           */
        sub     x0, x0, #16             /* 16 bytes of headroom above the frame                    */
        sub     x0, x0, #176            /* the frame itself                                        */
        stp     x1,  xzr, [x0, #0]      /* x19 = entry, x20 = 0                                    */
        stp     xzr, xzr, [x0, #16]     /* x21, x22                                                */
        stp     xzr, xzr, [x0, #32]     /* x23, x24                                                */
        stp     xzr, xzr, [x0, #48]     /* x25, x26                                                */
        stp     xzr, xzr, [x0, #64]     /* x27, x28                                                */
        adr     x9, ch_ctx_start        /* PC-relative address of the trampoline                   */
        stp     xzr, x9,  [x0, #80]     /* x29 = 0 (ends frame chains), x30 = trampoline           */
        stp     xzr, xzr, [x0, #96]     /* d8-d15 = 0                                              */
        stp     xzr, xzr, [x0, #112]
        stp     xzr, xzr, [x0, #128]
        stp     xzr, xzr, [x0, #144]
        mrs     x9, fpcr                /* inherit the creator's FP control, as a new thread does  */
        stp     x9,  xzr, [x0, #160]    /* FPCR and padding                                        */
        ret                             /* x0 = saved stack pointer for ch_ctx_jump's to_sp        */
        .cfi_endproc
        .size   ch_ctx_make, .-ch_ctx_make

/* Trampoline: entered by ch_ctx_jump's `ret` with x0 = arg, x19 = entry, SP 16-aligned. */
        .type   ch_ctx_start, %function
        .p2align 4
ch_ctx_start:
        .cfi_startproc
        .cfi_undefined x30              /* outermost frame: unwinders stop here                    */
        blr     x19                     /* entry(arg); must switch away for good, never return     */
        bl      ch_ctx_returned         /* it returned: report and abort (does not return)         */
        brk     #0                      /* unreachable; trap                                       */
        .cfi_endproc
        .size   ch_ctx_start, .-ch_ctx_start

#endif /* __aarch64__ */

        .section .note.GNU-stack,"",%progbits   /* the stack is not executable */
