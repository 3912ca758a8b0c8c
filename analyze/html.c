/* html.c - `race report --html FILE`: one self-contained page (style, script and data
 * inline; nothing fetched) with, for each trace with findings or crashes, a timeline of its last
 * window: a lane per Ractor (per thread where a Ractor used several), its frees, guarded
 * allocations and probe hits, each finding's free and use joined, each crash record (a
 * trace with a crash but no finding is shown too); stacks symbolized here
 * and embedded, shown when an event is clicked. The page itself is timeline.h.
 * Must never: let trace bytes end the <script> element (every '<', U+2028 and U+2029 in
 * the data is escaped), or embed more than MAX_EVENTS events or MAX_STACKS stacks of a
 * trace (the page says what was left out). */
#include <stdlib.h>
#include <string.h>

#include "race.h"
#include "timeline.h"

/* The page stays responsive at a few hundred thousand events (bench/report_formats.sh);
 * symbolizing is the analyzer's slowest step, so distinct stacks are bounded too. */
#define MAX_EVENTS 250000
#define MAX_STACKS 20000

/* Event kinds as the page knows them (timeline.h: KINDS). */
enum { K_FREE, K_FREE_GUARDED, K_FREE_QUARANTINED, K_ALLOC, K_ENTER, K_EXIT, K_HIT };

struct hev {
    int64_t ns;
    uint64_t ts, addr, size;
    uint32_t tid, ractor, stack;
    uint16_t flags;
    uint8_t kind;
};

struct coll {
    struct hev *v;
    size_t n, cap;
    int64_t from;
};

static void collect(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    struct coll *c = ctx;
    (void)off;
    int64_t ns = clock_ns(&t->clock, r->ts);
    if (ns < c->from)
        return;
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 4096;
        c->v = xreallocarray(c->v, c->cap, sizeof *c->v);
    }
    c->v[c->n++] = (struct hev){.ns = ns, .ts = r->ts, .addr = r->addr, .size = r->size,
                                .tid = r->tid, .ractor = r->ractor, .stack = r->stack,
                                .flags = r->flags, .kind = r->kind};
}

static int by_ns(const void *a, const void *b)
{
    const struct hev *x = a, *y = b;
    if (x->ns != y->ns)
        return x->ns < y->ns ? -1 : 1;
    return (x->tid > y->tid) - (x->tid < y->tid);
}

static int page_kind(const struct hev *e)
{
    switch (e->kind) {
    case RACE_EV_FREE:
        return (e->flags & RACE_RF_GUARDED) ? K_FREE_GUARDED
             : (e->flags & RACE_RF_QUARANTINED) ? K_FREE_QUARANTINED : K_FREE;
    case RACE_EV_ALLOC:
        return K_ALLOC;
    case RACE_EV_ENTER:
        return K_ENTER;
    case RACE_EV_EXIT:
        return K_EXIT;
    default:
        return K_HIT;
    }
}

static uint64_t lane_key(uint32_t ractor, uint32_t tid)
{
    return (uint64_t)ractor << 32 | tid;
}

struct lanes {
    struct race_map index; /* key -> lane + 1 once numbered; 1 while collecting */
    uint64_t *key;
    size_t n;
};

static void lane_add(struct lanes *l, uint32_t ractor, uint32_t tid)
{
    bool added;
    uint64_t *v = map_put(&l->index, lane_key(ractor, tid), &added);
    if (added)
        *v = 1;
}

static int by_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

/* Numbers the lanes by Ractor, then thread. */
static void lanes_number(struct lanes *l)
{
    l->key = xcalloc(l->index.count + 1, sizeof *l->key);
    l->n = 0;
    for (size_t i = 0; i < l->index.cap; i++)
        if (l->index.used[i])
            l->key[l->n++] = l->index.keys[i];
    qsort(l->key, l->n, sizeof *l->key, by_u64);
    for (size_t i = 0; i < l->n; i++)
        *map_get(&l->index, l->key[i]) = i + 1;
}

