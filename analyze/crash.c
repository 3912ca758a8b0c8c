/* crash.c - explains a crash record with the recorded frees: which freed block the fault
 * address, the faulting operand (decoded with Zydis from the module file on disk) or a
 * register points into, who freed it and when (docs/crash.md).
 * Owns: the index of a trace's frees by address, and the ranking of the matches.
 * Must never: claim more than the trace shows: the recorder records frees, not
 * allocations, so a block is "proven reused" only when an event at its address says so. */
#include <fcntl.h>
#include <gelf.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <Zydis/Zydis.h>

#include "race.h"

/* Internal kind for the destination of a moving realloc: a new block starts there. */
#define EV_MOVED 0xa0u

struct ixev {
    uint64_t addr, end, ts, seq;
    uint32_t tid, ractor, stack;
    uint8_t kind, entry;
    uint16_t flags;
};

struct race_freeix {
    struct ixev *ev;      /* sorted by address, then time */
    size_t n, cap;
    uint64_t maxspan;     /* the largest block: how far back a containing block can start */
};

static bool moves(unsigned entry)
{
    return entry == RACE_ENTRY_REALLOC || entry == RACE_ENTRY_REALLOCARRAY ||
           entry == RACE_ENTRY_RUBY_XREALLOC || entry == RACE_ENTRY_RUBY_XREALLOC2 ||
           entry == RACE_ENTRY_RUBY_SIZED_XREALLOC || entry == RACE_ENTRY_RUBY_SIZED_XREALLOC2;
}

static void ix_add(struct race_freeix *ix, const struct ixev *e)
{
    if (ix->n == ix->cap) {
        ix->cap = ix->cap ? ix->cap * 2 : 4096;
        ix->ev = xreallocarray(ix->ev, ix->cap, sizeof *ix->ev);
    }
    ix->ev[ix->n++] = *e;
    if (e->end - e->addr > ix->maxspan)
        ix->maxspan = e->end - e->addr;
}

static void ix_rec(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    (void)t;
    (void)off;
    struct race_freeix *ix = ctx;
    if (r->kind != RACE_EV_FREE && r->kind != RACE_EV_ALLOC)
        return;
    uint64_t size = r->size ? r->size : 1;
    if (r->addr + size < r->addr)
        return; /* wraps: no block */
    struct ixev e = {.addr = r->addr, .end = r->addr + size, .ts = r->ts, .seq = r->seq,
                     .tid = r->tid, .ractor = r->ractor, .stack = r->stack, .kind = r->kind,
                     .entry = r->entry, .flags = r->flags};
    ix_add(ix, &e);
    if (r->kind == RACE_EV_FREE && moves(r->entry) && r->aux) {
        e = (struct ixev){.addr = r->aux, .end = r->aux + 1, .ts = r->ts, .seq = r->seq,
                          .tid = r->tid, .ractor = r->ractor, .kind = EV_MOVED, .entry = r->entry};
        ix_add(ix, &e);
    }
}

static int by_addr(const void *a, const void *b)
{
    const struct ixev *x = a, *y = b;
    if (x->addr != y->addr)
        return x->addr < y->addr ? -1 : 1;
    return (x->ts > y->ts) - (x->ts < y->ts);
}

struct race_freeix *freeix_build(struct race_trace *t)
{
    struct race_freeix *ix = xcalloc(1, sizeof *ix);
    trace_scan(t, ix_rec, ix);
    if (ix->n)
        qsort(ix->ev, ix->n, sizeof *ix->ev, by_addr);
    return ix;
}

void freeix_free(struct race_freeix *ix)
{
    if (ix)
        free(ix->ev);
    free(ix);
}

