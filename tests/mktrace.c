/* mktrace.c - writes a synthetic but fully valid race trace (format v3) for the analyzer's
 * tests: several threads' chunks, real stacks of this program in the depot, and a module
 * map of this process; options add findings, watched functions (probe records and their
 * enter/exit/hit events) and damage (torn, corrupt, clamped, crashed, bad stack, events
 * naming no probe).
 * Prints the counts a correct reader must find, one "name value" per line.
 * Must never: depend on the analyzer's code: it is an independent writer of the format.
 * link: -ldl
 */
#include <elf.h>
#include <errno.h>
#include <execinfo.h>
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "build_id.h"
#include "race_trace.h"

#define MAX_THREADS 64
#define DEPOT_SIZE 65536u
#define MODS_SIZE 65536u
#define FIND_SIZE (64u + 4u * sizeof(struct race_finding))
#define PROBE_CAP 16u
#define PROBES_SIZE (64u + PROBE_CAP * sizeof(struct race_probe_rec))
#define CRASH_CAP 4u
#define CRASHES_SIZE (64u + CRASH_CAP * sizeof(struct race_crash))
#define NBUCKETS 64u
#define MONO0 1000000000ull  /* CLOCK_MONOTONIC at start: 1 s */
#define TSC_PER_NS 3ull      /* a 3 GHz TSC */
#define START_REALTIME 1700000000123456789ull /* 2023-11-14 22:13:20.123 UTC */

static struct {
    int threads, events, chunks;
    int ruby_frames, bad_ruby_frames; /* Ruby backtraces named by the first finding */
    int torn, clamp, corrupt, bad_stack, crash, ruby, empty_exe, mono, remap, findings;
    int dropped, probes, bad_probe_ref, stale_ci, crashes, crash_wild;
} opt = {.threads = 3, .events = 100, .chunks = 8};

static uint8_t *file;
static uint64_t file_size;
static struct race_hdr *hdr;
static uint64_t n_flipped, n_kind99, n_torn, n_corrupt;
static uint64_t n_probe_ev, n_bad_ref, n_by_kind[6]; /* watched-function events written */
static struct race_mod main_mod; /* the main program's record, for --remap */
static struct race_rec last_free[MAX_THREADS]; /* each thread's last FREE, by tid - 1001 */

/* ---- Stacks: captured for real, so the analyzer must symbolize this file ---------- */

static volatile int sink;

static __attribute__((noipa)) int mk_capture(uint64_t *pc)
{
    void *buf[RACE_MAX_FRAMES];
    int n = backtrace(buf, RACE_MAX_FRAMES); /* LINE:capture */
    for (int i = 0; i < n; i++)
        pc[i] = (uint64_t)(uintptr_t)buf[i];
    sink += n;
    return n;
}

static __attribute__((noipa)) int mk_leaf(uint64_t *pc)
{
    int n = mk_capture(pc); /* LINE:leaf */
    sink += n;
    return n;
}

static __attribute__((noipa)) int mk_middle_a(uint64_t *pc)
{
    int n = mk_leaf(pc); /* LINE:middle_a */
    sink += 1;
    return n;
}

static __attribute__((noipa)) int mk_middle_b(uint64_t *pc)
{
    int n = mk_leaf(pc); /* LINE:middle_b */
    sink += 2;
    return n;
}

/* ---- Depot ------------------------------------------------------------------------ */

static uint32_t depot_add(const uint64_t *pc, uint32_t n)
{
    uint8_t *d = file + hdr->depot.off;
    struct race_depot_hdr dh;
    memcpy(&dh, d, sizeof dh);
    uint32_t h = race_stack_hash(pc, n);
    uint32_t bucket;
    memcpy(&bucket, d + sizeof dh + 4 * (h & (dh.nbuckets - 1)), 4);
    struct race_depot_entry e = {.next = bucket, .hash = h, .nframes = (uint16_t)n, .commit = h};
    uint32_t id = (uint32_t)(dh.used / 8 + 1);
    memcpy(d + dh.entries_off + dh.used, &e, sizeof e);
    memcpy(d + dh.entries_off + dh.used + sizeof e, pc, 8ull * n);
    memcpy(d + sizeof dh + 4 * (h & (dh.nbuckets - 1)), &id, 4);
    dh.used += sizeof e + 8ull * n;
    dh.unique++;
    memcpy(d, &dh, sizeof dh);
    return id;
}

/* ---- Module log ------------------------------------------------------------------- */