static long lane_of(const struct lanes *l, uint32_t ractor, uint32_t tid)
{
    uint64_t *v = map_get(&l->index, lane_key(ractor, tid));
    return v ? (long)*v - 1 : -1;
}

/* The data is JSON inside a <script> element: '<' would let "</script>" or "<!--" through,
 * U+2028/2029 end a line in older JavaScript; both only occur inside strings, where the
 * \u escapes mean the same. */
static void copy_safe(FILE *out, const char *s, size_t n)
{
    size_t i = 0, from = 0;
    for (; i < n; i++) {
        const char *esc = NULL;
        size_t skip = 1;
        if (s[i] == '<') {
            esc = "\\u003c";
        } else if ((unsigned char)s[i] == 0xe2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                   ((unsigned char)s[i + 2] == 0xa8 || (unsigned char)s[i + 2] == 0xa9)) {
            esc = (unsigned char)s[i + 2] == 0xa8 ? "\\u2028" : "\\u2029";
            skip = 3;
        }
        if (!esc)
            continue;
        fwrite(s + from, 1, i - from, out);
        fputs(esc, out);
        i += skip - 1;
        from = i + 1;
    }
    fwrite(s + from, 1, n - from, out);
}

/* A stack as a JSON array of frame lines; with a Ruby backtrace (rb != 0), its block
 * follows: "Ruby:" and a line per frame, as the text report prints them. */
static void json_frames_rb(FILE *j, struct race_trace *t, struct race_sym *sym, uint32_t id,
                           uint64_t ts, uint64_t fault_pc, uint32_t rb, bool by_gc)
{
    static struct race_frame fr[RACE_MAX_FRAMES];
    static struct race_rbtrace rbt;
    uint32_t n = stack_frames(t, sym, id, ts, fault_pc, fr);
    const char *why;
    uint32_t nrb = rb && trace_rb(t, rb, &rbt, &why) == RACE_STACK_OK ? rbt.n + 1 : 0;
    fputc('[', j);
    for (uint32_t i = 0; i < n + nrb; i++) {
        char *s = NULL, buf[96];
        size_t len = 0;
        FILE *m = open_memstream(&s, &len);
        if (!m)
            break;
        if (i < n) {
            stack_frame_text(m, &fr[i], i, "");
        } else if (i == n) {
            fputs(by_gc ? "Ruby (the GC sweep ran in this code's allocation):" : "Ruby:", m);
            if (rb_ending(&rbt, buf, sizeof buf))
                fprintf(m, " (%s)", buf);
        } else {
            const struct race_rbframe *f = &rbt.f[i - n - 1];
            fprintf(m, "    %s:%d:in '%s'%s", f->path[0] ? f->path : "(unknown)", f->line,
                    rb_label(sym, f, ts, buf, sizeof buf), f->cfunc ? " (C)" : "");
        }
        fclose(m);
        if (i)
            fputc(',', j);
        json_str(j, s, len);
        free(s);
    }
    fputc(']', j);
}

static void json_frames(FILE *j, struct race_trace *t, struct race_sym *sym, uint32_t id,
                        uint64_t ts, uint64_t fault_pc)
{
    json_frames_rb(j, t, sym, id, ts, fault_pc, 0, false);
}

static void json_party(FILE *j, const struct lanes *l, int64_t from, int64_t ns, uint32_t tid,
                       uint32_t ractor)
{
    fprintf(j, "{\"lane\":%ld,\"t\":%lld,\"tid\":%u,\"ractor\":%u}", lane_of(l, ractor, tid),
            (long long)(ns - from), tid, ractor);
}

