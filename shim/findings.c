/* findings.c - a finding goes to two places at once: the trace's findings section,
 * which overwriting cannot reach, and stderr as an ASan-shaped report with raw frames
 * (module+offset; `race report` prints the same lines with symbolized ones: the words
 * are common/race_words.h). Owns both writers, the per-process deduplication (a finding
 * seen again is counted, not reported again), the bound on stderr under a storm, and the
 * RACE_ON_FINDING=abort decision. Runs inside signal handlers: static storage, stack
 * buffers and write(2) only; no allocation, and the one lock (the report buffer's) is
 * only ever tried, with a bounded wait, so a report that faults cannot deadlock. */
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "race_words.h"
#include "ruby.h"
#include "shim.h"

/* The first findings are printed whole; after them a storm costs one summary line a
 * second on stderr, and one at exit: everything is counted in the trace. */
#ifndef RACE_REPORTS_FULL /* bench/storm.sh builds a librace.so with 0: reporting suppressed */
#define RACE_REPORTS_FULL 16
#endif
#define REPORTS_FULL RACE_REPORTS_FULL
static const uint64_t reports_full = REPORTS_FULL; /* a variable: 0 must not warn */
/* Distinct findings remembered for counting (a power of two). Past that, a finding is
 * recorded and printed (or summarized) every time it is seen. */
#define SEEN_CAP 4096u
#define REPORT_BUF (64u * 1024u)

static struct race_find_hdr *fh;
static struct race_finding *frec;
static const char *trace_path = "";

/* One distinct finding: (type, pc, block), and where its record is. Claimed by a CAS
 * on hash; key written right after and announced by ready. */
struct seen {
    uint64_t hash;    /* 0: empty */
    uint64_t pc;      /* faulting pc, or (for findings without one) 1 << 63 | use stack */
    uint64_t block;   /* the block (or call-info's kwarg block), or the address */
    uint32_t type, ready;
    uint64_t rec;     /* 1 + its record's index in the findings section; 0: none (yet) */
    uint64_t pending; /* sightings not yet added to the record's count */
};
static struct seen seen[SEEN_CAP];

static uint64_t n_reports;   /* findings that claimed a place among the first REPORTS_FULL */
static uint64_t n_new_quiet; /* new findings not printed (past REPORTS_FULL, or buffer busy) */
static uint64_t n_repeats;   /* sightings of a finding already recorded */
static uint64_t n_distinct;  /* findings recorded */
static uint64_t last_summary_ns;
static uint32_t out_lock;    /* holder's tid, 0: free */
static char out_buf[REPORT_BUF];

void race_findings_init(struct race_hdr *h)
{
    /* also a fork child's new trace: what the parent saw and counted is the parent's */
    memset(seen, 0, sizeof(seen));
    n_reports = n_new_quiet = n_repeats = n_distinct = last_summary_ns = 0;
    out_lock = 0;
    fh = NULL;
    if (!h->findings.size)
        return;
    fh = (struct race_find_hdr *)((uint8_t *)h + h->findings.off);
    fh->cap = (h->findings.size - sizeof(*fh)) / sizeof(struct race_finding);
    frec = (struct race_finding *)(fh + 1);
    race_rb_init(h);
}

void race_findings_path(const char *path)
{
    trace_path = path;
}

/* ---- Counting --------------------------------------------------------------------- */

static void key_of(const struct race_finding *f, uint64_t *pc, uint64_t *block, uint64_t *hash)
{
    *pc = f->pc ? f->pc : 1ull << 63 | f->stack;
    *block = f->block_addr ? f->block_addr : f->addr;
    uint64_t h = (*pc ^ (*block * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)f->type << 56)) * 0xff51afd7ed558ccdull;
    *hash = (h ^ (h >> 29)) | 1u;
}

/* The entry for f's key, claiming an empty one when claim is set (*is_new then says
 * whether it did); NULL when it is not there, or the table is full. */