static void put_module(const struct race_mod *m, const char *path)
{
    uint8_t *log = file + hdr->modules.off;
    struct race_mod_hdr mh;
    memcpy(&mh, log, sizeof mh);
    if (sizeof mh + mh.used + m->size > hdr->modules.size)
        return;
    memcpy(log + sizeof mh + mh.used, m, sizeof *m);
    memcpy(log + sizeof mh + mh.used + sizeof *m, path, m->path_len + 1u);
    mh.used += m->size;
    mh.count++;
    memcpy(log, &mh, sizeof mh);
}

static int add_module(struct dl_phdr_info *info, size_t size, void *ctx)
{
    (void)size;
    int *first = ctx;
    int is_main = *first;
    char exe[4096] = "";
    const char *path = info->dlpi_name ? info->dlpi_name : "";
    if (*first && !path[0] && !opt.empty_exe) {
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0)
            exe[n] = 0;
        path = exe;
    }
    *first = 0;
    uint64_t lo = UINT64_MAX, hi = 0;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type != PT_LOAD)
            continue;
        if (info->dlpi_addr + ph->p_vaddr < lo)
            lo = info->dlpi_addr + ph->p_vaddr;
        if (info->dlpi_addr + ph->p_vaddr + ph->p_memsz > hi)
            hi = info->dlpi_addr + ph->p_vaddr + ph->p_memsz;
    }
    if (hi == 0)
        return 0;
    size_t plen = strlen(path);
    uint32_t rsize = (uint32_t)((sizeof(struct race_mod) + plen + 1 + 7) & ~(size_t)7);
    struct race_mod m = {.size = rsize, .commit = RACE_MOD_COMMIT, .base = info->dlpi_addr,
                         .lo = lo, .hi = hi, .ts = hdr->clock_ts0, .gen = 0,
                         .path_len = (uint16_t)plen};
    m.build_id_len = (uint8_t)race_note_build_id(info, m.build_id);
    put_module(&m, path);
    if (is_main)
        main_mod = m;
    return 0;
}

/* ---- Ring ------------------------------------------------------------------------- */

struct thread {
    uint32_t tid, ractor;
    uint64_t seq;
    uint64_t gen;    /* of the chunk it owns */
    int has_chunk;
};

static uint64_t ts_of(uint64_t mono)
{
    return opt.mono ? mono : mono * TSC_PER_NS + 12345;
}

static struct race_chunk *chunk_at(uint64_t slot)
{
    return (struct race_chunk *)(file + hdr->ring.off + slot * RACE_CHUNK_SIZE);
}

static struct race_rec *rec_at(uint64_t slot, uint32_t i)
{
    return (struct race_rec *)(file + hdr->ring.off + slot * RACE_CHUNK_SIZE +
                               RACE_REC_SIZE * (i + 1ull));
}

static void commit_rec(struct race_rec *r, uint64_t gen, uint32_t i)
{
    /* The checksum reads uint64_t words: compute it over a uint64_t copy. */
    uint64_t w[8];
    uint32_t tag = (uint32_t)(gen * RACE_CHUNK_RECS + i);
    r->commit = 0;
    memcpy(w, r, sizeof w);
    r->commit = (uint64_t)race_rec_sum((const struct race_rec *)(const void *)w, tag) << 32 | tag;
}

/* As the shim does it (FORMAT.md, "Ring"): take the next generation whose chunk is
 * not held and holds no newer generation, install it held, count what the released
 * generation there held as overwritten, then the calibration pair. */
static void claim(struct thread *th, uint64_t mono)
{
    for (;;) {
        uint64_t gen = hdr->next_chunk++;
        struct race_chunk *c = chunk_at(gen % hdr->nchunks);
        if ((c->state & RACE_STATE_HELD) || (c->state >> RACE_STATE_USED_BITS) > gen + 1)
            continue;
        hdr->overwritten += c->state & RACE_STATE_USED_MASK;
        memset(c, 0, RACE_CHUNK_SIZE);
        c->state = (gen + 1) << RACE_STATE_USED_BITS | RACE_STATE_HELD;
        c->tid = th->tid;
        c->clock_ts = ts_of(mono);
        c->clock_mono = mono;
        c->gen_check = gen + 1;
        th->gen = gen;
        th->has_chunk = 1;
        return;
    }
}

/* A full chunk, or the chunk of a thread that exits, goes back to the ring. */
static void release(struct thread *th)
{
    if (th->has_chunk)
        chunk_at(th->gen % hdr->nchunks)->state &= ~RACE_STATE_HELD;
    th->has_chunk = 0;
}

