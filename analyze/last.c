/* last.c - `race report --last MS`: the flight recorder's picture of a crash. For each
 * trace, every event of every thread and Ractor (frees, guarded allocations, watched
 * functions' events), findings and crash records in the last MS milliseconds before the
 * process's first crash (or, with none, before its last event), in time order, one line
 * each with its lane (thread and Ractor), ending with the crash line and its stack.
 * Must never: print a record the reader did not validate, or hold more than the
 * window's events (memory follows the window, not the file). */
#include <stdlib.h>
#include <string.h>

#include "race.h"

double report_last_ms; /* 0: --last not given */

struct lastwin {
    uint64_t lo, hi;            /* the window, in record ts units: [lo, hi] */
    struct race_rec *v;
    size_t n, cap;
    size_t after;               /* events later than the crash (its handler's) */
};

struct lane {
    uint32_t tid, ractor;
    size_t events;
};

static void collect(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    struct lastwin *w = ctx;
    (void)t;
    (void)off;
    if (r->ts > w->hi) {
        w->after++;
        return;
    }
    if (r->ts < w->lo)
        return;
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 1024;
        w->v = xreallocarray(w->v, w->cap, sizeof *w->v);
    }
    w->v[w->n++] = *r;
}

static double ms_of(const struct race_trace *t, uint64_t ts)
{
    return (double)clock_ns(&t->clock, ts) / 1e6;
}

/* The record ts that lies ms before end: the clock converts ts to ns, not back, so the
 * bound is found by bisection on the (monotonic) conversion. */
