/* unit_probe.c - the probe engine over exact code shapes (the asm block below): each
 * shape runs in 4 threads while its probe is installed, every result must equal the C
 * reference before, during and after, callbacks must see the right arguments and
 * return values, counts must be exact once installed, and unsafe sites must be refused
 * with their reason. Its SIGTRAP and sync-signal handlers abort on any signal the
 * engine does not claim.
 * link: shim/probe/install_x86.c shim/probe/thunk_x86.c shim/probe/trap_x86.c
 * link: shim/probe/thread_stop_x86.c shim/probe/arena_x86.c shim/probe/decode_x86.c
 * link: shim/probe/reloc_x86.c -lZydis -lunwind */
#include <errno.h>
#include <execinfo.h>
#define UNW_LOCAL_ONLY
#include <libunwind.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <ucontext.h>
#include <unistd.h>

#include "check.h"
#include "probe.h"

#define THREADS 4
#define KONST 0x123456789ull

/* ---------------------------------------------------------------- Shapes */

/* Each shape is NAME .. NAME_end; uint64_t NAME(a, b, c, d) unless said otherwise.
 * c is always s_helper3's address, d = 1 + (a & 7). */
__asm__(
    ".pushsection .rodata\n"
    ".p2align 3\n"
    "s_konst: .quad 0x123456789\n"
    ".popsection\n"
    ".pushsection .text\n"

    /* a + 2b: endbr64, then a frame */
    ".p2align 4\n.globl s_endbr, s_endbr_end\ns_endbr:\n"
    "  endbr64\n  push %rbp\n  mov %rsp, %rbp\n  lea (%rdi,%rsi,2), %rax\n  pop %rbp\n  ret\ns_endbr_end:\n"

    /* KONST + a - b: a RIP-relative load is the first instruction */
    ".p2align 4\n.globl s_riprel, s_riprel_end\ns_riprel:\n"
    "  mov s_konst(%rip), %rax\n  add %rdi, %rax\n  sub %rsi, %rax\n  ret\ns_riprel_end:\n"
    ".p2align 4\n.globl s_riprel_far, s_riprel_far_end\ns_riprel_far:\n"
    "  mov s_konst(%rip), %rax\n  add %rdi, %rax\n  sub %rsi, %rax\n  ret\ns_riprel_far_end:\n"

    /* a ? a + 1 : b: a short jcc in the patched bytes, its target outside */
    ".p2align 4\n.globl s_jshort, s_jshort_end\ns_jshort:\n"
    "  test %rdi, %rdi\n  jz 1f\n  lea 1(%rdi), %rax\n  ret\n1:\n  mov %rsi, %rax\n  ret\ns_jshort_end:\n"

    /* |a - b| (signed compare): a near jcc (rel32) in the patched bytes */
    ".p2align 4\n.globl s_jnear, s_jnear_end\ns_jnear:\n"
    "  cmp %rsi, %rdi\n  {disp32} jl 1f\n  mov %rdi, %rax\n  sub %rsi, %rax\n  ret\n"
    "1:\n  mov %rsi, %rax\n  sub %rdi, %rax\n  ret\ns_jnear_end:\n"

    /* a + b: a short jmp whose target is inside the patched bytes */
    ".p2align 4\n.globl s_jinner, s_jinner_end\ns_jinner:\n"
    "  xor %eax, %eax\n  jmp 1f\n1:\n  add %rdi, %rax\n  add %rsi, %rax\n  ret\ns_jinner_end:\n"

    /* a - b after d turns of a loop that lies wholly in the patched bytes (head at byte 2) */
    ".p2align 4\n.globl s_jloop, s_jloop_end\ns_jloop:\n"
    "  xor %eax, %eax\n1:\n  dec %ecx\n  jnz 1b\n  add %rdi, %rax\n  sub %rsi, %rax\n  ret\ns_jloop_end:\n"
    /* the same loop with its head at byte 0: every pass would pass the entry */
    ".p2align 4\n.globl s_jloop0, s_jloop0_end\ns_jloop0:\n"
    "1:\n  dec %ecx\n  jnz 1b\n  mov %rdi, %rax\n  sub %rsi, %rax\n  ret\ns_jloop0_end:\n"

    /* 3a + b: push, then a call that ends the patched bytes */
    ".p2align 4\n.globl s_call, s_call_end\ns_call:\n"
    "  push %rbx\n  mov %rsi, %rbx\n  call s_helper3\n  add %rbx, %rax\n  pop %rbx\n  ret\ns_call_end:\n"
    ".p2align 4\n.globl s_helper3\ns_helper3:\n  lea (%rdi,%rdi,2), %rax\n  ret\n"

    /* 3a + b: the call is the first instruction */
    ".p2align 4\n.globl s_callfirst, s_callfirst_end\ns_callfirst:\n"
    "  call s_helper3\n  add %rsi, %rax\n  ret\ns_callfirst_end:\n"

    /* 3a + b: an indirect call that is not the last patched instruction */
    ".p2align 4\n.globl s_callind, s_callind_end\ns_callind:\n"
    "  call *%rdx\n  add %rsi, %rax\n  ret\ns_callind_end:\n"

    /* 2(a + b) through the stack: push/push/sub prologue */
    ".p2align 4\n.globl s_frame, s_frame_end\ns_frame:\n"
    "  push %rbx\n  push %r12\n  sub $24, %rsp\n  mov %rdi, (%rsp)\n  mov %rsi, 8(%rsp)\n"
    "  mov (%rsp), %rax\n  add 8(%rsp), %rax\n  add %rax, %rax\n  add $24, %rsp\n  pop %r12\n  pop %rbx\n"
    "  ret\ns_frame_end:\n"
    ".p2align 4\n.globl s_frame_far, s_frame_far_end\ns_frame_far:\n"
    "  push %rbx\n  push %r12\n  sub $24, %rsp\n  mov %rdi, (%rsp)\n  mov %rsi, 8(%rsp)\n"
    "  mov (%rsp), %rax\n  add 8(%rsp), %rax\n  add %rax, %rax\n  add $24, %rsp\n  pop %r12\n  pop %rbx\n"
    "  ret\ns_frame_far_end:\n"

    /* double s_float(double x, double y) = 2x + y: arguments and result in xmm */
    ".p2align 4\n.globl s_float, s_float_end\ns_float:\n"
    "  push %rbp\n  mov %rsp, %rbp\n  addsd %xmm0, %xmm0\n  addsd %xmm1, %xmm0\n  pop %rbp\n  ret\ns_float_end:\n"

    /* b + a + (a-1) + ... + 1 by jumping back to its own first byte: a loop at the entry */
    ".p2align 4\n.globl s_loop0, s_loop0_end\ns_loop0:\n"
    "  test %rdi, %rdi\n  jz 1f\n  add %rdi, %rsi\n  dec %rdi\n  jmp s_loop0\n1:\n  mov %rsi, %rax\n  ret\ns_loop0_end:\n"

    /* a + 1 + b: s_tail_a tail-calls s_tail_b (both hooked: one return, two EXITs) */
    ".p2align 4\n.globl s_tail_a, s_tail_a_end\ns_tail_a:\n"
    "  add $1, %rdi\n  jmp s_tail_b\ns_tail_a_end:\n"
    ".p2align 4\n.globl s_tail_b, s_tail_b_end\ns_tail_b:\n"
    "  lea (%rdi,%rsi), %rax\n  ret\ns_tail_b_end:\n"

    /* n, by recursing n deep */
    ".p2align 4\n.globl s_rec, s_rec_end\ns_rec:\n"
    "  push %rbx\n  mov %rdi, %rbx\n  test %rdi, %rdi\n  jz 1f\n  lea -1(%rdi), %rdi\n  call s_rec\n"
    "  lea 1(%rax), %rax\n  pop %rbx\n  ret\n1:\n  xor %eax, %eax\n  pop %rbx\n  ret\ns_rec_end:\n"

    /* longjmp(*a, 1), never returns */
    ".p2align 4\n.globl s_jumper, s_jumper_end\ns_jumper:\n"
    "  push %rbx\n  mov $1, %esi\n  call longjmp@PLT\n  ud2\ns_jumper_end:\n"

    /* a(b): calls its first argument */
    ".p2align 4\n.globl s_outer, s_outer_end\ns_outer:\n"
    "  push %rbx\n  mov %rdi, %rax\n  mov %rsi, %rdi\n  call *%rax\n  pop %rbx\n  ret\ns_outer_end:\n"

    /* a * b (b >= 1): the loop head is 2 bytes in, inside the patched bytes */
    ".p2align 4\n.globl s_back, s_back_end\ns_back:\n"
    "  xor %eax, %eax\n1:\n  add %rdi, %rax\n  dec %rsi\n  jnz 1b\n  ret\ns_back_end:\n"

    /* read(a, b, c) from inside the first 5 bytes: a thread blocks there */
    ".p2align 4\n.globl s_read, s_read_end\ns_read:\n"
    "  xor %eax, %eax\n  syscall\n  nop\n  ret\ns_read_end:\n"

    /* 2(a + b), like s_frame but with unwind info, for the backtrace test; s_bt_at is
     * a breakpoint site inside its frame */
    ".p2align 4\n.globl s_bt, s_bt_at, s_bt_end\ns_bt:\n"
    "  .cfi_startproc\n"
    "  push %rbx\n  .cfi_adjust_cfa_offset 8\n  .cfi_offset %rbx, -16\n"
    "  sub $16, %rsp\n  .cfi_adjust_cfa_offset 16\n"
    "  mov %rdi, (%rsp)\ns_bt_at:\n  mov %rsi, 8(%rsp)\n  mov (%rsp), %rax\n  add 8(%rsp), %rax\n  add %rax, %rax\n"
    "  add $16, %rsp\n  .cfi_adjust_cfa_offset -16\n  pop %rbx\n  .cfi_adjust_cfa_offset -8\n  .cfi_restore %rbx\n"
    "  ret\n  .cfi_endproc\ns_bt_end:\n"

    /* too short for a jump */
    ".p2align 4\n.globl s_tiny, s_tiny_end\ns_tiny:\n  mov %rdi, %rax\n  ret\ns_tiny_end:\n"
    ".p2align 4\n.globl s_int3, s_int3_end\ns_int3:\n  int3\n  nop\n  nop\n  nop\n  nop\n  ret\ns_int3_end:\n"
    ".p2align 4\n.globl s_xbegin, s_xbegin_end\ns_xbegin:\n  xbegin 1f\n  xend\n1:\n  ret\ns_xbegin_end:\n"

    /* uint32_t s_mid(struct kw *p): ++p->references, 0 for NULL. The add is the
     * "inlined entry" of rb_vm_ci_lookup: kwarg->references++ as addl $1, 4(%rcx). */
    ".p2align 4\n.globl s_mid, s_mid_at, s_mid_end\ns_mid:\n"
    "  mov %rdi, %rcx\n  test %rcx, %rcx\n  jz 1f\ns_mid_at:\n  addl $1, 4(%rcx)\n  mov 4(%rcx), %eax\n  ret\n"
    "1:\n  xor %eax, %eax\n  ret\ns_mid_end:\n"

    /* umax(a, b) + 7 + KONST + 3 + (a > b): one of each branch for breakpoints */
    ".p2align 4\n.globl s_br, s_br_end, s_br_jcc, s_br_jmp, s_br_call, s_br_rip, s_br_loop, s_br_jrcxz, "
    "s_br_jnear, s_br_ret\ns_br:\n"
    "  cmp %rsi, %rdi\n"
    "s_br_jcc:\n  jae 1f\n  mov %rsi, %rax\n"
    "s_br_jmp:\n  jmp 2f\n"
    "1:\n  mov %rdi, %rax\n"
    "2:\n"
    "s_br_call:\n  call s_add7\n"
    "s_br_rip:\n  add s_konst(%rip), %rax\n  mov $3, %ecx\n"
    "3:\n  inc %rax\n"
    "s_br_loop:\n  loop 3b\n"
    "s_br_jrcxz:\n  jrcxz 4f\n  ud2\n"
    "4:\n  cmp %rsi, %rdi\n"
    "s_br_jnear:\n  {disp32} jbe 5f\n  inc %rax\n"
    "5:\n"
    "s_br_ret:\n  ret\ns_br_end:\n"
    ".p2align 4\n.globl s_add7, s_add7_end\ns_add7:\n  add $7, %rax\n  ret\ns_add7_end:\n"
    ".popsection\n");