/* The thread's next record, reserved (FORMAT.md: used = i + 1, then the payload). */
static struct race_rec *reserve(struct thread *th, uint64_t mono, uint32_t *index)
{
    if (!th->has_chunk)
        claim(th, mono);
    struct race_chunk *c = chunk_at(th->gen % hdr->nchunks);
    uint32_t i = (uint32_t)(c->state & RACE_STATE_USED_MASK);
    c->state++;
    *index = i;
    return rec_at(th->gen % hdr->nchunks, i);
}

static void publish(struct thread *th, struct race_rec *r, uint32_t i)
{
    commit_rec(r, th->gen, i);
    if (i + 1 == RACE_CHUNK_RECS)
        release(th);
}

/* A watched function's event: flags names its probe record. The first --bad-probe-ref
 * of them name a record that does not exist instead. */
static void emit_probe(struct thread *th, unsigned kind, uint16_t probe, uint64_t mono,
                       uint64_t value, uint64_t aux)
{
    uint32_t i;
    struct race_rec *r = reserve(th, mono, &i);
    if (n_bad_ref < (uint64_t)opt.bad_probe_ref) {
        probe = 999;
        n_bad_ref++;
        n_corrupt++;
    } else {
        n_by_kind[kind]++;
    }
    *r = (struct race_rec){
        .kind = (uint8_t)kind, .flags = probe, .tid = th->tid, .ractor = th->ractor,
        .seq = ++th->seq, .ts = ts_of(mono), .addr = 0x555555601000ull, .size = value, .aux = aux,
    };
    /* The probe's address, as its record says (see probes()). */
    static const uint64_t at[] = {0x555555601000ull, 0x555555602040ull, 0x555555601024ull,
                                  0x55555560205cull};
    if (probe < 4)
        r->addr = at[probe];
    n_probe_ev++;
    publish(th, r, i);
}

/* On thread 0, every 25th free is followed by rb_vm_ci_lookup's events: the out-of-line
 * copy (enter, the kwarg check, exit) and the inlined one (enter, check; no exit). */
static void emit_watched(struct thread *th, uint64_t k, int e)
{
    uint64_t mono = MONO0 + 1000 + k * 1000;
    if (e % 50 == 0) {
        emit_probe(th, RACE_EV_ENTER, 0, mono + 100, 0x3c01, 0x10);
        emit_probe(th, RACE_EV_HIT, 2, mono + 200, 0x7f0000003000ull + (uint64_t)e, 0);
        emit_probe(th, RACE_EV_EXIT, 0, mono + 300, 0x7f0000004000ull + (uint64_t)e, 0);
    } else {
        emit_probe(th, RACE_EV_ENTER, 1, mono + 100, 0x3c11, 0x4);
        emit_probe(th, RACE_EV_HIT, 3, mono + 200, 0x7f0000005000ull + (uint64_t)e, 0);
    }
}

static void emit(struct thread *th, uint64_t k, const uint32_t *stacks, int last)
{
    uint64_t mono = MONO0 + 1000 + k * 1000;
    uint32_t i;
    struct race_rec *r = reserve(th, mono, &i);
    unsigned entry = 1 + (unsigned)(k % RACE_ENTRY_RUBY_SIZED_XREALLOC2); /* the allocator entries, 1..10 */
    uint64_t addr = 0x10000000ull + ((uint64_t)(th->tid & 0xff) << 24) + th->seq * 64;
    int moves = entry == RACE_ENTRY_REALLOC || entry == RACE_ENTRY_REALLOCARRAY ||
                entry == RACE_ENTRY_RUBY_XREALLOC || entry == RACE_ENTRY_RUBY_XREALLOC2;
    *r = (struct race_rec){
        .kind = RACE_EV_FREE, .entry = (uint8_t)entry, .tid = th->tid, .ractor = th->ractor,
        .stack = stacks[k % 4], .seq = ++th->seq, .ts = ts_of(mono), .addr = addr,
        .size = 16 + (k % 8) * 16, .aux = moves ? addr + 0x100000 : 0,
    };
    last_free[th->tid - 1001] = *r;
    if (opt.crash && last) {
        r->commit = 0; /* died before publishing: reserved, never committed */
        return;
    }
    publish(th, r, i);
}

/* A record that fails its checksum is torn in a held chunk (its writer died), corrupt
 * in a released one. */
static void count_bad(const struct race_chunk *c, uint64_t n)
{
    if (c->state & RACE_STATE_HELD)
        n_torn += n;
    else
        n_corrupt += n;
}