static struct seen *find(const struct race_finding *f, int claim, int *is_new)
{
    uint64_t pc, block, h;
    key_of(f, &pc, &block, &h);
    for (uint32_t n = 0, i = (uint32_t)h & (SEEN_CAP - 1); n < SEEN_CAP; n++, i = (i + 1) & (SEEN_CAP - 1)) {
        struct seen *e = &seen[i];
        uint64_t cur = __atomic_load_n(&e->hash, __ATOMIC_ACQUIRE);
        if (cur == 0) {
            if (!claim)
                return NULL;
            if (__atomic_compare_exchange_n(&e->hash, &cur, h, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
                e->pc = pc;
                e->block = block;
                e->type = f->type;
                __atomic_store_n(&e->ready, 1, __ATOMIC_RELEASE);
                *is_new = 1;
                return e;
            }
        }
        if (cur != h)
            continue;
        /* its claimer writes three words after the CAS: wait for them, boundedly */
        for (int k = 0; !__atomic_load_n(&e->ready, __ATOMIC_ACQUIRE); k++) {
            if (k > 1000)
                return NULL;
            sched_yield();
        }
        if (e->pc == pc && e->block == block && e->type == f->type)
            return e;
    }
    return NULL;
}

/* Adds what was seen since the record's publication to its count. */
static void drain(struct seen *e)
{
    uint64_t r = __atomic_load_n(&e->rec, __ATOMIC_SEQ_CST);
    uint64_t n = __atomic_exchange_n(&e->pending, 0, __ATOMIC_SEQ_CST);
    if (n)
        __atomic_fetch_add(&frec[r - 1].count, n, __ATOMIC_RELAXED);
}

static void summary_maybe(void);

/* One more sighting of a recorded finding. Either this call sees the record published
 * and drains, or the publisher's drain (after its store of rec) sees this pending. */
static void sighting(struct seen *e)
{
    __atomic_fetch_add(&n_repeats, 1, __ATOMIC_RELAXED);
    __atomic_fetch_add(&e->pending, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&e->rec, __ATOMIC_SEQ_CST))
        drain(e);
    summary_maybe();
}

int race_finding_again(const struct race_finding *f)
{
    struct seen *e = find(f, 0, NULL);
    if (!e)
        return 0;
    sighting(e);
    return 1;
}

/* Into the findings section, count 1; returns 1 + its index, 0 when it did not fit
 * (counted: used > cap says how many did not). */
static uint64_t put(struct race_finding *f)
{
    if (!fh)
        return 0;
    uint64_t i = __atomic_fetch_add(&fh->used, 1, __ATOMIC_RELAXED);
    if (i >= fh->cap)
        return 0;
    struct race_finding *d = &frec[i];
    f->count = 1;
    memcpy((uint8_t *)d + 4, (const uint8_t *)f + 4, sizeof(*f) - 4);
    __atomic_store_n(&d->commit, RACE_FIND_COMMIT, __ATOMIC_RELEASE);
    return i + 1;
}

/* ---- Writing ---------------------------------------------------------------------- */

/* Text assembled whole, then written at once: reports never interleave. */
struct out {
    char *b;
    size_t k, cap;
};

static void s_(struct out *o, const char *s)
{
    if (o->k < o->cap)
        o->k += race_strlcpy(o->b + o->k, s, o->cap - o->k);
}

static void u_(struct out *o, uint64_t v)
{
    char n[24];
    race_fmt_u64(n, v);
    s_(o, n);
}

/* 65239 -> "65,239" */
static void ug_(struct out *o, uint64_t v)
{
    char n[24], g[32];
    size_t len = race_fmt_u64(n, v), k = 0;
    for (size_t i = 0; i < len; i++) {
        if (i && (len - i) % 3 == 0)
            g[k++] = ',';
        g[k++] = n[i];
    }
    g[k] = 0;
    s_(o, g);
}

static void x_(struct out *o, uint64_t v)
{
    char n[24];
    race_fmt_hex(n, v);
    s_(o, "0x");
    s_(o, n);
}

static void nl(struct out *o)
{
    s_(o, "\n");
}

/* Nanoseconds as milliseconds with 3 decimals, rounded (the report's %.3f). */
static void ms_(struct out *o, uint64_t ns)
{
    uint64_t us = (ns + 500) / 1000;
    char f[4] = {(char)('0' + us % 1000 / 100), (char)('0' + us % 100 / 10), (char)('0' + us % 10), 0};
    u_(o, us / 1000);
    s_(o, ".");
    s_(o, f);
}

