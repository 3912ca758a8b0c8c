/* findings.c - a finding goes to two places at once: the trace's findings section,
 * which overwriting cannot reach, and stderr as an ASan-shaped report with raw frames
 * (module+offset; `race report` symbolizes them offline). Owns both writers and the
 * RACE_ON_FINDING=abort decision. Runs inside signal handlers: stack buffers and
 * write(2) only, no locks, no allocation. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "shim.h"

static struct race_find_hdr *fh;
static struct race_finding *frec;
static const char *trace_path = "";

void race_findings_init(struct race_hdr *h)
{
    fh = NULL;
    if (!h->findings.size)
        return;
    fh = (struct race_find_hdr *)((uint8_t *)h + h->findings.off);
    fh->cap = (h->findings.size - sizeof(*fh)) / sizeof(struct race_finding);
    frec = (struct race_finding *)(fh + 1);
}

void race_findings_path(const char *path)
{
    trace_path = path;
}

static void put(const struct race_finding *f)
{
    if (!fh)
        return;
    uint64_t i = __atomic_fetch_add(&fh->used, 1, __ATOMIC_RELAXED);
    if (i >= fh->cap)
        return; /* counted: used > cap says how many did not fit */
    struct race_finding *d = &frec[i];
    memcpy((uint8_t *)d + 4, (const uint8_t *)f + 4, sizeof(*f) - 4);
    __atomic_store_n(&d->commit, RACE_FIND_COMMIT, __ATOMIC_RELEASE);
}

/* A line assembled in a stack buffer, written when complete. */
struct line {
    char b[600];
    size_t k;
};

static void s_(struct line *l, const char *s)
{
    l->k += race_strlcpy(l->b + l->k, s, sizeof(l->b) - l->k);
}

static void u_(struct line *l, uint64_t v)
{
    char n[24];
    race_fmt_u64(n, v);
    s_(l, n);
}

static void x_(struct line *l, uint64_t v)
{
    char n[24];
    race_fmt_hex(n, v);
    s_(l, "0x");
    s_(l, n);
}

static void nl(struct line *l)
{
    if (l->k < sizeof(l->b))
        l->b[l->k++] = '\n';
    ssize_t w = write(2, l->b, l->k);
    (void)w;
    l->k = 0;
}

static void who(struct line *l, uint32_t tid, uint32_t ractor)
{
    s_(l, "thread T");
    u_(l, tid);
    if (ractor) {
        s_(l, " (Ractor ");
        u_(l, ractor);
        s_(l, ")");
    }
}

static void frames(struct line *l, uint32_t stack)
{
    const uint64_t *pc;
    uint32_t n = race_depot_frames(stack, &pc);
    if (!n) {
        s_(l, "    (no stack recorded)");
        nl(l);
    }
    for (uint32_t i = 0; i < n; i++) {
        char where[480];
        race_modules_describe(pc[i], where, sizeof(where));
        s_(l, "    #");
        u_(l, i);
        s_(l, " ");
        x_(l, pc[i]);
        s_(l, " (");
        s_(l, where);
        s_(l, ")");
        nl(l);
    }
}

static void report(const struct race_finding *f)
{
    struct line l = {.k = 0};
    int pid = getpid();
    const char *name = race_find_name(f->type);
    int is_free = f->type == RACE_FIND_DOUBLE_FREE || f->type == RACE_FIND_INVALID_FREE;
    nl(&l);
    s_(&l, "==");
    u_(&l, (uint64_t)pid);
    s_(&l, "==ERROR: race: ");
    s_(&l, name);
    s_(&l, " on address ");
    x_(&l, f->addr);
    if (f->pc) {
        s_(&l, " at pc ");
        x_(&l, f->pc);
    }
    nl(&l);
    if (is_free) {
        s_(&l, f->type == RACE_FIND_DOUBLE_FREE ? "attempting double-free on " : "attempting free of an address that is not a block's start: ");
        x_(&l, f->addr);
        s_(&l, " in ");
    } else if (f->type == RACE_FIND_WRITE_AFTER_FREE) {
        s_(&l, "a freed block was written at ");
        x_(&l, f->addr);
        s_(&l, "; seen by ");
    } else if (f->type == RACE_FIND_OVERFLOW_AT_FREE) {
        s_(&l, "a byte after the block was overwritten (seen when it was freed) at ");
        x_(&l, f->addr);
        s_(&l, "; free by ");
    } else {
        s_(&l, f->access == RACE_ACCESS_WRITE ? "WRITE" : f->access == RACE_ACCESS_READ ? "READ" : "ACCESS");
        s_(&l, " of size ");
        if (f->access_size)
            u_(&l, f->access_size);
        else
            s_(&l, "?");
        s_(&l, " at ");
        x_(&l, f->addr);
        s_(&l, " by ");
    }
    who(&l, f->tid, f->ractor);
    if (f->detail[0]) {
        s_(&l, " (");
        s_(&l, f->detail);
        s_(&l, ")");
    }
    s_(&l, ":");
    nl(&l);
    frames(&l, f->stack);
    nl(&l);
    if (f->block_addr) {
        x_(&l, f->addr);
        s_(&l, " is located ");
        if (f->addr < f->block_addr) {
            u_(&l, f->block_addr - f->addr);
            s_(&l, " bytes before");
        } else if (f->addr >= f->block_addr + f->block_size) {
            u_(&l, f->addr - (f->block_addr + f->block_size));
            s_(&l, " bytes after");
        } else {
            u_(&l, f->addr - f->block_addr);
            s_(&l, " bytes inside of");
        }
        s_(&l, " ");
        u_(&l, f->block_size);
        s_(&l, "-byte region [");
        x_(&l, f->block_addr);
        s_(&l, ",");
        x_(&l, f->block_addr + f->block_size);
        s_(&l, ")");
        nl(&l);
    }
    if (f->free_ts) {
        s_(&l, "freed by ");
        who(&l, f->free_tid, f->free_ractor);
        s_(&l, " via ");
        s_(&l, race_entry_name(f->free_entry));
        if (f->ts >= f->free_ts) {
            s_(&l, ", ");
            u_(&l, race_ticks_to_ns(f->ts - f->free_ts) / 1000);
            s_(&l, " us before");
        }
        s_(&l, ":");
        nl(&l);
        frames(&l, f->free_stack);
        nl(&l);
    }
    if (f->alloc_ts) {
        s_(&l, "previously allocated by ");
        who(&l, f->alloc_tid, f->alloc_ractor);
        s_(&l, ":");
        nl(&l);
        frames(&l, f->alloc_stack);
        nl(&l);
    }
    s_(&l, "SUMMARY: race: ");
    s_(&l, name);
    const uint64_t *pc;
    if (race_depot_frames(f->stack, &pc)) {
        char where[480];
        race_modules_describe(pc[0], where, sizeof(where));
        s_(&l, " (");
        s_(&l, where);
        s_(&l, ")");
    }
    nl(&l);
    s_(&l, "race: recorded in ");
    s_(&l, trace_path);
    s_(&l, race_g.on_finding_abort ? "; RACE_ON_FINDING=abort: aborting"
                                   : "; RACE_ON_FINDING=continue: going on, this block is not reported again");
    nl(&l);
}

/* Records and prints one finding; with RACE_ON_FINDING=abort it does not return. */
void race_finding_report(struct race_finding *f, const void *uc)
{
    (void)uc;
    put(f);
    report(f);
    if (race_g.on_finding_abort) {
        race_crash_own_abort(); /* crash.c: this SIGABRT is the finding's, not a crash */
        abort();
    }
}