/* Damage applied after the run, to records that survived it. */
static void damage(void)
{
    int torn = opt.torn, corrupt = opt.corrupt, bad_stack = opt.bad_stack, clamp = opt.clamp;
    for (uint64_t s = 0; s < hdr->nchunks; s++) {
        struct race_chunk *c = chunk_at(s);
        uint64_t gen1 = c->state >> RACE_STATE_USED_BITS;
        uint32_t used = (uint32_t)(c->state & RACE_STATE_USED_MASK);
        if (!gen1)
            continue;
        for (uint32_t i = 0; i < used; i += 5) {
            struct race_rec *r = rec_at(s, i);
            if (r->commit == 0)
                continue;
            if (torn) {
                r->size ^= 1; /* payload changed after commit: checksum fails */
                torn--;
                n_flipped++;
                count_bad(c, 1);
            } else if (corrupt) {
                r->kind = 99; /* checksum recomputed: a well-formed record of no known kind */
                commit_rec(r, gen1 - 1, i);
                corrupt--;
                n_kind99++;
                n_corrupt++;
            } else if (bad_stack) {
                r->stack = 0x7fffffff;
                commit_rec(r, gen1 - 1, i);
                bad_stack--;
            }
        }
        if (clamp && used < RACE_CHUNK_RECS) {
            /* used beyond 1023: the reader clamps, and finds the unwritten rest bad. */
            c->state = (gen1 << RACE_STATE_USED_BITS) | (c->state & RACE_STATE_HELD) |
                       RACE_STATE_USED_MASK;
            count_bad(c, RACE_CHUNK_RECS - used);
            clamp--;
        }
    }
}

/* Findings: a use-after-free with everything known, a double free without an
 * allocation, and one claimed but never published. */
static void findings(uint64_t k, const uint32_t *stacks)
{
    uint8_t *sec = file + hdr->findings.off;
    struct race_find_hdr fh = {.used = 3, .cap = (hdr->findings.size - sizeof fh) / sizeof(struct race_finding)};
    struct race_finding f[2];
    memset(f, 0, sizeof f);
    f[0] = (struct race_finding){
        .commit = RACE_FIND_COMMIT, .type = RACE_FIND_USE_AFTER_FREE,
        .access = RACE_ACCESS_READ, .free_entry = RACE_ENTRY_RUBY_XFREE, .access_size = 8,
        .tid = 1002, .ractor = opt.ruby ? 2 : 0, .stack = stacks[1], .addr = 0x7f0000001010,
        .ts = ts_of(MONO0 + 1000 + (k - 1) * 1000), .block_addr = 0x7f0000001000,
        .block_size = 64, .alloc_ts = ts_of(MONO0 + 11000), .alloc_tid = 1001,
        .alloc_ractor = opt.ruby ? 1 : 0, .alloc_stack = stacks[2], .slot = 3,
        .free_ts = ts_of(MONO0 + 21000), .free_tid = 1003, .free_ractor = opt.ruby ? 3 : 0,
        .free_stack = stacks[0], .free_seq = 7,
    };
    f[1] = (struct race_finding){
        .commit = RACE_FIND_COMMIT, .type = RACE_FIND_DOUBLE_FREE, .free_entry = RACE_ENTRY_FREE,
        .tid = 1001, .stack = stacks[2], .addr = 0x7f0000002000,
        .ts = ts_of(MONO0 + 31000), .block_addr = 0x7f0000002000, .block_size = 32,
        .slot = 4, .free_ts = ts_of(MONO0 + 30000), .free_tid = 1001, .free_stack = stacks[0],
        .free_seq = 9,
    };
    strcpy(f[1].detail, "second free");
    memcpy(sec, &fh, sizeof fh);
    memcpy(sec + sizeof fh, f, sizeof f); /* the third slot stays zero: never published */
}

/* Ruby backtraces (--ruby-frames) for the first finding (needs --findings): the use's,
 * a C method then two Ruby frames, and the free's, truncated at one frame. With
 * --bad-ruby-frames the use's second frame gets a label length running past its text:
 * the reader must report it and print nothing of that backtrace. */
#define RB_SIZE 4096u
static uint32_t rb_put(uint8_t *area, uint64_t *used, uint8_t when, uint8_t status,
                       const struct race_rb_frame *fr, const char *const *text, uint32_t n)
{
    uint64_t at = *used, p = at + sizeof(struct race_rb_bt);
    for (uint32_t i = 0; i < n; i++) {
        struct race_rb_frame f = fr[i];
        f.label_len = (uint16_t)strlen(text[2 * i]);
        f.path_len = (uint16_t)strlen(text[2 * i + 1]);
        memcpy(area + p, &f, sizeof f);
        memcpy(area + p + sizeof f, text[2 * i], f.label_len);
        memcpy(area + p + sizeof f + f.label_len + 1, text[2 * i + 1], f.path_len);
        p += (sizeof f + f.label_len + 1 + f.path_len + 1 + 7) & ~7ull;
    }
    struct race_rb_bt bt = {.commit = RACE_RB_COMMIT, .size = (uint32_t)(p - at), .nframes = (uint16_t)n,
                            .status = status, .when = when, .tid = 1002};
    memcpy(area + at, &bt, sizeof bt);
    *used = p;
    return (uint32_t)(at / 8 + 1);
}