#define SHAPE(n) extern char n[], n##_end[]
SHAPE(s_endbr); SHAPE(s_riprel); SHAPE(s_riprel_far); SHAPE(s_jshort); SHAPE(s_jnear); SHAPE(s_jinner);
SHAPE(s_jloop); SHAPE(s_call); SHAPE(s_callfirst); SHAPE(s_callind); SHAPE(s_frame); SHAPE(s_frame_far);
SHAPE(s_float); SHAPE(s_loop0); SHAPE(s_jloop0); SHAPE(s_tail_a); SHAPE(s_tail_b); SHAPE(s_rec); SHAPE(s_jumper); SHAPE(s_outer); SHAPE(s_back);
SHAPE(s_tiny); SHAPE(s_read); SHAPE(s_bt);
extern char s_bt_at[]; SHAPE(s_int3); SHAPE(s_xbegin); SHAPE(s_mid); SHAPE(s_br); SHAPE(s_add7);
extern char s_helper3[], s_mid_at[], s_br_jcc[], s_br_jmp[], s_br_call[], s_br_rip[], s_br_loop[],
    s_br_jrcxz[], s_br_jnear[], s_br_ret[];

typedef uint64_t (*fn4_t)(uint64_t, uint64_t, uint64_t, uint64_t);
typedef double (*fnd_t)(double, double);
#define ADDR(x) ((uintptr_t)(x))
#define SIZE(x) ((size_t)(ADDR(x##_end) - ADDR(x)))

static uint64_t r_endbr(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return a + 2 * b; }
static uint64_t r_riprel(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return KONST + a - b; }
static uint64_t r_jshort(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return a ? a + 1 : b; }
static uint64_t r_jnear(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)c;
    (void)d;
    return (int64_t)a < (int64_t)b ? b - a : a - b;
}
static uint64_t r_sum(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return a + b; }
static uint64_t r_diff(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return a - b; }
static uint64_t r_3ab(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return 3 * a + b; }
static uint64_t r_frame(uint64_t a, uint64_t b, uint64_t c, uint64_t d) { (void)c; (void)d; return 2 * (a + b); }
static uint64_t r_br(uint64_t a, uint64_t b, uint64_t c, uint64_t d)
{
    (void)c;
    (void)d;
    return (a > b ? a : b) + 7 + KONST + 3 + (a > b);
}