/* First event starting above addr. */
static size_t upper(const struct race_freeix *ix, uint64_t addr)
{
    size_t lo = 0, hi = ix->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (ix->ev[mid].addr <= addr)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Walking back from upper(): blocks that start no further than maxspan below addr,
 * and no more than this many (a trace of millions of frees around one address would
 * otherwise make one lookup linear). */
#define SCAN_MAX 200000

static bool same_event(const struct ixev *a, uint32_t tid, uint64_t seq)
{
    return a->tid == tid && a->seq == seq;
}

/* The most recent free of a block containing addr at or before ts, skipping the event
 * (skip_tid, skip_seq); NULL if none. */
static const struct ixev *latest_free(const struct race_freeix *ix, uint64_t addr, uint64_t ts,
                                      uint32_t skip_tid, uint64_t skip_seq)
{
    const struct ixev *best = NULL;
    size_t i = upper(ix, addr), steps = 0;
    while (i > 0 && steps++ < SCAN_MAX) {
        const struct ixev *e = &ix->ev[--i];
        if (addr - e->addr >= ix->maxspan)
            break;
        if (e->kind != RACE_EV_FREE || addr >= e->end || e->ts > ts || same_event(e, skip_tid, skip_seq))
            continue;
        if (!best || e->ts > best->ts || (e->ts == best->ts && e->seq > best->seq))
            best = e;
    }
    return best;
}

/* What the trace says about the block f after it was freed: a guarded allocation or a
 * moving realloc's new block at its address before the crash proves it was reused
 * before the crash; a free of it after the crash proves it was allocated again at some
 * point, not when. */
static void reuse_of(const struct race_freeix *ix, const struct ixev *f, uint64_t crash_ts,
                     uint32_t skip_tid, uint64_t skip_seq, struct race_match *m)
{
    size_t i = upper(ix, f->end - 1), steps = 0;
    while (i > 0 && steps++ < SCAN_MAX) {
        const struct ixev *e = &ix->ev[--i];
        if (f->addr - e->addr >= ix->maxspan && e->addr < f->addr)
            break;
        if (e->end <= f->addr || e->addr >= f->end || e->ts <= f->ts || same_event(e, skip_tid, skip_seq))
            continue;
        if ((e->kind == RACE_EV_ALLOC || e->kind == EV_MOVED) && e->ts <= crash_ts) {
            if (m->reuse != RACE_REUSE_BEFORE || e->ts < m->reuse_ts) {
                m->reuse = RACE_REUSE_BEFORE;
                m->reuse_ts = e->ts;
                m->reuse_tid = e->tid;
            }
        } else if (e->kind == RACE_EV_FREE && e->ts > crash_ts && m->reuse == RACE_REUSE_UNKNOWN) {
            m->reuse = RACE_REUSE_LATER_FREE;
            m->reuse_ts = e->ts;
            m->reuse_tid = e->tid;
        }
    }
}

/* ---- the faulting instruction ------------------------------------------------------ */

/* Zydis's 64-bit registers in its numbering order (rax, rcx, rdx, rbx, rsp, rbp, rsi,
 * rdi, r8..r15) -> enum race_reg. */
static int race_reg_of(ZydisRegister r)
{
    static const int order[16] = {
        RACE_REG_RAX, RACE_REG_RCX, RACE_REG_RDX, RACE_REG_RBX, RACE_REG_RSP, RACE_REG_RBP,
        RACE_REG_RSI, RACE_REG_RDI, RACE_REG_R8, RACE_REG_R9, RACE_REG_R10, RACE_REG_R11,
        RACE_REG_R12, RACE_REG_R13, RACE_REG_R14, RACE_REG_R15,
    };
    if (r == ZYDIS_REGISTER_NONE)
        return -1;
    ZydisRegister big = ZydisRegisterGetLargestEnclosing(ZYDIS_MACHINE_MODE_LONG_64, r);
    if (big == ZYDIS_REGISTER_RIP)
        return RACE_REG_RIP;
    if (big >= ZYDIS_REGISTER_RAX && big <= ZYDIS_REGISTER_R15)
        return order[big - ZYDIS_REGISTER_RAX];
    return -2; /* a register the record does not hold */
}

/* The instruction's bytes from the file the module log names for pc (through the ELF
 * program headers: pc - bias is a virtual address of a PT_LOAD segment). */
static size_t read_code(struct race_sym *sym, uint64_t pc, uint64_t ts, uint8_t *buf, size_t cap,
                        const char **why)
{
    uint64_t bias = 0;
    const char *path = sym_file(sym, pc, ts, &bias);
    if (!path) {
        *why = "the code's module file is not available";
        return 0;
    }
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        *why = "cannot open the module file";
        return 0;
    }
    size_t got = 0;
    *why = "pc lies in no loaded segment of its module";
    Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
    size_t nph = 0;
    if (elf && elf_getphdrnum(elf, &nph) == 0) {
        uint64_t va = pc - bias;
        for (size_t i = 0; i < nph; i++) {
            GElf_Phdr ph;
            if (!gelf_getphdr(elf, (int)i, &ph) || ph.p_type != PT_LOAD)
                continue;
            if (va < ph.p_vaddr || va - ph.p_vaddr >= ph.p_filesz)
                continue;
            uint64_t left = ph.p_filesz - (va - ph.p_vaddr);
            ssize_t n = pread(fd, buf, left < cap ? left : cap, (off_t)(ph.p_offset + va - ph.p_vaddr));
            got = n > 0 ? (size_t)n : 0;
            *why = got ? NULL : "cannot read the module file";
            break;
        }
    }
    if (elf)
        elf_end(elf);
    close(fd);
    return got;
}