static void json_finding(FILE *j, struct race_trace *t, struct race_sym *sym, const struct lanes *l,
                         int64_t from, const struct race_finding *f, size_t group, size_t count)
{
    char *s = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&s, &len);
    if (m) {
        finding_title(m, f);
        fclose(m);
    }
    fputs("{\"title\":", j);
    json_str(j, s ? s : "", s ? len : 0);
    free(s);
    fprintf(j, ",\"kind\":\"%s\",\"group\":%zu,\"count\":%zu,\"use\":", race_find_name(f->type),
            group, count);
    json_party(j, l, from, clock_ns(&t->clock, f->ts), f->tid, f->ractor);
    fputs(",\"free\":", j);
    if (f->free_ts) {
        json_party(j, l, from, clock_ns(&t->clock, f->free_ts), f->free_tid, f->free_ractor);
        fputs(",\"entry\":", j);
        json_cstr(j, race_entry_name(f->free_entry));
    } else {
        fputs("null", j);
    }
    fputs(",\"alloc\":", j);
    if (f->alloc_ts)
        json_party(j, l, from, clock_ns(&t->clock, f->alloc_ts), f->alloc_tid, f->alloc_ractor);
    else
        fputs("null", j);
    fprintf(j, ",\"access\":\"%s\",\"size\":%u,\"addr\":",
            f->access == RACE_ACCESS_READ ? "READ" : f->access == RACE_ACCESS_WRITE ? "WRITE" : "ACCESS",
            f->access_size);
    json_hex(j, f->addr);
    fputs(",\"block\":", j);
    if (f->block_addr) {
        fputs("{\"addr\":", j);
        json_hex(j, f->block_addr);
        fprintf(j, ",\"size\":%llu}", (unsigned long long)f->block_size);
    } else {
        fputs("null", j);
    }
    fputs(",\"detail\":", j);
    json_cstr(j, f->detail);
    fputs(",\"use_stack\":", j);
    json_frames_rb(j, t, sym, f->stack, f->ts, f->pc, f->rb_use, false);
    fputs(",\"free_stack\":", j);
    json_frames_rb(j, t, sym, f->free_ts ? f->free_stack : 0, f->free_ts, free_pc_exact(f),
                   f->free_ts ? f->rb_free : 0,
                   f->free_ts && f->rb_free && rb_free_by_gc(t, sym, f->free_stack, f->free_ts));
    fputs(",\"alloc_stack\":", j);
    json_frames(j, t, sym, f->alloc_ts ? f->alloc_stack : 0, f->alloc_ts, 0);
    fputc('}', j);
}

/* A crash record: the signal, where, the registers, the stack unwound from the signal
 * context (its first frame the interrupted instruction itself). */
static void json_crash(FILE *j, struct race_trace *t, struct race_sym *sym, const struct lanes *l,
                       int64_t from, const struct race_crashrec *cr)
{
    const struct race_crash *c = &cr->c;
    fputs("{\"signal\":", j);
    json_cstr(j, race_sig_name(c->sig));
    fputs(",\"code\":", j);
    json_cstr(j, race_sicode_name(c->sig, c->code));
    fprintf(j, ",\"sent\":%s,\"first\":%d,\"addr\":", c->code <= 0 ? "true" : "false",
            c->first ? (int)c->first - 1 : -1);
    json_hex(j, c->addr);
    fputs(",\"pc\":", j);
    if (c->has_regs)
        json_hex(j, c->pc);
    else
        fputs("null", j);
    fputs(",\"at\":", j);
    json_party(j, l, from, clock_ns(&t->clock, c->ts), c->tid, c->ractor);
    fputs(",\"regs\":[", j);
    for (unsigned i = 0; c->has_regs && i < RACE_REG_COUNT; i++)
        fprintf(j, "%s\"%s 0x%016llx\"", i ? "," : "", race_reg_name(i), (unsigned long long)c->regs[i]);
    fputs("],\"stack\":", j);
    json_frames_rb(j, t, sym, c->stack, c->ts, c->has_regs ? c->pc : 0, c->rb, false);
    fputc('}', j);
}