static void ruby_frames(void)
{
    uint8_t *sec = file + hdr->rbframes.off, *area = sec + sizeof(struct race_rb_hdr);
    uint64_t used = 0;
    const struct race_rb_frame use[] = {{.cfunc = 0x401000, .line = 11}, {.line = 11}, {.line = 20}};
    const char *const use_text[] = {"", "app/peek.rb", "peek", "app/peek.rb", "block in <main>", "app/main.rb"};
    const struct race_rb_frame fre[] = {{.line = 7}};
    const char *const fre_text[] = {"release", "app/release.rb"};
    uint32_t u = rb_put(area, &used, RACE_RBW_USE, RACE_RB_COMPLETE, use, use_text, 3);
    uint32_t f = rb_put(area, &used, RACE_RBW_FREE, RACE_RB_TRUNCATED, fre, fre_text, 1);
    if (opt.bad_ruby_frames) /* frame 1 starts 32 bytes after frame 0; label_len at +12 */
        area[(u - 1) * 8 + sizeof(struct race_rb_bt) + 32 + offsetof(struct race_rb_frame, label_len)] = 'X';
    struct race_rb_hdr rh = {.used = used, .cap = hdr->rbframes.size - sizeof rh, .dropped = 1};
    memcpy(sec, &rh, sizeof rh);
    struct race_finding *f0 = (struct race_finding *)(file + hdr->findings.off + sizeof(struct race_find_hdr));
    f0->rb_use = u;
    f0->rb_free = f;
}

/* A stale call-info: thread 1001 (Ractor 1) reads the references field of a kwarg block
 * that thread 1003 (Ractor 3) freed; it goes after the other findings. */
static void stale_ci(uint64_t k, const uint32_t *stacks)
{
    uint8_t *sec = file + hdr->findings.off;
    struct race_find_hdr fh;
    memcpy(&fh, sec, sizeof fh);
    fh.cap = (hdr->findings.size - sizeof fh) / sizeof(struct race_finding);
    struct race_finding f = {
        .commit = RACE_FIND_COMMIT, .type = RACE_FIND_STALE_CI, .access = RACE_ACCESS_READ,
        .free_entry = RACE_ENTRY_RUBY_XFREE, .access_size = 4, .tid = 1001,
        .ractor = opt.ruby ? 1 : 0, .stack = stacks[1], .addr = 0x7f0000003010,
        .pc = 0, .ts = ts_of(MONO0 + 1000 + (k - 2) * 1000), .block_addr = 0x7f0000003000,
        .block_size = 24, .alloc_ts = ts_of(MONO0 + 5000), .alloc_tid = 1002,
        .alloc_ractor = opt.ruby ? 2 : 0, .alloc_stack = stacks[2], .slot = 5,
        .free_ts = ts_of(MONO0 + 41000), .free_tid = 1003, .free_ractor = opt.ruby ? 3 : 0,
        .free_stack = stacks[0], .free_seq = 14,
    };
    strcpy(f.detail, "rb_vm_ci_lookup <- vm_ci_new_: kwarg references++ at 0x205c");
    memcpy(sec + sizeof fh + fh.used * sizeof f, &f, sizeof f);
    fh.used++;
    memcpy(sec, &fh, sizeof fh);
}

/* What rb_vm_ci_lookup's probes would be in a Ruby with one out-of-line copy and two
 * inlined ones (the third too short to probe), and a function with no instance at all;
 * record 6 is claimed, never published. 4 probes, 1 + 1 refused, 116 hits. */
