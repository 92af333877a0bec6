/* The tiny guest: a freestanding 64-bit program that boots like a Linux kernel.
 *
 * It finds everything through `struct boot_params` (the "zero page"), exactly where Linux finds
 * it: the command line, the e820 memory map and the initrd. Our initrd is not a filesystem but
 * the input of a function: the guest computes its CRC-32 and prints it, the VM version of a
 * serverless function call. Then it powers off through the i8042.
 *
 * KVM on this course's hosts *emulates* every guest instruction (PVM, ~2 M instructions/s), and
 * the emulator knows no SSE or x87: so general-purpose registers only (-mgeneral-regs-only),
 * no floating point, no libc. Each byte printed is one exit to the VMM (~8 µs): keep it short.
 *
 * The addresses below come from ../src/layout.rs, via -D flags from build.rs. */

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long u64;

/* Offsets in struct boot_params (Linux: Documentation/arch/x86/zero-page.rst). */
#define BP_E820_ENTRIES  0x1e8   /* u8: how many e820 entries follow */
#define BP_RAMDISK_IMAGE 0x218   /* u32: initrd address */
#define BP_RAMDISK_SIZE  0x21c   /* u32: initrd size */
#define BP_CMD_LINE_PTR  0x228   /* u32: command line address */
#define BP_E820_TABLE    0x2d0   /* 20-byte entries: u64 addr, u64 size, u32 type */
#define E820_RAM 1

/* gcc may turn loops into calls to these, even with -ffreestanding. */
void *memset(void *dst, int c, u64 n) { u8 *d = dst; while (n--) *d++ = (u8)c; return dst; }
void *memcpy(void *dst, const void *src, u64 n) {
    u8 *d = dst; const u8 *s = src; while (n--) *d++ = *s++; return dst;
}

// ANCHOR: io
static inline void outb(u16 port, u8 value) {
    __asm__ volatile("outb %0, %1" : : "a"(value), "Nd"(port));
}

static inline u8 inb(u16 port) {
    u8 value;
    __asm__ volatile("inb %1, %0" : "=a"(value) : "Nd"(port));
    return value;
}

/* A real 8250 driver would wait for "transmitter empty" (read port 0x3fd) before each byte;
 * the VMM's UART is always ready, so we save that second exit per byte. */
static void putc_serial(char c) { outb(COM1_PORT, (u8)c); }

/* Input: poll the line status register (COM1 + 5) until bit 0, "data ready", is set, then read
 * the receive buffer (COM1 + 0). Each poll is one exit to the VMM, which is also when it moves
 * the next queued byte into the UART. (Linux instead enables the "received data" interrupt in
 * the IER and sleeps in hlt until IRQ 4; our guest has no IDT to take interrupts with.) */
#define COM1_LSR (COM1_PORT + 5)
#define LSR_DATA_READY 0x01
static u8 getc_serial(void) {
    while (!(inb(COM1_LSR) & LSR_DATA_READY)) __asm__ volatile("pause");
    return inb(COM1_PORT);
}
// ANCHOR_END: io

static void puts(const char *s) { while (*s) putc_serial(*s++); }

static void put_hex(u64 v, int digits) {
    puts("0x");
    for (int i = digits - 1; i >= 0; i--) putc_serial("0123456789abcdef"[(v >> (i * 4)) & 0xf]);
}