/* One trace's timeline as a JSON object. */
static void json_trace(FILE *j, const struct report_outputs *o, struct race_trace *t,
                       struct race_sym *sym, const struct race_member *m, size_t total,
                       const size_t *gsize, int ti)
{
    /* The window ends at the last thing the trace holds and reaches back far enough
     * to show every finding's free. */
    int64_t end = t->n_valid ? clock_ns(&t->clock, t->ts_max) : 0;
    for (size_t i = 0; i < t->nfind; i++) {
        int64_t ns = clock_ns(&t->clock, t->find[i].f.ts);
        if (ns > end)
            end = ns;
    }
    for (size_t i = 0; i < t->ncrash; i++) {
        int64_t ns = clock_ns(&t->clock, t->crash[i].c.ts);
        if (ns > end)
            end = ns;
    }
    int64_t from = end - (int64_t)(o->window_ms * 1e6);
    for (size_t i = 0; i < t->nfind; i++) {
        const struct race_finding *f = &t->find[i].f;
        int64_t ns = clock_ns(&t->clock, f->free_ts ? f->free_ts : f->ts);
        if (ns < from)
            from = ns - (end - ns) / 20;
    }
    if (from < 0)
        from = 0; /* the trace's start */
    struct coll c = {.from = from};
    trace_scan(t, collect, &c);
    if (c.n)
        qsort(c.v, c.n, sizeof *c.v, by_ns);
    size_t skip = c.n > MAX_EVENTS ? c.n - MAX_EVENTS : 0; /* the oldest go */

    struct lanes l = {0};
    map_init(&l.index);
    for (size_t i = skip; i < c.n; i++)
        lane_add(&l, c.v[i].ractor, c.v[i].tid);
    for (size_t i = 0; i < t->nfind; i++) {
        const struct race_finding *f = &t->find[i].f;
        lane_add(&l, f->ractor, f->tid);
        if (f->free_ts)
            lane_add(&l, f->free_ractor, f->free_tid);
        if (f->alloc_ts && clock_ns(&t->clock, f->alloc_ts) >= from)
            lane_add(&l, f->alloc_ractor, f->alloc_tid);
    }
    for (size_t i = 0; i < t->ncrash; i++)
        if (clock_ns(&t->clock, t->crash[i].c.ts) >= from)
            lane_add(&l, t->crash[i].c.ractor, t->crash[i].c.tid);
    lanes_number(&l);

    fputs("{\"path\":", j);
    json_cstr(j, t->path);
    fputs(",\"exe\":", j);
    json_str(j, t->hdr.exe, trace_strlen(t->hdr.exe, sizeof t->hdr.exe));
    fprintf(j, ",\"pid\":%d,\"ruby\":", t->hdr.pid);
    json_str(j, t->hdr.ruby_version, trace_strlen(t->hdr.ruby_version, sizeof t->hdr.ruby_version));
    fprintf(j, ",\"from_ms\":%.6f,\"span\":%lld,\"window_ms\":%g,\"events_total\":%llu,"
               "\"events_window\":%zu,\"events_left_out\":%zu,\"lanes\":[",
            (double)from / 1e6, (long long)(end - from), o->window_ms,
            (unsigned long long)t->n_valid, c.n, skip);
    for (size_t i = 0; i < l.n; i++)
        fprintf(j, "%s{\"ractor\":%u,\"tid\":%u}", i ? "," : "", (uint32_t)(l.key[i] >> 32),
                (uint32_t)l.key[i]);
    fputs("],\"probes\":[", j);
    for (size_t i = 0; i < t->nprobe; i++) {
        if (i)
            fputc(',', j);
        if (t->probe[i].state == RACE_PST_OK)
            json_cstr(j, t->probe[i].p.func);
        else
            fputs("null", j);
    }
    /* Columns: time (ns from the window's start), lane, kind, stack id, address, size
     * (an argument or value for a watched function's event), probe index. */
    static const char *const cols[] = {"t", "l", "k", "s", "a", "z", "p"};
    fputs("],\"ev\":{", j);
    for (size_t col = 0; col < sizeof cols / sizeof cols[0]; col++) {
        fprintf(j, "%s\"%s\":[", col ? "]," : "", cols[col]);
        for (size_t i = skip; i < c.n; i++) {
            const struct hev *e = &c.v[i];
            if (i > skip)
                fputc(',', j);
            switch (col) {
            case 0: fprintf(j, "%lld", (long long)(e->ns - from)); break;
            case 1: fprintf(j, "%ld", lane_of(&l, e->ractor, e->tid)); break;
            case 2: fprintf(j, "%d", page_kind(e)); break;
            case 3: fprintf(j, "%u", e->stack); break;
            case 4: fprintf(j, "\"%llx\"", (unsigned long long)e->addr); break;
            case 5: fprintf(j, "%llu", (unsigned long long)e->size); break;
            default: fprintf(j, "%d", race_is_probe_event(e->kind) ? e->flags : -1); break;
            }
        }
    }
    fputs("]},\"findings\":[", j);
    size_t k = 0;
    for (size_t i = 0; i < total; i++) {
        if (m[i].trace != ti)
            continue;
        fputs(k++ ? ",\n" : "\n", j);
        json_finding(j, t, sym, &l, from, &t->find[m[i].index].f, m[i].group, gsize[m[i].group]);
    }
    fputs("],\"crashes\":[", j);
    for (size_t i = 0; i < t->ncrash; i++) {
        fputs(i ? ",\n" : "\n", j);
        json_crash(j, t, sym, &l, from, &t->crash[i]);
    }
    /* Stacks of the events, newest first until the bound: "id": [frames]. */
    fputs("],\"stacks\":{", j);
    struct race_map seen;
    map_init(&seen);
    size_t nstacks = 0, stacks_left_out = 0;
    for (size_t i = c.n; i-- > skip;) {
        const struct hev *e = &c.v[i];
        bool added;
        if (!e->stack)
            continue;
        map_put(&seen, e->stack, &added);
        if (!added)
            continue;
        if (nstacks == MAX_STACKS) {
            stacks_left_out++;
            continue;
        }
        fprintf(j, "%s\"%u\":", nstacks++ ? ",\n" : "\n", e->stack);
        json_frames(j, t, sym, e->stack, e->ts, 0);
    }
    fprintf(j, "},\"stacks_left_out\":%zu,\"stack_sample\":%u}", stacks_left_out, t->hdr.stack_sample);
    map_free(&seen);
    map_free(&l.index);
    free(l.key);
    free(c.v);
}