static void probes(void)
{
    static const struct {
        uint8_t kind, role;
        uint16_t instance;
        uint64_t addr, hits;
        const char *func, *detail;
    } p[] = {
        {RACE_PROBEK_HOOK, RACE_PROBER_ENTRY, 0, 0x555555601000ull, 100, "rb_vm_ci_lookup", ""},
        {RACE_PROBEK_BREAK, RACE_PROBER_INLINE, 1, 0x555555602040ull, 10, "rb_vm_ci_lookup",
         "vm_ci_new_ <- vm_search_super_method"},
        {RACE_PROBEK_BREAK, RACE_PROBER_CHECK, 0, 0x555555601024ull, 5, "rb_vm_ci_lookup",
         "kwarg in %rsi"},
        {RACE_PROBEK_BREAK, RACE_PROBER_CHECK, 1, 0x55555560205cull, 1, "rb_vm_ci_lookup",
         "kwarg in %rdx"},
        {RACE_PROBEK_REFUSED, RACE_PROBER_INLINE, 2, 0x555555603100ull, 0, "rb_vm_ci_lookup",
         "entry is the target of a jump inside the copy"},
        {RACE_PROBEK_REFUSED, RACE_PROBER_ENTRY, 0, 0, 0, "vm_call_method",
         "no instance in the debug information"},
    };
    uint8_t *sec = file + hdr->probes.off;
    struct race_probe_hdr ph = {.used = 7, .cap = PROBE_CAP};
    memcpy(sec, &ph, sizeof ph);
    for (size_t i = 0; i < sizeof p / sizeof p[0]; i++) {
        struct race_probe_rec r = {.commit = RACE_PROBE_COMMIT, .kind = p[i].kind,
                                   .role = p[i].role, .instance = p[i].instance,
                                   .addr = p[i].addr, .hits = p[i].hits};
        strcpy(r.func, p[i].func);
        strcpy(r.detail, p[i].detail);
        memcpy(sec + sizeof ph + i * sizeof r, &r, sizeof r);
    }
}

/* ---- Crashes: a fault whose operand's base register points into a block thread 1002
 * freed last (--crashes), or one with nothing freed anywhere near (--crash-wild) ---- */

/* The faulting instruction: the analyzer reads it back from this file and decodes it,
 * so it must find rbx + 0x10 as the address. */
__asm__(".text\n.globl mk_fault_insn\n.type mk_fault_insn,@function\n"
        "mk_fault_insn: movq 0x10(%rbx), %rax\nret\n.size mk_fault_insn,.-mk_fault_insn\n");
extern char mk_fault_insn[];

static void crashes(uint64_t k, const uint32_t *stacks)
{
    uint8_t *sec = file + hdr->crashes.off;
    struct race_crash_hdr ch = {.used = opt.crashes ? 2 : 1, .cap = CRASH_CAP};
    struct race_crash c[2];
    memset(c, 0, sizeof c);
    uint64_t ts = ts_of(MONO0 + 1000 + k * 1000 + 500);
    c[0] = (struct race_crash){
        .commit = RACE_CRASH_COMMIT, .sig = 11, .has_regs = 1, .code = 0x80 /* SI_KERNEL */,
        .tid = 1001, .ractor = opt.ruby ? 1 : 0, .stack = stacks[2], .ts = ts, .addr = 0,
        .pc = (uint64_t)(uintptr_t)mk_fault_insn, .seq = 0,
    };
    for (int r = 0; r < RACE_REG_COUNT; r++)
        c[0].regs[r] = 0x1000u + (uint64_t)r * 8; /* low: no heap lies there */
    c[0].regs[RACE_REG_RIP] = c[0].pc;
    if (opt.crashes) {
        const struct race_rec *b = &last_free[1], *other = &last_free[2];
        c[0].regs[RACE_REG_RBX] = b->addr + 8;          /* operand: rbx + 0x10 = addr + 24 */
        c[0].regs[RACE_REG_RAX] = 0xfdfdfdfdfdfdfdfdull; /* read from poisoned memory */
        c[0].regs[RACE_REG_R12] = other->addr;          /* a weaker match: another thread's */
        c[1] = (struct race_crash){
            .commit = RACE_CRASH_COMMIT, .sig = 6, .code = -6 /* SI_TKILL */, .first = 1,
            .tid = 1001, .ts = ts + 100, .stack = stacks[0],
        };
        printf("crash_block 0x%llx %llu %u\ncrash_other 0x%llx %u\n", (unsigned long long)b->addr,
               (unsigned long long)b->size, b->tid, (unsigned long long)other->addr, other->tid);
    }
    memcpy(sec, &ch, sizeof ch);
    memcpy(sec + sizeof ch, c, sizeof c);
}

/* The identity fields and the section table come from the format's own layout function
 * (race_trace.h), as the shim's do; the rest is this test's. */
