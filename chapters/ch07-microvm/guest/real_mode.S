/* Stage 1: "Hello, KVM". 16-bit real mode, exactly as a CPU starts: no GDT, no paging.
 * The VMM put 2 in %ax and 3 in %bx; we print "Hi ", their sum, a newline, and halt.
 * Every `out` to 0x3f8 leaves the guest as a KVM_EXIT_IO the VMM must answer. */
    .code16
    .section .text
    .globl _start
_start:
// ANCHOR: real_mode
    mov  %ax, %cx
    add  %bx, %cx          /* 2 + 3, from registers the VMM set */
    add  $'0', %cl         /* as an ASCII digit */
    mov  $COM1_PORT, %dx   /* COM1's data register */
    mov  $'H', %al
    out  %al, (%dx)        /* -> KVM_EXIT_IO, port 0x3f8, 1 byte: 'H' */
    mov  $'i', %al
    out  %al, (%dx)
    mov  $' ', %al
    out  %al, (%dx)
    mov  %cl, %al
    out  %al, (%dx)
    mov  $'\n', %al
    out  %al, (%dx)
    hlt                    /* -> KVM_EXIT_HLT: no interrupt controller, so the VMM hears it */
// ANCHOR_END: real_mode
    .section .note.GNU-stack,"",@progbits