/* A timestamp as the report shows it: milliseconds since the trace started. */
static void at_(struct out *o, uint64_t ts)
{
    uint64_t ts0 = race_g.hdr ? race_g.hdr->clock_ts0 : 0;
    s_(o, RACE_W_AT);
    if (ts < ts0) {
        s_(o, "-");
        ms_(o, race_ticks_to_ns(ts0 - ts));
    } else {
        ms_(o, race_ticks_to_ns(ts - ts0));
    }
    s_(o, RACE_W_MS);
}

static void flush(struct out *o)
{
    for (size_t done = 0; done < o->k;) {
        ssize_t w = write(2, o->b + done, o->k - done);
        if (w <= 0)
            break; /* EINTR included: a report is not worth a loop on a broken stderr */
        done += (size_t)w;
    }
    o->k = 0;
}

/* The report buffer: tried for at most ~20 ms (another thread's report), never waited
 * for by its own holder (a report that faulted). 0: not taken. */
static int out_take(int wait)
{
    uint32_t me = (uint32_t)gettid();
    for (int k = 0;; k++) {
        uint32_t free_ = 0;
        if (__atomic_compare_exchange_n(&out_lock, &free_, me, 0, __ATOMIC_ACQUIRE, __ATOMIC_RELAXED))
            return 1;
        if (free_ == me || !wait || k >= 200)
            return 0;
        struct timespec ts = {0, 100000};
        nanosleep(&ts, NULL);
    }
}

static void out_give(void)
{
    __atomic_store_n(&out_lock, 0, __ATOMIC_RELEASE);
}

static void who(struct out *o, uint32_t tid, uint32_t ractor, int always_ractor)
{
    s_(o, RACE_W_THREAD);
    u_(o, tid);
    if (ractor) {
        s_(o, RACE_W_RACTOR);
        u_(o, ractor);
        s_(o, ")");
    } else if (always_ractor) {
        s_(o, RACE_W_RACTOR_UNKNOWN);
    }
}

static void frames(struct out *o, uint32_t stack)
{
    const uint64_t *pc;
    uint32_t n = race_depot_frames(stack, &pc);
    if (!n) {
        s_(o, "    " RACE_W_NO_STACK);
        nl(o);
    }
    for (uint32_t i = 0; i < n; i++) {
        char where[480];
        race_modules_describe(pc[i], where, sizeof(where));
        s_(o, "    #");
        u_(o, i);
        s_(o, " ");
        x_(o, pc[i]);
        s_(o, " (");
        s_(o, where);
        s_(o, ")");
        nl(o);
    }
}

/* The Ruby block under a stack, as `race report` prints it, a C method's function raw
 * (module+offset) where the report names it. */
static void ruby_frames(struct out *o, uint32_t id)
{
    const struct race_rb_bt *bt = race_rb_record(id);
    if (!bt)
        return;
    s_(o, "    Ruby:");
    nl(o);
    const uint8_t *p = (const uint8_t *)(bt + 1);
    for (uint32_t i = 0; i < bt->nframes; i++) {
        const struct race_rb_frame *f = (const struct race_rb_frame *)p;
        s_(o, "        ");
        s_(o, f->path_len ? f->text + f->label_len + 1 : "(unknown)");
        s_(o, f->path_len ? ":" : "");
        if (f->path_len) {
            u_(o, (uint64_t)(f->line > 0 ? f->line : 0));
            s_(o, ":");
        }
        s_(o, "in '");
        if (f->cfunc) {
            char where[480];
            race_modules_describe(f->cfunc, where, sizeof(where));
            s_(o, where);
            s_(o, "' (C)");
        } else {
            s_(o, f->text);
            s_(o, "'");
        }
        nl(o);
        p += (sizeof(*f) + f->label_len + 1 + f->path_len + 1 + 7) & ~(size_t)7;
    }
    if (bt->status == RACE_RB_TRUNCATED) {
        s_(o, "        (truncated at ");
        u_(o, bt->nframes);
        s_(o, " frames (RACE_RUBY_DEPTH))");
        nl(o);
    } else if (bt->status == RACE_RB_UNREADABLE) {
        s_(o, "        (frame ");
        u_(o, bt->nframes);
        s_(o, " unreadable: the walk ended there)");
        nl(o);
    }
}