static void header(const struct race_layout *lay, int argc, char **argv)
{
    race_hdr_layout(hdr, lay);
    hdr->flags = opt.crash || opt.crashes || opt.crash_wild ? 0 : RACE_FLAG_CLOSED;
    hdr->pid = getpid();
    hdr->ppid = getppid();
    hdr->clock = opt.mono ? RACE_CLOCK_MONOTONIC : RACE_CLOCK_TSC;
    hdr->ractor_state = opt.ruby ? RACE_RACTOR_VALID : RACE_RACTOR_NOT_RUBY;
    hdr->start_realtime_ns = START_REALTIME;
    hdr->clock_ts0 = ts_of(MONO0);
    hdr->clock_mono0 = MONO0;
    hdr->early_frees = 7;
    hdr->stack_sample = 1;
    hdr->stack_depth = RACE_MAX_FRAMES;
    hdr->dropped = (uint64_t)opt.dropped;
    if (opt.ruby)
        strcpy(hdr->ruby_version, "3.4.5");
    ssize_t n = readlink("/proc/self/exe", hdr->exe, sizeof hdr->exe - 1);
    if (n < 0)
        hdr->exe[0] = 0;
    size_t len = 0;
    for (int i = 0; i < argc; i++) {
        size_t a = strlen(argv[i]) + 1;
        if (len + a > sizeof hdr->cmdline)
            break;
        memcpy(hdr->cmdline + len, argv[i], a);
        len += a;
    }
    hdr->cmdline_len = (uint32_t)len;
    const char *o = "RACE_DIR=/tmp/mktrace\nRACE_STACK_SAMPLE=1\nRACE_STACK_DEPTH=64\n";
    strcpy(hdr->options, o);
    hdr->options_len = (uint32_t)strlen(o);
    struct race_depot_hdr dh = {.nbuckets = NBUCKETS, .entries_off = 64 + 4 * NBUCKETS};
    dh.entries_size = DEPOT_SIZE - dh.entries_off;
    memcpy(file + hdr->depot.off, &dh, sizeof dh);
}

static void usage(void)
{
    fputs("usage: mktrace [--threads N] [--events N] [--chunks N] [--torn N] [--corrupt N]\n"
          "               [--clamp N] [--bad-stack N] [--dropped N] [--crash] [--ruby]\n"
          "               [--mono] [--empty-exe-path] [--remap] [--findings] [--stale-ci]\n"
          "               [--probes] [--bad-probe-ref N] [--crashes] [--crash-wild]\n"
          "               [--ruby-frames] [--bad-ruby-frames] OUT\n", stderr);
    exit(64);
}