/* ---------------------------------------------------------------- Callbacks */

static __thread uint64_t cur_a, cur_b, cur_c, cur_d;
static int have_avx;

struct shape {
    const char *name;
    char *fn, *end;
    uint64_t (*ref)(uint64_t, uint64_t, uint64_t, uint64_t);
    int fp; /* double (double, double) */
    uint64_t enter, exit, errors;
    const char *err;
};

static void shape_error(struct shape *s, const char *what)
{
    if (__atomic_fetch_add(&s->errors, 1, __ATOMIC_RELAXED) == 0)
        s->err = what;
}

/* The callbacks are ordinary C; make them wreck every vector register they can, so
 * that a thunk that failed to save them shows up as wrong results. */
static void clobber_vectors(void)
{
    if (have_avx)
        __asm__ volatile("vzeroall" ::: "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7", "xmm8",
                         "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
    else
        __asm__ volatile("pxor %%xmm0, %%xmm0\n pxor %%xmm1, %%xmm1\n pxor %%xmm7, %%xmm7" ::: "xmm0", "xmm1", "xmm7");
}

static void on_shape(const struct race_regs *r, int event, void *arg)
{
    struct shape *s = arg;
    clobber_vectors();
    if (event == RACE_PROBE_ENTER) {
        __atomic_fetch_add(&s->enter, 1, __ATOMIC_RELAXED);
        if (r->rip != ADDR(s->fn))
            shape_error(s, "ENTER rip is not the function");
        if ((r->rsp & 15) != 8)
            shape_error(s, "ENTER rsp is not a call's");
        if (!s->fp && (r->rdi != cur_a || r->rsi != cur_b || r->rdx != cur_c || r->rcx != cur_d))
            shape_error(s, "ENTER arguments differ from the call's");
    } else if (event == RACE_PROBE_EXIT) {
        __atomic_fetch_add(&s->exit, 1, __ATOMIC_RELAXED);
        if (!s->fp && r->rax != s->ref(cur_a, cur_b, cur_c, cur_d))
            shape_error(s, "EXIT rax is not the return value");
        if ((r->rsp & 15) != 0)
            shape_error(s, "EXIT rsp is not the caller's");
    } else {
        shape_error(s, "a HIT event on an entry hook");
    }
}

/* ---------------------------------------------------------------- Threads */

static int installed;
static uint64_t progress;

struct job {
    struct shape *s;
    uint64_t calls, seed;
    uint64_t after, errors; /* calls started after installed was seen; wrong results */
};

static uint64_t rnd(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void *worker(void *p)
{
    struct job *j = p;
    struct shape *s = j->s;
    uint64_t x = j->seed;
    int seen = 0;
    for (uint64_t i = 0; i < j->calls; i++) {
        if (!seen && __atomic_load_n(&installed, __ATOMIC_ACQUIRE))
            seen = 1;
        uint64_t a = rnd(&x), b = rnd(&x);
        if ((a & 3) == 0)
            a = 0;
        if (s->fp) {
            double xa = (double)(a >> 20), xb = (double)(b >> 20);
            double got = ((fnd_t)(uintptr_t)s->fn)(xa, xb);
            if (got != 2 * xa + xb)
                j->errors++;
        } else {
            cur_a = a;
            cur_b = b;
            cur_c = ADDR(s_helper3);
            cur_d = 1 + (a & 7);
            __atomic_signal_fence(__ATOMIC_SEQ_CST);
            uint64_t got = ((fn4_t)(uintptr_t)s->fn)(cur_a, cur_b, cur_c, cur_d);
            if (got != s->ref(a, b, cur_c, cur_d))
                j->errors++;
        }
        j->after += (uint64_t)seen;
        if ((i & 255) == 255)
            __atomic_fetch_add(&progress, 256, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void sleep_us(long us)
{
    struct timespec ts = { us / 1000000, (us % 1000000) * 1000 };
    nanosleep(&ts, NULL);
}

typedef int (*install_fn)(void *ctx, const char **why);

/* Runs `calls` calls in each of THREADS threads; if install is given, calls it once a
 * tenth of the calls are done. Returns calls started after install returned. */
static uint64_t run_threads(struct shape *s, uint64_t calls, install_fn install, void *ctx, int *rc,
                            const char **why, uint64_t *errors)
{
    pthread_t t[THREADS];
    struct job j[THREADS];
    __atomic_store_n(&installed, install ? 0 : 1, __ATOMIC_RELEASE);
    __atomic_store_n(&progress, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < THREADS; i++) {
        j[i] = (struct job){ s, calls, 0x9e3779b97f4a7c15ull * (uint64_t)(i + 1) + (uint64_t)ADDR(s->fn), 0, 0 };
        pthread_create(&t[i], NULL, worker, &j[i]);
    }
    if (install) {
        while (__atomic_load_n(&progress, __ATOMIC_RELAXED) < THREADS * calls / 10)
            sleep_us(200);
        *rc = install(ctx, why);
        __atomic_store_n(&installed, 1, __ATOMIC_RELEASE);
    }
    uint64_t after = 0;
    *errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        after += j[i].after;
        *errors += j[i].errors;
    }
    return after;
}

static int install_hook(void *ctx, const char **why)
{
    struct shape *s = ctx;
    return race_probe_hook(ADDR(s->fn), (size_t)(s->end - s->fn), on_shape, s, why);
}

/* ---------------------------------------------------------------- Entry hooks */

#define CALLS1 100000
#define CALLS2 20000

static void test_hook(struct shape *s)
{
    char name[128];
    int rc = -1;
    const char *why = "not installed";
    uint64_t errors;
    uint64_t after = run_threads(s, CALLS1, install_hook, s, &rc, &why, &errors);
    uint64_t total = (uint64_t)THREADS * CALLS1;
    snprintf(name, sizeof(name), "%s: hooked while %d threads call it", s->name, THREADS);
    CHECK(name, rc == 0, "%s", why);
    if (rc)
        return;
    snprintf(name, sizeof(name), "%s: results equal the reference before, during and after", s->name);
    CHECK(name, errors == 0, "%llu of %llu wrong", (unsigned long long)errors, (unsigned long long)total);
    snprintf(name, sizeof(name), "%s: ENTER sees the arguments, EXIT the return value", s->name);
    CHECK(name, s->errors == 0, "%llu errors, first: %s", (unsigned long long)s->errors, s->err);
    uint64_t en = __atomic_load_n(&s->enter, __ATOMIC_RELAXED), ex = __atomic_load_n(&s->exit, __ATOMIC_RELAXED);
    snprintf(name, sizeof(name), "%s: ENTER = EXIT, every call after the install counted", s->name);
    CHECK(name, en == ex && en >= after && en <= total, "enter %llu exit %llu after %llu total %llu",
          (unsigned long long)en, (unsigned long long)ex, (unsigned long long)after, (unsigned long long)total);
    uint64_t e0 = en, x0 = ex;
    run_threads(s, CALLS2, NULL, NULL, &rc, &why, &errors);
    en = __atomic_load_n(&s->enter, __ATOMIC_RELAXED) - e0;
    ex = __atomic_load_n(&s->exit, __ATOMIC_RELAXED) - x0;
    snprintf(name, sizeof(name), "%s: installed, exactly one ENTER and one EXIT per call", s->name);
    CHECK(name, errors == 0 && s->errors == 0 && en == (uint64_t)THREADS * CALLS2 && ex == en,
          "enter %llu exit %llu errors %llu/%llu", (unsigned long long)en, (unsigned long long)ex,
          (unsigned long long)errors, (unsigned long long)s->errors);
}

static struct shape sh_endbr = { "endbr64 at entry", s_endbr, s_endbr_end, r_endbr, 0, 0, 0, 0, 0 };
static struct shape sh_riprel = { "RIP-relative load in the prologue", s_riprel, s_riprel_end, r_riprel, 0, 0, 0, 0, 0 };
static struct shape sh_jshort = { "short jcc in the patched bytes", s_jshort, s_jshort_end, r_jshort, 0, 0, 0, 0, 0 };
static struct shape sh_jnear = { "near jcc in the patched bytes", s_jnear, s_jnear_end, r_jnear, 0, 0, 0, 0, 0 };
static struct shape sh_jinner = { "short jmp to a patched byte", s_jinner, s_jinner_end, r_sum, 0, 0, 0, 0, 0 };
static struct shape sh_jloop = { "loop inside the patched bytes", s_jloop, s_jloop_end, r_diff, 0, 0, 0, 0, 0 };
static struct shape sh_call = { "call ending the prologue", s_call, s_call_end, r_3ab, 0, 0, 0, 0, 0 };
static struct shape sh_callfirst = { "call at entry", s_callfirst, s_callfirst_end, r_3ab, 0, 0, 0, 0, 0 };
static struct shape sh_callind = { "indirect call inside the prologue", s_callind, s_callind_end, r_3ab, 0, 0, 0, 0, 0 };
static struct shape sh_frame = { "push/sub rsp prologue", s_frame, s_frame_end, r_frame, 0, 0, 0, 0, 0 };
static struct shape sh_float = { "xmm arguments and result", s_float, s_float_end, NULL, 1, 0, 0, 0, 0 };
static struct shape sh_far = { "no memory within 2 GiB: 14-byte jump", s_frame_far, s_frame_far_end, r_frame, 0, 0, 0, 0, 0 };

/* ---------------------------------------------------------------- Breakpoints */

struct site {
    const char *name;
    char *at;
    uint64_t hits;
    int bad;
};

static void on_site(const struct race_regs *r, int event, void *arg)
{
    struct site *s = arg;
    clobber_vectors();
    __atomic_fetch_add(&s->hits, 1, __ATOMIC_RELAXED);
    if (event != RACE_PROBE_HIT || r->rip != ADDR(s->at))
        __atomic_store_n(&s->bad, 1, __ATOMIC_RELAXED);
}

/* s_mid: the HIT callback finds the argument where the inlined code keeps it (rcx),
 * as the shim will find kwarg at rb_vm_ci_lookup's inlined copies. */
struct kw {
    uint32_t flags, references;
};
static struct site mid_site = { "addl $1, 4(%rcx)", s_mid_at, 0, 0 };
static __thread uint64_t mid_arg;
static uint64_t mid_wrong;

static void on_mid(const struct race_regs *r, int event, void *arg)
{
    on_site(r, event, arg);
    if (r->rcx != mid_arg || r->rcx + 4 != ADDR(&((struct kw *)(uintptr_t)mid_arg)->references))
        __atomic_fetch_add(&mid_wrong, 1, __ATOMIC_RELAXED);
}

static int mid_installed;
struct mid_job {
    uint64_t calls, seed, hits_after, expect_all, errors;
};

static void *mid_worker(void *p)
{
    struct mid_job *j = p;
    struct kw k = { 0, 0 };
    uint64_t x = j->seed;
    for (uint64_t i = 0; i < j->calls; i++) {
        int seen = __atomic_load_n(&mid_installed, __ATOMIC_ACQUIRE);
        int null = (rnd(&x) & 7) == 0;
        mid_arg = null ? 0 : ADDR(&k);
        __atomic_signal_fence(__ATOMIC_SEQ_CST);
        uint32_t want = null ? 0 : k.references + 1;
        uint64_t got = ((uint64_t(*)(void *))(uintptr_t)s_mid)(null ? NULL : &k);
        if (got != want)
            j->errors++;
        if (!null) {
            j->expect_all++;
            j->hits_after += (uint64_t)seen;
        }
        if ((i & 255) == 255)
            __atomic_fetch_add(&progress, 256, __ATOMIC_RELAXED);
    }
    return NULL;
}

static void run_mid(uint64_t calls, int install, uint64_t *expect, uint64_t *after, uint64_t *errors, int *rc,
                    const char **why)
{
    pthread_t t[THREADS];
    struct mid_job j[THREADS];
    __atomic_store_n(&mid_installed, !install, __ATOMIC_RELEASE);
    __atomic_store_n(&progress, 0, __ATOMIC_RELAXED);
    for (int i = 0; i < THREADS; i++) {
        j[i] = (struct mid_job){ calls, 0x2545f4914f6cdd1dull * (uint64_t)(i + 3), 0, 0, 0 };
        pthread_create(&t[i], NULL, mid_worker, &j[i]);
    }
    if (install) {
        while (__atomic_load_n(&progress, __ATOMIC_RELAXED) < THREADS * calls / 10)
            sleep_us(200);
        *rc = race_probe_break(ADDR(s_mid_at), ADDR(s_mid), SIZE(s_mid), on_mid, &mid_site, why);
        __atomic_store_n(&mid_installed, 1, __ATOMIC_RELEASE);
    }
    *expect = *after = *errors = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        *expect += j[i].expect_all;
        *after += j[i].hits_after;
        *errors += j[i].errors;
    }
}

static void test_mid(void)
{
    uint64_t expect, after, errors;
    int rc = -1;
    const char *why = "not installed";
    run_mid(50000, 1, &expect, &after, &errors, &rc, &why);
    CHECK("inlined entry: breakpoint placed while 4 threads run through it", rc == 0, "%s", why);
    if (rc)
        return;
    uint64_t h = mid_site.hits;
    CHECK("inlined entry: results unchanged, the HIT sees rcx = the argument, rcx+4 = references",
          errors == 0 && mid_wrong == 0 && !mid_site.bad, "errors %llu wrong %llu bad %d",
          (unsigned long long)errors, (unsigned long long)mid_wrong, mid_site.bad);
    CHECK("inlined entry: every hit after the install counted", h >= after && h <= expect,
          "hits %llu after %llu possible %llu", (unsigned long long)h, (unsigned long long)after,
          (unsigned long long)expect);
    run_mid(20000, 0, &expect, &after, &errors, &rc, &why);
    h = mid_site.hits - h;
    CHECK("inlined entry: installed, hits are exact", errors == 0 && h == expect && !mid_site.bad,
          "hits %llu expected %llu errors %llu", (unsigned long long)h, (unsigned long long)expect,
          (unsigned long long)errors);
}

/* s_br: a breakpoint on each kind of branch, emulated in the handler, plus two run out
 * of line (a RIP-relative add, the first instruction of s_add7). */
static struct site br_sites[] = {
    { "jae (short jcc, emulated)", s_br_jcc, 0, 0 },   { "jmp (emulated)", s_br_jmp, 0, 0 },
    { "call (emulated)", s_br_call, 0, 0 },            { "add rip-relative (out of line)", s_br_rip, 0, 0 },
    { "loop (emulated)", s_br_loop, 0, 0 },            { "jrcxz (emulated)", s_br_jrcxz, 0, 0 },
    { "jbe rel32 (emulated)", s_br_jnear, 0, 0 },      { "ret (emulated)", s_br_ret, 0, 0 },
    { "add imm (out of line)", s_add7, 0, 0 },
};
#define NSITES (sizeof(br_sites) / sizeof(br_sites[0]))
static struct shape sh_br = { "breakpoints on branches", s_br, s_br_end, r_br, 0, 0, 0, 0, 0 };

static int install_breaks(void *ctx, const char **why)
{
    (void)ctx;
    for (size_t i = 0; i < NSITES; i++) {
        char *fn = br_sites[i].at == s_add7 ? s_add7 : s_br;
        size_t size = fn == s_add7 ? SIZE(s_add7) : SIZE(s_br);
        if (race_probe_break(ADDR(br_sites[i].at), ADDR(fn), size, on_site, &br_sites[i], why))
            return -1;
    }
    return 0;
}

static void test_branches(void)
{
    int rc = -1;
    const char *why = "not installed";
    uint64_t errors;
    run_threads(&sh_br, 5000, install_breaks, NULL, &rc, &why, &errors);
    CHECK("branch breakpoints: 9 placed while 4 threads run through them", rc == 0, "%s", why);
    if (rc)
        return;
    CHECK("branch breakpoints: results unchanged while they were placed", errors == 0, "%llu wrong",
          (unsigned long long)errors);
    uint64_t before[NSITES];
    for (size_t i = 0; i < NSITES; i++)
        before[i] = br_sites[i].hits;
    /* Expected hits per site, from the same argument stream the workers draw. */
    uint64_t jmp_taken = 0, n = 4000;
    for (int t = 0; t < THREADS; t++) {
        uint64_t x = 0x9e3779b97f4a7c15ull * (uint64_t)(t + 1) + (uint64_t)ADDR(s_br);
        for (uint64_t i = 0; i < n; i++) {
            uint64_t a = rnd(&x), b = rnd(&x);
            if ((a & 3) == 0)
                a = 0;
            jmp_taken += a < b;
        }
    }
    run_threads(&sh_br, n, NULL, NULL, &rc, &why, &errors);
    uint64_t calls = THREADS * n;
    uint64_t want[NSITES] = { calls, jmp_taken, calls, calls, 3 * calls, calls, calls, calls, calls };
    for (size_t i = 0; i < NSITES; i++) {
        char name[128];
        uint64_t h = br_sites[i].hits - before[i];
        snprintf(name, sizeof(name), "branch breakpoints: %s: exact hits, right rip, right results", br_sites[i].name);
        CHECK(name, h == want[i] && !br_sites[i].bad && errors == 0, "hits %llu expected %llu bad %d errors %llu",
              (unsigned long long)h, (unsigned long long)want[i], br_sites[i].bad, (unsigned long long)errors);
    }
}

/* ---------------------------------------------------------------- Shadow stack */

static uint64_t rec_enter, rec_exit, rec_bad;
static uint64_t rec_top;

static void on_rec(const struct race_regs *r, int event, void *arg)
{
    (void)arg;
    if (event == RACE_PROBE_EXIT) {
        rec_exit++;
        return;
    }
    rec_enter++;
    /* The caller's frame (n + 1) keeps its return address 16 bytes above ours (its
     * pushed rbx between); if that frame has a shadow entry the slot holds the EXIT
     * thunk, and the stack walker's mapping must give back an address in s_rec. */
    uint64_t n = r->rdi, outer_depth = rec_top - (n + 1);
    if (n < rec_top && n + 1 < rec_top && outer_depth < RACE_PROBE_SHADOW_DEPTH) {
        uintptr_t slot = r->rsp + 16, raw = *(uintptr_t *)slot;
        uintptr_t real = race_probe_return_addr(raw, slot);
        if (raw == real || real <= ADDR(s_rec) || real >= ADDR(s_rec_end))
            rec_bad++;
    }
}

/* s_tail_a's EXIT and s_tail_b's both come from s_tail_b's single ret; both must see
 * the value and the real return address, inner first. */
static uint64_t tail_events[4], tail_bad, tail_want;
static uintptr_t tail_ret;
static void on_tail(const struct race_regs *r, int event, void *arg)
{
    int which = (int)(uintptr_t)arg, i = which * 2 + (event == RACE_PROBE_EXIT);
    tail_events[i]++;
    if (event == RACE_PROBE_ENTER && which == 0)
        tail_ret = *(uintptr_t *)r->rsp;
    if (event == RACE_PROBE_EXIT && (r->rax != tail_want || r->rip != tail_ret ||
                                     tail_events[1] != tail_events[3] - (which == 1)))
        tail_bad++;
}

static void on_jump(const struct race_regs *r, int event, void *arg)
{
    (void)r;
    uint64_t *c = arg;
    c[event == RACE_PROBE_ENTER ? 0 : 1]++;
}
static uint64_t jump_counts[2], outer_counts[2];
static jmp_buf jb;

static uint64_t middle(uint64_t unused)
{
    (void)unused;
    if (!setjmp(jb))
        ((void (*)(jmp_buf *))(uintptr_t)s_jumper)(&jb);
    return 42;
}

static __attribute__((noinline)) void jump_once(void)
{
    jmp_buf here;
    if (!setjmp(here))
        ((void (*)(jmp_buf *))(uintptr_t)s_jumper)(&here);
}

static void test_shadow(void)
{
    const char *why = "";
    struct race_probe_stats s0, s1;

    int rc = race_probe_hook(ADDR(s_rec), SIZE(s_rec), on_rec, NULL, &why), rc2;
    CHECK("recursion: hooked", rc == 0, "%s", why);
    race_probe_stats(&s0);
    rec_top = 100;
    uint64_t got = ((uint64_t(*)(uint64_t))(uintptr_t)s_rec)(100);
    race_probe_stats(&s1);
    CHECK("recursion 101 deep: right result, 101 ENTERs, EXIT for the first 64, the rest skipped",
          got == 100 && rec_enter == 101 && rec_exit == RACE_PROBE_SHADOW_DEPTH &&
              s1.exit_skipped - s0.exit_skipped == 101 - RACE_PROBE_SHADOW_DEPTH,
          "got %llu enter %llu exit %llu skipped %llu", (unsigned long long)got, (unsigned long long)rec_enter,
          (unsigned long long)rec_exit, (unsigned long long)(s1.exit_skipped - s0.exit_skipped));
    CHECK("recursion: a stack walker maps the EXIT thunk back to the real return address", rec_bad == 0,
          "%llu frames wrong", (unsigned long long)rec_bad);

    rc = race_probe_hook(ADDR(s_tail_a), SIZE(s_tail_a), on_tail, (void *)0, &why);
    rc2 = race_probe_hook(ADDR(s_tail_b), SIZE(s_tail_b), on_tail, (void *)1, &why);
    CHECK("tail call between two hooked functions: both hooked", rc == 0 && rc2 == 0, "%s", why);
    uint64_t bad = 0;
    for (uint64_t a = 0; a < 1000; a++) {
        tail_want = a + 1 + 5;
        bad += ((uint64_t(*)(uint64_t, uint64_t))(uintptr_t)s_tail_a)(a, 5) != tail_want;
    }
    CHECK("tail call between two hooked functions: ENTER a, ENTER b, EXIT b, EXIT a, real rip and value",
          bad == 0 && tail_bad == 0 && tail_events[0] == 1000 && tail_events[1] == 1000 && tail_events[2] == 1000 &&
              tail_events[3] == 1000,
          "bad %llu/%llu, a %llu/%llu b %llu/%llu", (unsigned long long)bad, (unsigned long long)tail_bad,
          (unsigned long long)tail_events[0], (unsigned long long)tail_events[1], (unsigned long long)tail_events[2],
          (unsigned long long)tail_events[3]);

    rc = race_probe_hook(ADDR(s_jumper), SIZE(s_jumper), on_jump, jump_counts, &why);
    rc2 = race_probe_hook(ADDR(s_outer), SIZE(s_outer), on_jump, outer_counts, &why);
    CHECK("longjmp: both functions hooked", rc == 0 && rc2 == 0, "%s", why);
    race_probe_stats(&s0);
    bad = 0;
    for (int i = 0; i < 1000; i++)
        bad += ((uint64_t(*)(void *, uint64_t))(uintptr_t)s_outer)((void *)middle, 0) != 42;
    race_probe_stats(&s1);
    CHECK("longjmp over a hooked frame inside a hooked call: the outer EXIT drops the skipped entry",
          bad == 0 && jump_counts[0] == 1000 && jump_counts[1] == 0 && outer_counts[0] == 1000 &&
              outer_counts[1] == 1000 && s1.stale_dropped - s0.stale_dropped == 1000,
          "bad %llu jumper %llu/%llu outer %llu/%llu dropped %llu", (unsigned long long)bad,
          (unsigned long long)jump_counts[0], (unsigned long long)jump_counts[1], (unsigned long long)outer_counts[0],
          (unsigned long long)outer_counts[1], (unsigned long long)(s1.stale_dropped - s0.stale_dropped));
    race_probe_stats(&s0);
    for (int i = 0; i < 1000; i++)
        jump_once();
    race_probe_stats(&s1);
    uint64_t before = outer_counts[1];
    bad = ((uint64_t(*)(void *, uint64_t))(uintptr_t)s_outer)((void *)middle, 0) != 42;
    CHECK("longjmp out of hooked calls, 1000 times: each next ENTER drops the stale entry, EXITs still right",
          s1.stale_dropped - s0.stale_dropped >= 999 && !bad && outer_counts[1] == before + 1,
          "dropped %llu", (unsigned long long)(s1.stale_dropped - s0.stale_dropped));
}

/* ---------------------------------------------------------------- A thread inside */

/* A thread blocked in read(2) inside the patched bytes when the jump is placed: the sync
 * signal interrupts it, the kernel backs rip up to the syscall instruction to restart
 * it (SA_RESTART), and the engine moves it to that instruction's copy in the
 * trampoline, where the read resumes and returns through the relocated tail. */
static uint64_t read_counts[2];
static int64_t read_rc;

static void *reader(void *p)
{
    static char c;
    read_rc = ((int64_t(*)(int, void *, size_t))(uintptr_t)s_read)(*(int *)p, &c, 1);
    return NULL;
}

static void test_inside(void)
{
    int fds[2];
    pthread_t t;
    const char *why = "";
    struct race_probe_stats s0, s1;
    if (pipe(fds)) {
        CHECK("thread inside the prologue: pipe", 0, "%s", strerror(errno));
        return;
    }
    pthread_create(&t, NULL, reader, &fds[0]);
    sleep_us(100000); /* blocked in read by now */
    race_probe_stats(&s0);
    int rc = race_probe_hook(ADDR(s_read), SIZE(s_read), on_jump, read_counts, &why);
    race_probe_stats(&s1);
    CHECK("thread blocked inside the prologue: hooked, the thread moved to the trampoline",
          rc == 0 && s1.threads_moved > s0.threads_moved, "rc %d (%s), moved %llu", rc, why,
          (unsigned long long)(s1.threads_moved - s0.threads_moved));
    ssize_t k = write(fds[1], "xy", 2);
    pthread_join(t, NULL);
    CHECK("thread blocked inside the prologue: its read completes, no ENTER for a call begun before",
          k == 2 && read_rc == 1 && read_counts[0] == 0 && read_counts[1] == 0, "read %lld, enter %llu exit %llu",
          (long long)read_rc, (unsigned long long)read_counts[0], (unsigned long long)read_counts[1]);
    char c;
    int64_t r = ((int64_t(*)(int, void *, size_t))(uintptr_t)s_read)(fds[0], &c, 1);
    CHECK("thread blocked inside the prologue: the next call is hooked", r == 1 && c == 'y' &&
          read_counts[0] == 1 && read_counts[1] == 1, "read %lld enter %llu exit %llu", (long long)r,
          (unsigned long long)read_counts[0], (unsigned long long)read_counts[1]);
    close(fds[0]);
    close(fds[1]);
}

/* ---------------------------------------------------------------- Unwinding */

/* The shim records stacks from inside callbacks: an unwinder started there must walk
 * through the thunk (ENTER, EXIT) or the signal frame (HIT) to the probed code's
 * caller. ENTER and EXIT: glibc's backtrace (libgcc, from the thunks' CFI) as is.
 * HIT inside a hooked function: its return address is the EXIT thunk, so the walk
 * maps each frame's pc through race_probe_return_addr, as the shim's libunwind loop
 * must. */
static uintptr_t bt_want[4];
static int bt_found[4];

/* Where a frame's pc comes back as the EXIT thunk, the walk restarts from a context
 * made of that frame's registers with the real return address. Never unw_set_reg(IP)
 * on an outer frame: libunwind writes it back into the stack slot, which takes the
 * thunk out of the return path and loses that call's EXIT. */
static int unwind_mapped(uintptr_t *pcs, int max)
{
    unw_context_t ctx;
    unw_cursor_t c;
    int n = 0;
    unw_getcontext(&ctx);
    if (unw_init_local(&c, &ctx))
        return 0;
    while (n < max) {
        unw_word_t ip, sp, v;
        unw_get_reg(&c, UNW_REG_IP, &ip);
        unw_get_reg(&c, UNW_REG_SP, &sp);
        uintptr_t real = race_probe_return_addr(ip, sp - 8); /* the slot the return took it from */
        if (real != ip) {
            static const int regs[][2] = { { UNW_X86_64_RBX, REG_RBX }, { UNW_X86_64_RBP, REG_RBP },
                                           { UNW_X86_64_R12, REG_R12 }, { UNW_X86_64_R13, REG_R13 },
                                           { UNW_X86_64_R14, REG_R14 }, { UNW_X86_64_R15, REG_R15 } };
            greg_t *g = ((ucontext_t *)&ctx)->uc_mcontext.gregs;
            for (size_t k = 0; k < sizeof(regs) / sizeof(regs[0]); k++)
                if (unw_get_reg(&c, regs[k][0], &v) == 0)
                    g[regs[k][1]] = (greg_t)v;
            g[REG_RIP] = (greg_t)real;
            g[REG_RSP] = (greg_t)sp;
            if (unw_init_local(&c, &ctx))
                break;
            ip = real;
        }
        pcs[n++] = ip;
        if (unw_step(&c) <= 0)
            break;
    }
    return n;
}

static void on_bt(const struct race_regs *r, int event, void *arg)
{
    (void)arg;
    if (event == RACE_PROBE_HIT) {
        uintptr_t pcs[32];
        int n = unwind_mapped(pcs, 32);
        bt_want[event] = r->rip;
        for (int i = 0; i < n; i++) {
            if (pcs[i] == r->rip)
                bt_found[event] |= 1;
            if (pcs[i] == bt_want[RACE_PROBE_ENTER]) /* bt_caller's return address */
                bt_found[event] |= 2;
        }
        return;
    }
    void *pcs[32];
    int n = backtrace(pcs, 32);
    uintptr_t want = event == RACE_PROBE_ENTER ? *(uintptr_t *)r->rsp : r->rip;
    bt_want[event] = want;
    for (int i = 0; i < n; i++)
        if ((uintptr_t)pcs[i] == want)
            bt_found[event] |= 1;
}

static __attribute__((noinline)) uint64_t bt_caller(uint64_t a)
{
    uint64_t r = ((fn4_t)(uintptr_t)s_bt)(a, 2, 0, 0);
    __asm__ volatile("" ::: "memory"); /* keep the call a call, not a tail call */
    return r + 1;
}

static void test_unwind(void)
{
    void *warm[4];
    backtrace(warm, 4); /* the first call loads libgcc_s */
    const char *why = "";
    int rc = race_probe_hook(ADDR(s_bt), SIZE(s_bt), on_bt, NULL, &why);
    int rc2 = race_probe_break(ADDR(s_bt_at), ADDR(s_bt), SIZE(s_bt), on_bt, NULL, &why);
    CHECK("unwinding: hook and breakpoint on a function with unwind info", rc == 0 && rc2 == 0, "%s", why);
    uint64_t r = bt_caller(5);
    CHECK("unwinding: a backtrace from ENTER reaches the caller through the thunk",
          r == 15 && bt_found[RACE_PROBE_ENTER] == 1, "result %llu found %d want %#lx", (unsigned long long)r,
          bt_found[RACE_PROBE_ENTER], (unsigned long)bt_want[RACE_PROBE_ENTER]);
    CHECK("unwinding: a backtrace from EXIT starts at the real return address",
          bt_found[RACE_PROBE_EXIT] == 1 && bt_want[RACE_PROBE_EXIT] == bt_want[RACE_PROBE_ENTER], "found %d",
          bt_found[RACE_PROBE_EXIT]);
    CHECK("unwinding: libunwind from HIT, mapping the EXIT thunk, has the probed pc and the caller",
          bt_found[RACE_PROBE_HIT] == 3,
          "found %d", bt_found[RACE_PROBE_HIT]);
}

/* ---------------------------------------------------------------- Refusals */

static void nop_cb(const struct race_regs *r, int event, void *arg)
{
    (void)r;
    (void)event;
    (void)arg;
}

static void expect_refused(const char *name, int rc, const char *why, const char *want)
{
    CHECK(name, rc == -1 && why && strstr(why, want), "rc %d why \"%s\", want \"%s\"", rc, why ? why : "(null)",
          want);
}

static void test_refusals(void)
{
    const char *why = NULL;
    int rc = race_probe_hook(ADDR(s_back), SIZE(s_back), nop_cb, NULL, &why);
    expect_refused("refused: a branch in the body jumps into the first 5 bytes", rc, why,
                   "jumps into the patched bytes");
    CHECK("refused function still runs", ((uint64_t(*)(uint64_t, uint64_t))(uintptr_t)s_back)(7, 6) == 42, "wrong");
    rc = race_probe_hook(ADDR(s_loop0), SIZE(s_loop0), nop_cb, NULL, &why);
    expect_refused("refused: a jump back to the entry (a loop whose passes would look like calls)", rc, why,
                   "jumps into the patched bytes");
    rc = race_probe_hook(ADDR(s_jloop0), SIZE(s_jloop0), nop_cb, NULL, &why);
    expect_refused("refused: a loop inside the patched bytes whose head is the entry", rc, why,
                   "jumps into the patched bytes");
    rc = race_probe_hook(ADDR(s_tiny), SIZE(s_tiny), nop_cb, NULL, &why);
    expect_refused("refused: function shorter than the jump", rc, why, "shorter than the jump");
    rc = race_probe_hook(ADDR(s_tiny), 0, nop_cb, NULL, &why);
    expect_refused("refused: ret before byte 5 and no size", rc, why, "size is unknown");
    rc = race_probe_hook(ADDR(s_int3), SIZE(s_int3), nop_cb, NULL, &why);
    expect_refused("refused: an int3 in the prologue", rc, why, "int3 is already there");
    rc = race_probe_hook(ADDR(s_xbegin), SIZE(s_xbegin), nop_cb, NULL, &why);
    expect_refused("refused: xbegin in the prologue", rc, why, "xbegin");
    rc = race_probe_hook(ADDR(s_endbr), SIZE(s_endbr), nop_cb, NULL, &why);
    expect_refused("refused: a second hook on the same function", rc, why, "already covers");
    rc = race_probe_break(ADDR(s_frame) + 1, ADDR(s_frame), SIZE(s_frame), nop_cb, NULL, &why);
    expect_refused("refused: a breakpoint inside a hook's jump", rc, why, "entry hook's jump");
    rc = race_probe_break(ADDR(s_br_jcc) + 1, ADDR(s_br), SIZE(s_br), nop_cb, NULL, &why);
    expect_refused("refused: a breakpoint off an instruction boundary", rc, why, "not an instruction boundary");
    rc = race_probe_break(ADDR(s_br_jcc), ADDR(s_br), SIZE(s_br), nop_cb, NULL, &why);
    expect_refused("refused: a second breakpoint at the same address", rc, why, "already there");
    rc = race_probe_break(ADDR(s_int3), ADDR(s_int3), SIZE(s_int3), nop_cb, NULL, &why);
    expect_refused("refused: a breakpoint on someone's int3", rc, why, "int3 is already there");
    rc = race_probe_break(ADDR(s_mid), ADDR(s_br), SIZE(s_br), nop_cb, NULL, &why);
    expect_refused("refused: a breakpoint outside the function named", rc, why, "outside the function");

    race_probe_debug_far(1);
    rc = race_probe_hook(ADDR(s_riprel_far), SIZE(s_riprel_far), nop_cb, NULL, &why);
    expect_refused("refused: no memory within 2 GiB and a RIP-relative prologue", rc, why, "no memory within");
    struct race_probe_stats s0, s1;
    race_probe_stats(&s0);
    test_hook(&sh_far);
    race_probe_stats(&s1);
    CHECK("no memory within 2 GiB: the hook used the 14-byte absolute jump", s1.hooks_far == s0.hooks_far + 1 &&
          ((uint8_t *)s_frame_far)[0] == 0xff && ((uint8_t *)s_frame_far)[1] == 0x25, "far %llu, bytes %02x %02x",
          (unsigned long long)s1.hooks_far, ((uint8_t *)s_frame_far)[0], ((uint8_t *)s_frame_far)[1]);
    race_probe_debug_far(0);
}

/* Any SIGTRAP or sync signal not raised by the engine must come back 0. */
static void test_foreign_traps(void)
{
    ucontext_t uc;
    siginfo_t si;
    memset(&uc, 0, sizeof(uc));
    memset(&si, 0, sizeof(si));
    si.si_signo = SIGTRAP;
    si.si_code = SI_KERNEL;
    uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(ADDR(s_back) + 1); /* an int3 that is not ours */
    int a = race_probe_trap(&si, &uc);
    si.si_code = SI_TKILL; /* raise(SIGTRAP) */
    uc.uc_mcontext.gregs[REG_RIP] = (greg_t)(ADDR(s_br_jcc) + 1);
    int b = race_probe_trap(&si, &uc);
    si.si_signo = race_probe_sync_signal();
    si.si_code = SI_QUEUE; /* the program's own sigqueue of that signal */
    si.si_pid = getpid();
    int c = race_probe_trap(&si, &uc);
    CHECK("a foreign int3, raise(SIGTRAP) and a foreign sigqueue are not claimed", !a && !b && !c, "%d %d %d", a, b,
          c);
}

/* The trampoline behind s_frame's jump maps back to the original instructions. */
static void test_orig_pc(void)
{
    const uint8_t *p = (const uint8_t *)s_frame;
    int32_t rel;
    memcpy(&rel, p + 1, 4);
    uintptr_t stub = ADDR(s_frame) + 5 + (uintptr_t)(intptr_t)rel, reloc = stub + 12;
    CHECK("a pc in a trampoline maps back to the original instruction",
          p[0] == 0xe9 && race_probe_orig_pc(stub) == ADDR(s_frame) && race_probe_orig_pc(reloc) == ADDR(s_frame) &&
              race_probe_orig_pc(reloc + 1) == ADDR(s_frame) + 1 && race_probe_orig_pc(ADDR(s_br)) == ADDR(s_br),
          "first byte %02x", p[0]);
}

/* ---------------------------------------------------------------- Main */

static void on_trap(int sig, siginfo_t *si, void *uc)
{
    (void)sig;
    int e = errno;
    if (!race_probe_trap(si, uc)) {
        static const char m[] = "unit_probe: a SIGTRAP or sync signal the probe engine did not claim\n";
        ssize_t k = write(2, m, sizeof(m) - 1);
        (void)k;
        abort();
    }
    errno = e;
}

/* An entry-only hook: ENTER on every call from several threads, never an EXIT, the
 * return address left as the caller pushed it, and the results unchanged. */
static __attribute__((noinline)) uint64_t entry_only_fn(uint64_t x)
{
    __asm__ volatile("" ::: "memory");
    return x * 7 + 3;
}
static uint64_t eo_enter, eo_exit, eo_bad_ret;
static void *entry_only_thread(void *arg);

static void on_entry_only(const struct race_regs *r, int event, void *arg)
{
    (void)arg;
    if (event == RACE_PROBE_ENTER) {
        __atomic_fetch_add(&eo_enter, 1, __ATOMIC_RELAXED);
        /* the caller's return address, not the EXIT thunk: inside this file's code */
        uint64_t ret = *(const uint64_t *)(uintptr_t)r->rsp, here = (uint64_t)(uintptr_t)&entry_only_thread;
        if (ret < here - (1u << 20) || ret > here + (1u << 20))
            __atomic_fetch_add(&eo_bad_ret, 1, __ATOMIC_RELAXED);
    } else if (event == RACE_PROBE_EXIT) {
        __atomic_fetch_add(&eo_exit, 1, __ATOMIC_RELAXED);
    }
}

static void *entry_only_thread(void *arg)
{
    uint64_t *bad = arg;
    for (uint64_t i = 0; i < 5000; i++)
        *bad += entry_only_fn(i) != i * 7 + 3;
    return NULL;
}

static void test_entry_only(void)
{
    const char *why = "";
    int rc = race_probe_hook_entry((uintptr_t)&entry_only_fn, 0, on_entry_only, NULL, &why);
    CHECK("entry-only hook: installed", rc == 0, "%s", why);
    pthread_t th[3];
    uint64_t bad[3] = {0, 0, 0};
    for (int i = 0; i < 3; i++)
        pthread_create(&th[i], NULL, entry_only_thread, &bad[i]);
    for (int i = 0; i < 3; i++)
        pthread_join(th[i], NULL);
    CHECK("entry-only hook: 15000 calls from 3 threads, right results, 15000 ENTERs, no EXIT, return addresses untouched",
          bad[0] + bad[1] + bad[2] == 0 && eo_enter == 15000 && eo_exit == 0 && eo_bad_ret == 0,
          "bad %llu enter %llu exit %llu bad_ret %llu", (unsigned long long)(bad[0] + bad[1] + bad[2]),
          (unsigned long long)eo_enter, (unsigned long long)eo_exit, (unsigned long long)eo_bad_ret);
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    __builtin_cpu_init();
    have_avx = __builtin_cpu_supports("avx");
    const char *why = "";
    int rc = race_probe_hook(ADDR(s_endbr), SIZE(s_endbr), nop_cb, NULL, &why);
    expect_refused("refused before the signal handlers are installed", rc, why, "no SA_SIGINFO handler for SIGTRAP");
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_trap;
    sa.sa_flags = SA_SIGINFO | SA_NODEFER | SA_RESTART;
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGTRAP, &sa, NULL) || sigaction(race_probe_sync_signal(), &sa, NULL)) {
        perror("sigaction");
        return 1;
    }

    struct shape *hooks[] = { &sh_endbr, &sh_riprel, &sh_jshort, &sh_jnear, &sh_jinner, &sh_jloop,
                              &sh_call, &sh_callfirst, &sh_callind, &sh_frame, &sh_float };
    for (size_t i = 0; i < sizeof(hooks) / sizeof(hooks[0]); i++)
        test_hook(hooks[i]);
    test_mid();
    test_branches();
    test_shadow();
    test_entry_only();
    test_inside();
    test_unwind();
    test_refusals();
    test_foreign_traps();
    test_orig_pc();

    struct race_probe_stats s;
    race_probe_stats(&s);
    printf("# stats: hooks %llu (far %llu), breaks %llu (emulated %llu), refused %llu, enter %llu, exit %llu, "
           "hit %llu, exit_skipped %llu, stale_dropped %llu, trap_enters %llu, threads_moved %llu\n",
           (unsigned long long)s.hooks, (unsigned long long)s.hooks_far, (unsigned long long)s.breaks,
           (unsigned long long)s.breaks_emulated, (unsigned long long)s.refused, (unsigned long long)s.enter,
           (unsigned long long)s.exit, (unsigned long long)s.hit, (unsigned long long)s.exit_skipped,
           (unsigned long long)s.stale_dropped, (unsigned long long)s.trap_enters,
           (unsigned long long)s.threads_moved);
    CHECK("stats: every install counted", s.hooks == 20 && s.breaks == 11 && s.refused == 15,
          "hooks %llu breaks %llu refused %llu", (unsigned long long)s.hooks, (unsigned long long)s.breaks,
          (unsigned long long)s.refused);
    return check_summary();
}