static void decode(struct race_sym *sym, const struct race_crash *c, struct race_explain *x)
{
    uint8_t code[ZYDIS_MAX_INSTRUCTION_LENGTH];
    const char *why = NULL;
    x->base = x->index = -1;
    size_t n = read_code(sym, c->pc, c->ts, code, sizeof code, &why);
    if (!n) {
        snprintf(x->why_undecoded, sizeof x->why_undecoded, "%s", why);
        return;
    }
    ZydisDecoder dec;
    ZydisDecodedInstruction ins;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if (ZYAN_FAILED(ZydisDecoderInit(&dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)) ||
        ZYAN_FAILED(ZydisDecoderDecodeFull(&dec, code, n, &ins, ops))) {
        snprintf(x->why_undecoded, sizeof x->why_undecoded, "the bytes at pc do not decode");
        return;
    }
    x->decoded = true;
    ZydisFormatter fmt;
    if (ZYAN_FAILED(ZydisFormatterInit(&fmt, ZYDIS_FORMATTER_STYLE_ATT)) ||
        ZYAN_FAILED(ZydisFormatterFormatInstruction(&fmt, &ins, ops, ins.operand_count_visible,
                                                    x->insn, sizeof x->insn, c->pc, NULL)))
        snprintf(x->insn, sizeof x->insn, "?");
    for (unsigned i = 0; i < ins.operand_count; i++) {
        const ZydisDecodedOperand *op = &ops[i];
        if (op->type != ZYDIS_OPERAND_TYPE_MEMORY || op->mem.type != ZYDIS_MEMOP_TYPE_MEM)
            continue;
        int b = race_reg_of(op->mem.base), ix = race_reg_of(op->mem.index);
        if (b == RACE_REG_RSP && op->visibility == ZYDIS_OPERAND_VISIBILITY_HIDDEN)
            continue; /* push, pop, call: the stack, not the data */
        x->has_mem = true;
        x->mem_size = (uint32_t)(op->size / 8);
        x->write = (op->actions & ZYDIS_OPERAND_ACTION_MASK_WRITE) != 0;
        x->base = b >= 0 && b != RACE_REG_RIP ? b : -1;
        x->index = ix >= 0 && ix != RACE_REG_RIP ? ix : -1;
        if (!c->has_regs || b == -2 || ix == -2 || op->mem.segment == ZYDIS_REGISTER_FS ||
            op->mem.segment == ZYDIS_REGISTER_GS)
            break; /* thread-local, or a register not recorded: no address */
        uint64_t ea = (uint64_t)op->mem.disp.value;
        if (b == RACE_REG_RIP)
            ea += c->pc + ins.length;
        else if (b >= 0)
            ea += c->regs[b];
        if (ix >= 0)
            ea += c->regs[ix] * op->mem.scale;
        if (ins.address_width == 32)
            ea &= 0xffffffffu;
        x->ea = ea;
        x->has_ea = true;
        break;
    }
}

/* ---- matching ---------------------------------------------------------------------- */

/* Every byte 0xfd, four bytes at least: the quarantine's poison (shim/quarantine.c). */
static bool poisoned(uint64_t v)
{
    return v == 0xfdfdfdfdfdfdfdfdull || v == 0xfdfdfdfdull;
}