/* The report, line for line what `race report` prints for this finding (its frames
 * symbolized, ours module+offset), then where it is recorded and what happens next. */
static void report(struct out *o, const struct race_finding *f)
{
    const char *name = race_find_name(f->type);
    int stale = f->type == RACE_FIND_STALE_CI;
    nl(o);
    s_(o, RACE_W_HEAD_PRE);
    u_(o, (uint64_t)getpid());
    s_(o, RACE_W_HEAD_POST);
    s_(o, name);
    s_(o, RACE_W_ON_ADDRESS);
    x_(o, f->addr);
    if (f->pc) {
        s_(o, RACE_W_AT_PC);
        x_(o, f->pc);
    }
    nl(o);
    const char *open = race_w_opening(f->type);
    if (open) {
        s_(o, open);
    } else {
        s_(o, race_w_access(f->access));
        s_(o, RACE_W_OF_SIZE);
        if (f->access_size)
            u_(o, f->access_size);
        else
            s_(o, RACE_W_SIZE_UNKNOWN);
        s_(o, RACE_W_AT);
    }
    x_(o, f->addr);
    s_(o, race_w_by(f->type));
    who(o, f->tid, f->ractor, stale);
    at_(o, f->ts);
    s_(o, ":");
    if (stale) {
        unsigned sub = race_w_stale_sub(f), len = race_w_watched_len(f->detail);
        s_(o, " ");
        if (race_w_stale_whole(sub)) {
            s_(o, race_w_stale_whole(sub));
        } else {
            char fn[sizeof(f->detail)];
            memcpy(fn, f->detail, len);
            fn[len] = 0;
            s_(o, len ? fn : RACE_W_WATCHED_UNKNOWN);
            s_(o, race_w_stale_tail(sub));
            if (race_w_stale_names_what(sub))
                s_(o, race_w_watched_what(fn, len));
        }
    }
    nl(o);
    frames(o, f->stack);
    ruby_frames(o, f->rb_use);
    if (f->block_addr) {
        nl(o);
        x_(o, f->addr);
        s_(o, RACE_W_LOCATED);
        if (f->addr < f->block_addr) {
            u_(o, f->block_addr - f->addr);
            s_(o, RACE_W_BYTES_BEFORE);
        } else if (f->addr >= f->block_addr + f->block_size) {
            u_(o, f->addr - (f->block_addr + f->block_size));
            s_(o, RACE_W_BYTES_AFTER);
        } else {
            u_(o, f->addr - f->block_addr);
            s_(o, RACE_W_BYTES_INSIDE);
        }
        s_(o, " ");
        u_(o, f->block_size);
        s_(o, RACE_W_REGION);
        x_(o, f->block_addr);
        s_(o, ",");
        x_(o, f->block_addr + f->block_size);
        s_(o, ")");
        nl(o);
    }
    if (f->free_ts) {
        nl(o);
        s_(o, RACE_W_FREED_BY);
        who(o, f->free_tid, f->free_ractor, stale);
        s_(o, RACE_W_VIA);
        s_(o, race_entry_name(f->free_entry));
        at_(o, f->free_ts);
        if (f->ts >= f->free_ts) {
            s_(o, RACE_W_BEFORE_PRE);
            ms_(o, race_ticks_to_ns(f->ts - f->free_ts));
            s_(o, RACE_W_BEFORE_POST);
        }
        s_(o, ":");
        nl(o);
        frames(o, f->free_stack);
        ruby_frames(o, f->rb_free);
    }
    if (f->alloc_ts) {
        nl(o);
        s_(o, RACE_W_ALLOCATED_BY);
        who(o, f->alloc_tid, f->alloc_ractor, 0);
        at_(o, f->alloc_ts);
        s_(o, ":");
        nl(o);
        frames(o, f->alloc_stack);
    }
    if (f->detail[0]) {
        nl(o);
        s_(o, RACE_W_DETAIL);
        s_(o, f->detail);
        nl(o);
    }
    nl(o);
    s_(o, RACE_W_SUMMARY);
    s_(o, name);
    const uint64_t *pc;
    if (race_depot_frames(f->stack, &pc)) {
        char where[480];
        race_modules_describe(pc[0], where, sizeof(where));
        s_(o, RACE_W_SUMMARY_IN);
        s_(o, where);
    }
    nl(o);
    s_(o, "race: recorded in ");
    s_(o, trace_path);
    s_(o, race_g.on_finding_abort ? "; RACE_ON_FINDING=abort: aborting"
                                  : "; RACE_ON_FINDING=continue: going on; seen again, it is counted, "
                                    "not printed");
    nl(o);
    if (o->k >= o->cap - 1) { /* cut short: say so on a line of its own */
        o->k = o->cap - 32;
        s_(o, "\n(report cut short)\n");
    }
}