int main(int argc, char **argv)
{
    const char *out = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        int *num = !strcmp(a, "--threads") ? &opt.threads : !strcmp(a, "--events") ? &opt.events
                 : !strcmp(a, "--chunks") ? &opt.chunks : !strcmp(a, "--torn") ? &opt.torn
                 : !strcmp(a, "--corrupt") ? &opt.corrupt : !strcmp(a, "--clamp") ? &opt.clamp
                 : !strcmp(a, "--bad-stack") ? &opt.bad_stack
                 : !strcmp(a, "--dropped") ? &opt.dropped
                 : !strcmp(a, "--bad-probe-ref") ? &opt.bad_probe_ref : NULL;
        if (num) {
            if (++i == argc)
                usage();
            *num = atoi(argv[i]);
        } else if (!strcmp(a, "--crash")) {
            opt.crash = 1;
        } else if (!strcmp(a, "--ruby")) {
            opt.ruby = 1;
        } else if (!strcmp(a, "--mono")) {
            opt.mono = 1;
        } else if (!strcmp(a, "--empty-exe-path")) {
            opt.empty_exe = 1;
        } else if (!strcmp(a, "--remap")) {
            opt.remap = 1;
        } else if (!strcmp(a, "--findings")) {
            opt.findings = 1;
        } else if (!strcmp(a, "--stale-ci")) {
            opt.stale_ci = 1;
        } else if (!strcmp(a, "--probes")) {
            opt.probes = 1;
        } else if (!strcmp(a, "--ruby-frames")) {
            opt.ruby_frames = 1;
        } else if (!strcmp(a, "--bad-ruby-frames")) {
            opt.ruby_frames = opt.bad_ruby_frames = 1;
        } else if (!strcmp(a, "--crashes")) {
            opt.crashes = 1;
        } else if (!strcmp(a, "--crash-wild")) {
            opt.crash_wild = 1;
        } else if (a[0] == '-' || out) {
            usage();
        } else {
            out = a;
        }
    }
    if (!out || opt.threads < 1 || opt.threads > MAX_THREADS || opt.chunks < 1 || opt.events < 0)
        usage();

    struct race_layout lay = {.nchunks = (uint64_t)opt.chunks, .depot = DEPOT_SIZE, .modules = MODS_SIZE,
                              .findings = FIND_SIZE, .probes = opt.probes ? PROBES_SIZE : 0,
                              .crashes = opt.crashes || opt.crash_wild ? CRASHES_SIZE : 0,
                              .rbframes = opt.ruby_frames ? RB_SIZE : 0};
    file_size = race_layout_size(&lay);
    file = calloc(1, file_size);
    hdr = (struct race_hdr *)file;
    header(&lay, argc, argv);

    uint64_t pc[RACE_MAX_FRAMES];
    uint32_t stacks[4];
    stacks[0] = depot_add(pc, (uint32_t)mk_middle_a(pc)); /* LINE:main_a */
    stacks[1] = depot_add(pc, (uint32_t)mk_middle_b(pc)); /* LINE:main_b */
    stacks[2] = depot_add(pc, (uint32_t)mk_leaf(pc));     /* LINE:main_leaf */
    stacks[3] = 0;
    int first = 1;
    dl_iterate_phdr(add_module, &first);

    struct thread th[MAX_THREADS];
    for (int t = 0; t < opt.threads; t++)
        th[t] = (struct thread){.tid = 1001 + (uint32_t)t, .ractor = opt.ruby ? 1 + (uint32_t)t : 0};
    uint64_t k = 0;
    for (int e = 0; e < opt.events; e++)
        for (int t = 0; t < opt.threads; t++, k++) {
            int last = e == opt.events - 1;
            emit(&th[t], k, stacks, last);
            if (opt.probes && t == 0 && e % 25 == 0 && !(opt.crash && last))
                emit_watched(&th[t], k, e);
        }
    if (!opt.crash) {
        /* Every thread exits, releasing its chunk; then the exit handler's pair. */
        for (int t = 0; t < opt.threads; t++)
            release(&th[t]);
        hdr->clock_mono1 = MONO0 + 1000 + k * 1000;
        hdr->clock_ts1 = ts_of(hdr->clock_mono1);
    }
    damage();
    if (opt.findings)
        findings(k, stacks);
    if (opt.findings && opt.ruby_frames)
        ruby_frames();
    if (opt.stale_ci)
        stale_ci(k, stacks);
    if (opt.probes)
        probes();
    if (opt.crashes || opt.crash_wild)
        crashes(k, stacks);
    if (opt.remap) {
        /* As if the main program's range were reused by another object (dlclose, then
         * dlopen) halfway through: frames of later events belong to the newcomer. */
        static const char other[] = "/nonexistent/remapped.so";
        struct race_mod m = main_mod;
        m.path_len = sizeof other - 1;
        m.size = (uint32_t)((sizeof m + sizeof other + 7) & ~(size_t)7);
        m.build_id_len = 0;
        m.gen = 1;
        m.ts = ts_of(MONO0 + 1000 + (k / 2) * 1000);
        put_module(&m, other);
    }

    uint64_t total = k + n_probe_ev, incomplete = opt.crash ? (uint64_t)opt.threads : 0;
    uint64_t valid = total - hdr->overwritten - incomplete - n_flipped - n_kind99 - n_bad_ref;
    /* A clamped chunk's extra "records" were never events: bad, but not lost. */
    uint64_t torn = n_torn + incomplete;

    int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || write(fd, file, file_size) != (ssize_t)file_size || close(fd) != 0) {
        fprintf(stderr, "mktrace: %s: %s\n", out, strerror(errno));
        return 1;
    }
    printf("events %llu\nvalid %llu\ntorn %llu\ncorrupt %llu\noverwritten %llu\n"
           "chunks_claimed %llu\nstacks %u\nfile_size %llu\nring_off %llu\ndepot_off %llu\n"
           "modules_off %llu\nfindings_off %llu\nprobes_off %llu\nenter %llu\nexit %llu\n"
           "hit %llu\n",
           (unsigned long long)total, (unsigned long long)valid, (unsigned long long)torn,
           (unsigned long long)n_corrupt, (unsigned long long)hdr->overwritten,
           (unsigned long long)hdr->next_chunk, 3u, (unsigned long long)file_size,
           (unsigned long long)hdr->ring.off, (unsigned long long)hdr->depot.off,
           (unsigned long long)hdr->modules.off, (unsigned long long)hdr->findings.off,
           (unsigned long long)hdr->probes.off, (unsigned long long)n_by_kind[RACE_EV_ENTER],
           (unsigned long long)n_by_kind[RACE_EV_EXIT], (unsigned long long)n_by_kind[RACE_EV_HIT]);
    free(file);
    return 0;
}
