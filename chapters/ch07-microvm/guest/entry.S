/* The tiny guest's first instruction. The VMM entered 64-bit mode for us and, as Linux's
 * 64-bit boot protocol says, put the address of `struct boot_params` (the zero page) in %rsi
 * and a stack in %rsp. */
    .code64
    .section .text.entry, "ax"
    .globl _start
_start:
// ANCHOR: entry
    mov   %rsi, %rdi          /* boot_params becomes guest_main's first argument */
    call  guest_main
    /* Power off: pulse the reset line through the i8042 keyboard controller, as Linux does
     * with reboot=k. There is no real power button on this machine: the VMM stops here. */
1:  mov   $I8042_RESET_CMD, %al
    out   %al, $I8042_COMMAND_PORT
    hlt
    jmp   1b
// ANCHOR_END: entry
    .section .note.GNU-stack,"",@progbits