/* "race: 65,239 more findings not printed (65,236 repeats of findings above, 3 new
 * past the first 16); see race report TRACE" */
static void summary(int at_exit)
{
    uint64_t rep = __atomic_load_n(&n_repeats, __ATOMIC_RELAXED);
    uint64_t quiet = __atomic_load_n(&n_new_quiet, __ATOMIC_RELAXED);
    if (!rep && !quiet)
        return;
    if (!out_take(at_exit))
        return; /* a report is being written: the next summary says it */
    char b[512];
    struct out o = {b, 0, sizeof(b)};
    s_(&o, "race: ");
    ug_(&o, rep + quiet);
    s_(&o, at_exit ? " more findings were not printed (" : " more findings not printed so far (");
    ug_(&o, rep);
    s_(&o, " repeats of ");
    ug_(&o, __atomic_load_n(&n_distinct, __ATOMIC_RELAXED));
    s_(&o, " findings, ");
    ug_(&o, quiet);
    s_(&o, " new past the first " RACE_W_STR(REPORTS_FULL) "); every one is counted in ");
    s_(&o, trace_path);
    s_(&o, at_exit ? ": race report shows them" : "");
    nl(&o);
    flush(&o);
    out_give();
}

/* During a storm: at most one summary line a second. */
static void summary_maybe(void)
{
    uint64_t now = race_mono_ns(), last = __atomic_load_n(&last_summary_ns, __ATOMIC_RELAXED);
    if ((last && now - last < 1000000000ull) ||
        !__atomic_compare_exchange_n(&last_summary_ns, &last, now, 0, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
        return;
    summary(0);
}

__attribute__((destructor)) static void findings_fini(void)
{
    summary(1);
}

/* Records and prints one finding, or counts it when this process saw it already; with
 * RACE_ON_FINDING=abort it does not return. */
void race_finding_report(struct race_finding *f, const void *uc)
{
    (void)uc;
    int is_new = 0;
    struct seen *e = find(f, 1, &is_new);
    if (e && !is_new) {
        sighting(e);
    } else {
        /* Ruby frames only for a finding recorded anew: a repeat costs no walk */
        f->rb_use = race_rb_capture(RACE_RBW_USE);
        if (f->slot != UINT32_MAX && f->free_ts)
            f->rb_free = race_pool_free_rb(f->slot, f->free_ts);
        uint64_t r = put(f);
        __atomic_fetch_add(&n_distinct, 1, __ATOMIC_RELAXED);
        if (e && r) {
            __atomic_store_n(&e->rec, r, __ATOMIC_SEQ_CST);
            drain(e);
        }
        int printed = 0;
        if (__atomic_fetch_add(&n_reports, 1, __ATOMIC_RELAXED) < reports_full && out_take(1)) {
            struct out o = {out_buf, 0, sizeof(out_buf)};
            report(&o, f);
            flush(&o);
            out_give();
            printed = 1;
        }
        if (!printed) {
            __atomic_fetch_add(&n_new_quiet, 1, __ATOMIC_RELAXED);
            summary_maybe();
        }
    }
    if (race_g.on_finding_abort) {
        race_crash_own_abort(); /* crash.c: this SIGABRT is the finding's, not a crash */
        abort();
    }
}