static void add_match(struct race_explain *x, const struct race_freeix *ix, const struct ixev *f,
                      unsigned via, int reg, uint64_t value, uint32_t skip_tid, uint64_t skip_seq)
{
    for (size_t i = 0; i < x->nm; i++)
        if (x->m[i].block == f->addr && x->m[i].free_ts == f->ts && x->m[i].free_tid == f->tid)
            return; /* already found through a better candidate */
    if (x->nm == RACE_MAX_MATCH)
        return;
    struct race_match *m = &x->m[x->nm++];
    *m = (struct race_match){.via = (uint8_t)via, .reg = (int8_t)reg, .value = value,
                             .block = f->addr, .size = f->end - f->addr, .free_ts = f->ts,
                             .free_seq = f->seq, .free_tid = f->tid, .free_ractor = f->ractor,
                             .free_stack = f->stack, .free_entry = f->entry, .free_flags = f->flags};
    reuse_of(ix, f, x->cr->c.ts, skip_tid, skip_seq, m);
    const struct ixev *p = latest_free(ix, f->addr, f->ts, f->tid, f->seq);
    if (p && p->addr == f->addr && !same_event(p, skip_tid, skip_seq)) {
        m->prev_ts = p->ts;
        m->prev_tid = p->tid;
        m->prev_ractor = p->ractor;
        m->prev_stack = p->stack;
        m->prev_entry = p->entry;
    }
    /* A register that still holds a block its own thread freed is what free(p) leaves
     * behind, not evidence: only the access itself (operand, fault address, its base and
     * index), or a block another thread or Ractor freed, explains a crash. */
    const struct race_crash *c = &x->cr->c;
    bool own = f->tid == c->tid && f->ractor == c->ractor;
    bool prev_other = m->prev_ts && (m->prev_tid != c->tid || m->prev_ractor != c->ractor);
    if (via == RACE_VIA_REG && own && !prev_other)
        x->nm--;
}

static void try_addr(struct race_explain *x, const struct race_freeix *ix, unsigned via, int reg,
                     uint64_t value, uint32_t skip_tid, uint64_t skip_seq)
{
    if (value < 4096 || !ix->n)
        return;
    const struct ixev *f = latest_free(ix, value, x->cr->c.ts, skip_tid, skip_seq);
    if (f)
        add_match(x, ix, f, via, reg, value, skip_tid, skip_seq);
}

/* The allocator's own functions a crash inside a free or realloc passes through. */
static bool allocator_frame(const char *f)
{
    static const char *const names[] = {
        "free", "__libc_free", "cfree", "_int_free", "_int_free_merge_chunk", "munmap_chunk",
        "realloc", "__libc_realloc", "_int_realloc", "ruby_xfree", "ruby_sized_xfree",
    };
    for (size_t i = 0; f && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(f, names[i]) == 0)
            return true;
    return false;
}

/* A crash inside free (glibc's checks abort, or it faults walking a damaged list): the
 * crash stack passes through the C library's free within its first frames, and the
 * crashing thread's last event is a free, recorded before libc ran it. Both are needed:
 * a thread whose last event was a free long ago may raise a signal for another reason,
 * and a fault in the recorder's own free wrapper (asking the size of a garbage pointer)
 * comes before that free is recorded: the thread's last free is then an older one. */
static const struct ixev *free_in_progress(const struct race_freeix *ix, struct race_trace *t,
                                           struct race_sym *sym, const struct race_crash *c)
{
    struct race_stack st;
    const char *why;
    if (!c->stack || trace_stack(t, c->stack, &st, &why) != RACE_STACK_OK)
        return NULL;
    bool in_free = false;
    for (uint32_t i = 0; i < st.nframes && i < 10 && !in_free; i++) {
        struct race_frame fr;
        sym_frame(sym, st.pc[i], c->ts, i == 0, &fr);
        in_free = allocator_frame(fr.func) && !(fr.module && strncmp(fr.module, "librace", 7) == 0);
    }
    if (!in_free)
        return NULL;
    const struct ixev *last = NULL;
    for (size_t i = 0; i < ix->n; i++) {
        const struct ixev *e = &ix->ev[i];
        if (e->kind == RACE_EV_FREE && e->tid == c->tid && e->ts <= c->ts &&
            (!last || e->seq > last->seq))
            last = e;
    }
    if (!last || (c->seq && last->seq != c->seq))
        return NULL;
    return last;
}

static int by_rank(const void *a, const void *b)
{
    const struct race_match *x = a, *y = b;
    if (x->via != y->via)
        return x->via - y->via;
    return (x->free_ts < y->free_ts) - (x->free_ts > y->free_ts); /* closer in time first */
}

