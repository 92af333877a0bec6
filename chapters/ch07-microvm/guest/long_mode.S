/* Stage 2: the VMM built a GDT, page tables, set CR0/CR4/EFER and jumped here in 64-bit
 * mode: no BIOS, no real-mode trampoline. We print one line and halt. The code is
 * position-independent (%rip-relative), so the VMM may load it anywhere. */
    .code64
    .section .text
    .globl _start
_start:
// ANCHOR: long_mode
    mov   $COM1_PORT, %dx
    lea   message(%rip), %rsi  /* %rip-relative addressing exists only in 64-bit mode */
1:  lodsb                      /* %al = *%rsi++ */
    test  %al, %al
    jz    2f
    out   %al, (%dx)
    jmp   1b
2:  hlt
message:
    .asciz "Hello from 64-bit long mode\n"
// ANCHOR_END: long_mode
    .section .note.GNU-stack,"",@progbits