static void put_dec(u64 v) {
    char buf[20];
    int n = 0;
    do { buf[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    while (n) putc_serial(buf[--n]);
}

/* Is `word` (or `word=...`) one of the space-separated words of the command line? Returns a
 * pointer to its value (after '='), to "" for a bare word, or 0. */
static const char *cmdline_find(const char *cmdline, const char *word) {
    const char *p = cmdline;
    while (*p) {
        while (*p == ' ') p++;
        const char *w = word, *q = p;
        while (*w && *q == *w) { w++; q++; }
        if (!*w && (*q == '=' || *q == ' ' || !*q)) return *q == '=' ? q + 1 : q;
        while (*p && *p != ' ') p++;
    }
    return 0;
}

static int value_is(const char *value, const char *want) {
    if (!value) return 0;
    while (*want && *value == *want) { value++; want++; }
    return !*want && (*value == ' ' || !*value);
}

// ANCHOR: crc32
/* CRC-32 (IEEE 802.3, as in zlib and Ethernet), four bits at a time: a 16-entry table is
 * cheap to carry, and ~12 instructions a byte is fast enough even when emulated. */
static u32 crc32(const u8 *data, u32 len) {
    static const u32 table[16] = {
        0x00000000, 0x1db71064, 0x3b6e20c8, 0x26d930ac, 0x76dc4190, 0x6b6b51f4,
        0x4db26158, 0x5005713c, 0xedb88320, 0xf00f9344, 0xd6d6a3e8, 0xcb61b38c,
        0x9b64c2b0, 0x86d3d2d4, 0xa00ae278, 0xbdbdf21c,
    };
    u32 crc = 0xffffffff;
    for (u32 i = 0; i < len; i++) {
        crc = (crc >> 4) ^ table[(crc ^ data[i]) & 0xf];
        crc = (crc >> 4) ^ table[(crc ^ (data[i] >> 4)) & 0xf];
    }
    return ~crc;
}
// ANCHOR_END: crc32

/* The ways to misbehave that the tests (and the book's "try breaking it") ask for. */
static void misbehave(const char *fault) {
    if (value_is(fault, "mmio")) {
        /* Mapped by the page tables, backed by nothing: KVM_EXIT_MMIO, and no device answers. */
        puts("fault: reading unbacked memory\n");
        (void)*(volatile u32 *)UNBACKED_PROBE_ADDR;
    } else if (value_is(fault, "triple")) {
        /* Not mapped at all: #PF, no IDT to deliver it -> #DF -> triple fault -> shutdown. */
        puts("fault: touching an unmapped address\n");
        *(volatile u32 *)UNMAPPED_VIRT_ADDR = 1;
    } else if (value_is(fault, "spin")) {
        puts("fault: spinning forever\n");
        for (;;) __asm__ volatile("");
    }
}

// ANCHOR: echo
/* task=echo: a console session. Every byte typed at the host comes back upper-cased (Enter as a
 * new line) until Ctrl-D. The host's terminal is in raw mode, so this *is* the echo you see. */
#define CTRL_D 0x04
#define COM1_IER (COM1_PORT + 1)
#define IER_RECEIVED_DATA 0x01
static void echo(void) {
    /* Ask for the "received data" interrupt, as Linux's 8250 driver does. We still poll (no
     * IDT, and interrupts stay off), but the VMM now raises IRQ 4 for each byte it gives us. */
    outb(COM1_IER, IER_RECEIVED_DATA);
    puts("echo: type, Ctrl-D to end\n");
    u64 count = 0;
    for (;;) {
        u8 c = getc_serial();
        if (c == CTRL_D) break;
        count++;
        if (c == '\r' || c == '\n') putc_serial('\n');
        else putc_serial(c >= 'a' && c <= 'z' ? c - 32 : c);
    }
    puts("\necho: ");
    put_dec(count);
    puts(" bytes\n");
}
// ANCHOR_END: echo

// ANCHOR: main
void guest_main(const u8 *boot_params) {
    puts("boxlab guest: up in 64-bit mode\n");

    const char *cmdline = (const char *)(u64)*(const u32 *)(boot_params + BP_CMD_LINE_PTR);
    puts("cmdline: '");
    puts(cmdline);
    puts("'\n");

    /* A snapshot point: the VMM may save the whole machine here and resume it later. */
    if (cmdline_find(cmdline, "ready")) outb(READY_PORT, 1);

    u64 ram = 0;
    u8 entries = boot_params[BP_E820_ENTRIES];
    for (u8 i = 0; i < entries; i++) {
        const u8 *e = boot_params + BP_E820_TABLE + 20 * i;
        if (*(const u32 *)(e + 16) == E820_RAM) ram += *(const u64 *)(e + 8);
    }
    puts("ram: ");
    put_dec(ram >> 10);
    puts(" KiB in ");
    put_dec(entries);
    puts(" e820 entries\n");

    misbehave(cmdline_find(cmdline, "fault"));

    const u8 *input = (const u8 *)(u64)*(const u32 *)(boot_params + BP_RAMDISK_IMAGE);
    u32 len = *(const u32 *)(boot_params + BP_RAMDISK_SIZE);
    puts("input: ");
    put_dec(len);
    puts(" bytes at ");
    put_hex((u64)input, 6);
    putc_serial('\n');

    /* The "function": input (the initrd) -> output (the serial port). */
    const char *task = cmdline_find(cmdline, "task");
    if (!task || value_is(task, "crc32")) {
        puts("crc32: ");
        put_hex(crc32(input, len), 8);
        putc_serial('\n');
    } else if (value_is(task, "upper")) {
        puts("upper: ");
        for (u32 i = 0; i < len; i++)
            putc_serial(input[i] >= 'a' && input[i] <= 'z' ? input[i] - 32 : input[i]);
        putc_serial('\n');
    } else if (value_is(task, "echo")) {
        echo();
    } else {
        puts("unknown task (try task=crc32, task=upper or task=echo)\n");
    }
    puts("bye: powering off via the i8042\n");
}
// ANCHOR_END: main