void crash_explain(struct race_trace *t, struct race_sym *sym, const struct race_freeix *ix,
                   const struct race_crashrec *cr, struct race_explain *x)
{
    const struct race_crash *c = &cr->c;
    *x = (struct race_explain){.cr = cr, .base = -1, .index = -1};
    /* The instruction a fault stopped at; a raised signal (abort) stopped in kill(). */
    bool fault = c->sig == SIGSEGV || c->sig == SIGBUS;
    if (c->has_regs && c->pc && (fault || c->sig == SIGILL || c->sig == SIGFPE))
        decode(sym, c, x);
    else
        snprintf(x->why_undecoded, sizeof x->why_undecoded, "no registers were recorded");
    uint32_t skip_tid = 0;
    uint64_t skip_seq = 0;
    const struct ixev *inflight = free_in_progress(ix, t, sym, c);
    if (inflight) {
        x->in_free = true;
        x->in_free_addr = inflight->addr;
        x->in_free_ts = inflight->ts;
        x->in_free_stack = inflight->stack;
        x->in_free_entry = inflight->entry;
        skip_tid = inflight->tid;
        skip_seq = inflight->seq;
        const struct ixev *f = latest_free(ix, inflight->addr, c->ts, skip_tid, skip_seq);
        if (f && f->addr == inflight->addr)
            add_match(x, ix, f, RACE_VIA_DOUBLE_FREE, -1, inflight->addr, skip_tid, skip_seq);
    }
    if (x->has_ea)
        try_addr(x, ix, RACE_VIA_OPERAND, -1, x->ea, skip_tid, skip_seq);
    if (fault)
        try_addr(x, ix, RACE_VIA_FAULT, -1, c->addr, skip_tid, skip_seq);
    if (c->has_regs) {
        if (x->base >= 0)
            try_addr(x, ix, RACE_VIA_BASE, x->base, c->regs[x->base], skip_tid, skip_seq);
        if (x->index >= 0)
            try_addr(x, ix, RACE_VIA_INDEX, x->index, c->regs[x->index], skip_tid, skip_seq);
        for (int r = 0; r < RACE_REG_COUNT; r++) {
            if (r == RACE_REG_RSP || r == RACE_REG_RIP || r == RACE_REG_EFLAGS)
                continue;
            if (poisoned(c->regs[r]))
                x->poison |= 1u << r;
            try_addr(x, ix, RACE_VIA_REG, r, c->regs[r], skip_tid, skip_seq);
        }
        x->ea_poison = x->base >= 0 && poisoned(c->regs[x->base]);
    }
    if (fault && (poisoned(c->addr) || (c->addr >> 32) == 0xfdfdfdfdull))
        x->addr_poison = true;
    qsort(x->m, x->nm, sizeof x->m[0], by_rank);
}

size_t crash_explain_all(struct race_trace *t, struct race_sym *sym, struct race_explain **out)
{
    *out = NULL;
    size_t n = 0;
    for (size_t i = 0; i < t->ncrash; i++)
        n += t->crash[i].c.first == 0;
    if (!n)
        return 0;
    struct race_freeix *ix = freeix_build(t);
    struct race_explain *x = xcalloc(n, sizeof *x);
    size_t k = 0;
    for (size_t i = 0; i < t->ncrash; i++)
        if (t->crash[i].c.first == 0)
            crash_explain(t, sym, ix, &t->crash[i], &x[k++]);
    freeix_free(ix);
    *out = x;
    return n;
}

const char *crash_via_name(unsigned via)
{
    static const char *const names[] = {
        "the block being freed again", "the faulting operand's address", "the fault address",
        "the operand's base register", "the operand's index register", "a register",
    };
    return via < sizeof names / sizeof names[0] ? names[via] : "?";
}

const char *crash_code_name(unsigned sig, int code)
{
    if (code == SI_USER)
        return "sent by kill";
    if (code == SI_TKILL)
        return "raised by the thread (raise/abort)";
    if (code == SI_KERNEL)
        return sig == SIGSEGV ? "general protection: a non-canonical address, address unknown"
                              : "sent by the kernel";
    if (sig == SIGSEGV)
        return code == SEGV_MAPERR ? "address not mapped" : code == SEGV_ACCERR ? "access not permitted" : "?";
    if (sig == SIGBUS)
        return code == BUS_ADRALN ? "misaligned" : code == BUS_ADRERR ? "no such physical address"
             : code == BUS_OBJERR ? "object error" : "?";
    return "";
}