int html_write(const struct report_outputs *o, struct race_trace **t, struct race_sym **sym,
               int n, const struct race_member *m, size_t total)
{
    char *data = NULL;
    size_t len = 0;
    FILE *j = open_memstream(&data, &len);
    if (!j) {
        fputs("race report: out of memory\n", stderr);
        return -1;
    }
    size_t *gsize = xcalloc(total + 1, sizeof *gsize); /* group -> its size */
    for (size_t i = 0; i < total; i++)
        if (m[i].count)
            gsize[m[i].group] = m[i].count;
    int shown = 0;
    fprintf(j, "{\"version\":\"%s\",\"window_ms\":%g,\"traces_read\":%d,\"traces\":[",
            RACE_VERSION_STRING, o->window_ms, n);
    for (int i = 0; i < n; i++) {
        if (!t[i]->nfind && !t[i]->ncrash)
            continue;
        progress("timeline of trace", i + 1, n);
        fputs(shown++ ? ",\n" : "\n", j);
        /* report.c symbolizes the traces with findings only */
        struct race_sym *own = sym[i] ? NULL : sym_open(t[i]);
        json_trace(j, o, t[i], sym[i] ? sym[i] : own, m, total, gsize, i);
        sym_close(own);
    }
    fputs("]}", j);
    free(gsize);
    progress(NULL, 0, 0);
    if (fclose(j) != 0) {
        free(data);
        fputs("race report: out of memory\n", stderr);
        return -1;
    }
    FILE *out = fopen(o->html, "w");
    if (!out) {
        fprintf(stderr, "race report: cannot write %s: %m\n", o->html);
        free(data);
        return -1;
    }
    fputs(timeline_head, out);
    copy_safe(out, data, len);
    fputs(timeline_tail, out);
    free(data);
    bool bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        fprintf(stderr, "race report: error writing %s\n", o->html);
        return -1;
    }
    return 0;
}