static uint64_t ts_before(const struct race_trace *t, uint64_t end, double ms)
{
    int64_t want = clock_ns(&t->clock, end) - (int64_t)(ms * 1e6);
    uint64_t lo = 0, hi = end;
    while (lo < hi) {
        uint64_t mid = lo + (hi - lo) / 2;
        if (clock_ns(&t->clock, mid) < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The process's crash: the first record with first == 0 (slot order is claim order). */
static const struct race_crashrec *the_crash(const struct race_trace *t)
{
    for (size_t i = 0; i < t->ncrash; i++)
        if (t->crash[i].c.first == 0)
            return &t->crash[i];
    return t->ncrash ? &t->crash[0] : NULL;
}

static size_t lane_of(struct lane **l, size_t *n, uint32_t tid, uint32_t ractor)
{
    for (size_t i = 0; i < *n; i++)
        if ((*l)[i].tid == tid && (*l)[i].ractor == ractor)
            return i;
    *l = xreallocarray(*l, *n + 1, sizeof **l);
    (*l)[*n] = (struct lane){.tid = tid, .ractor = ractor};
    return (*n)++;
}

static void lane_label(const struct lane *l)
{
    printf("thread %u", l->tid);
    if (l->ractor)
        printf(" (Ractor %u)", l->ractor);
}

/* The function a free stack's first frame lies in, as " in FUNC", or nothing. */
static void where(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts)
{
    struct race_stack st;
    const char *why;
    if (!id || trace_stack(t, id, &st, &why) != RACE_STACK_OK || !st.nframes)
        return;
    struct race_frame f;
    sym_frame(sym, st.pc[0], ts, false, &f);
    if (f.func) {
        printf(" in ");
        text_str(stdout, f.func, strlen(f.func));
    } else if (f.module) {
        printf(" in ");
        text_str(stdout, f.module, strlen(f.module));
        printf("+0x%llx", (unsigned long long)f.modoff);
    }
}

static void event_text(struct race_trace *t, struct race_sym *sym, const struct race_rec *r)
{
    const struct race_proberec *p = NULL;
    const char *why;
    switch (r->kind) {
    case RACE_EV_FREE:
        printf("free   0x%llx (%llu bytes) via %s", (unsigned long long)r->addr,
               (unsigned long long)r->size, race_entry_name(r->entry));
        if (r->entry == RACE_ENTRY_REALLOC || r->entry == RACE_ENTRY_REALLOCARRAY ||
            (r->entry >= RACE_ENTRY_RUBY_XREALLOC && r->entry <= RACE_ENTRY_RUBY_SIZED_XREALLOC2))
            printf(" -> 0x%llx", (unsigned long long)r->aux);
        if (r->flags & RACE_RF_GUARDED)
            printf(", guarded");
        where(t, sym, r->stack, r->ts);
        break;
    case RACE_EV_ALLOC:
        printf("alloc  0x%llx (%llu bytes), guarded slot %llu", (unsigned long long)r->addr,
               (unsigned long long)r->size, (unsigned long long)r->aux);
        where(t, sym, r->stack, r->ts);
        break;
    default:
        trace_probe(t, r->flags, &p, &why);
        printf("%-6s ", race_kind_name(r->kind));
        if (p) {
            text_str(stdout, p->p.func, strlen(p->p.func));
            printf(" (%s)", race_probe_role_name(p->p.role));
        } else {
            printf("? (probe %u lost)", r->flags);
        }
        if (r->kind == RACE_EV_ENTER)
            printf(" args 0x%llx, 0x%llx", (unsigned long long)r->size, (unsigned long long)r->aux);
        else if (r->kind == RACE_EV_EXIT)
            printf(" returned 0x%llx", (unsigned long long)r->size);
        else
            printf(" value 0x%llx", (unsigned long long)r->size);
        break;
    }
}

static void crash_text(const struct race_crash *c)
{
    const char *code = race_sicode_name(c->sig, c->code);
    printf("CRASH  %s/", race_sig_name(c->sig));
    if (code)
        printf("%s", code);
    else
        printf("code %d", c->code);
    if (c->code <= 0)
        printf(" (sent by a process, not a fault)");
    else
        printf(" at 0x%llx", (unsigned long long)c->addr);
    if (c->has_regs)
        printf(", pc 0x%llx", (unsigned long long)c->pc);
}

/* One line: time relative to the window's end, the lane, what happened. */
static void line_head(const struct race_trace *t, uint64_t ts, uint64_t end, size_t lane,
                      const struct lane *l)
{
    char who[48];
    snprintf(who, sizeof who, "%u/%u", l->tid, l->ractor);
    printf("  %+10.3f  %-*s%-16s ", ms_of(t, ts) - ms_of(t, end), (int)(lane < 8 ? lane * 2 : 16), "", who);
}

void last_text(struct race_trace *t, struct race_sym *sym_or_null)
{
    if (report_last_ms <= 0)
        return;
    const struct race_crashrec *cr = the_crash(t);
    uint64_t end = cr ? cr->c.ts : t->ts_max;
    printf("== the last %.3f ms before %s: ", report_last_ms,
           cr ? "the crash" : t->n_valid ? "the last event (no crash recorded)" : "the end");
    text_str(stdout, t->path, strlen(t->path));
    printf(" (pid %d)\n", t->hdr.pid);
    if (!cr && !t->n_valid) {
        printf("   no events and no crash recorded\n");
        return;
    }
    struct lastwin w = {.lo = ts_before(t, end, report_last_ms), .hi = end};
    trace_scan(t, collect, &w);
    if (w.n)
        qsort(w.v, w.n, sizeof *w.v, dump_by_time);
    struct race_sym *sym = sym_or_null ? sym_or_null : sym_open(t);

    /* Lanes: one per (thread, Ractor) seen in the window, the crash's first. */
    struct lane *lanes = NULL;
    size_t nlanes = 0, frees = 0, allocs = 0, probes = 0;
    if (cr)
        lane_of(&lanes, &nlanes, cr->c.tid, cr->c.ractor);
    for (size_t i = 0; i < w.n; i++) {
        size_t li = lane_of(&lanes, &nlanes, w.v[i].tid, w.v[i].ractor); /* may move lanes */
        lanes[li].events++;
        frees += w.v[i].kind == RACE_EV_FREE;
        allocs += w.v[i].kind == RACE_EV_ALLOC;
        probes += race_is_probe_event(w.v[i].kind);
    }
    size_t nfind = 0;
    for (size_t i = 0; i < t->nfind; i++)
        nfind += t->find[i].f.ts >= w.lo && t->find[i].f.ts <= w.hi;
    printf("   %zu events (%zu frees, %zu guarded allocations, %zu watched-function events), "
           "%zu findings, in %zu lanes (thread/Ractor; Ractor 0 = none or unknown):\n", w.n,
           frees, allocs, probes, nfind, nlanes);
    for (size_t i = 0; i < nlanes; i++) {
        printf("     lane %zu: ", i);
        lane_label(&lanes[i]);
        printf(", %zu events%s\n", lanes[i].events, cr && i == 0 ? ", the crashing thread" : "");
    }
    if (t->hdr.overwritten)
        printf("   (the ring overwrote %llu older events: the window may start later than asked)\n",
               (unsigned long long)t->hdr.overwritten);
    printf("  %10s  %s\n", "ms", "lane: thread/Ractor, then the event");

    /* Events, with the findings of the window in their place. */
    size_t f = 0;
    for (size_t i = 0; i <= w.n; i++) {
        for (; f < t->nfind; f++) {
            const struct race_finding *x = &t->find[f].f;
            if (x->ts < w.lo || x->ts > w.hi)
                continue;
            if (i < w.n && x->ts > w.v[i].ts)
                break;
            size_t li = lane_of(&lanes, &nlanes, x->tid, x->ractor);
            line_head(t, x->ts, end, li, &lanes[li]);
            printf("FINDING %s at 0x%llx (see above)\n", race_find_name(x->type),
                   (unsigned long long)x->addr);
        }
        if (i == w.n)
            break;
        const struct race_rec *r = &w.v[i];
        size_t li = lane_of(&lanes, &nlanes, r->tid, r->ractor);
        line_head(t, r->ts, end, li, &lanes[li]);
        event_text(t, sym, r);
        putchar('\n');
    }
    if (cr) {
        line_head(t, cr->c.ts, end, 0, &lanes[0]);
        crash_text(&cr->c);
        printf("\n");
        stack_text(t, sym, cr->c.stack, cr->c.ts, cr->c.has_regs ? cr->c.pc : 0, "                ");
        size_t linked = 0;
        for (size_t i = 0; i < t->ncrash; i++)
            linked += t->crash[i].c.first == cr->index + 1;
        if (linked || w.after)
            printf("   then, while it was handled: %zu more signal%s (linked to this crash), %zu "
                   "events\n", linked, linked == 1 ? "" : "s", w.after);
    }
    free(lanes);
    free(w.v);
    if (sym != sym_or_null)
        sym_close(sym);
}

/* "5", "0.5", "250": milliseconds, > 0. */
bool last_parse(const char *s, double *ms)
{
    char *end;
    double v = strtod(s, &end);
    if (end == s || *end || !(v > 0) || v > 1e9)
        return false;
    *ms = v;
    return true;
}
