/* dump.c - `race dump`: every valid event of each trace, one per line in time order, as
 * aligned text or JSON Lines, optionally with its symbolized free stack; a watched
 * function's events (enter, exit, hit) name their probe's function and role; crash
 * records (kind "crash") take their place in time among the events.
 * Must never: print a record the reader did not classify as valid, or hold more than one
 * copy of a trace's records at a time (memory follows the file's size). */
#include <stdlib.h>
#include <string.h>

#include "race.h"

struct evs {
    struct race_rec *v;
    size_t n, cap;
};

static void collect(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    struct evs *e = ctx;
    (void)t;
    (void)off;
    if (e->n == e->cap) {
        e->cap = e->cap ? e->cap * 2 : 1024;
        e->v = xreallocarray(e->v, e->cap, sizeof *e->v);
    }
    e->v[e->n++] = *r;
}

/* ts orders events across threads (the clock is monotonic in ts); seq breaks ties
 * within a thread, tid between threads, so the output is deterministic. */
int dump_by_time(const void *a, const void *b)
{
    const struct race_rec *x = a, *y = b;
    if (x->ts != y->ts)
        return x->ts < y->ts ? -1 : 1;
    if (x->tid != y->tid)
        return x->tid < y->tid ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

static void stack_out(struct race_trace *t, struct race_sym *sym, const struct race_rec *r,
                      bool json)
{
    if (json) {
        printf(",\"stack\":");
        const char *bad = stack_json(t, sym, r->stack, r->ts, 0);
        if (bad) {
            printf(",\"stack_error\":");
            json_cstr(stdout, bad);
        }
    } else if (r->stack) {
        stack_text(t, sym, r->stack, r->ts, 0, "        ");
    }
}

/* Record flags in words; "-" for none. */
static const char *flag_words(unsigned flags, char *buf, size_t len)
{
    snprintf(buf, len, "%s%s%s%s", flags ? "" : "-",
             (flags & RACE_RF_GUARDED) ? "guarded" : "",
             (flags & RACE_RF_GUARDED) && (flags & RACE_RF_QUARANTINED) ? "," : "",
             (flags & RACE_RF_QUARANTINED) ? "quarantined" : "");
    if (flags & ~(unsigned)(RACE_RF_GUARDED | RACE_RF_QUARANTINED))
        snprintf(buf, len, "0x%x", flags);
    return buf;
}

/* An allocation record's entry field names no allocator: "-" rather than "free". */
static const char *entry_of(const struct race_rec *r)
{
    return r->kind == RACE_EV_FREE ? race_entry_name(r->entry) : "-";
}

/* The probe a watched function's event names (flags is its index). The reader let it
 * through only if that record is sound or was lost to a truncation: NULL then. */
static const struct race_proberec *probe_of(const struct race_trace *t, const struct race_rec *r)
{
    const struct race_proberec *p;
    const char *why;
    trace_probe(t, r->flags, &p, &why);
    return p;
}

/* The entry column of a watched function's event: "FUNC (ROLE)". Terminal-safe, since
 * the name is the file's bytes. */
static void probe_label(const struct race_trace *t, const struct race_rec *r, int width)
{
    const struct race_proberec *p = probe_of(t, r);
    int n;
    if (p) {
        size_t len = strlen(p->p.func);
        text_str(stdout, p->p.func, len);
        n = printf(" (%s)", race_probe_role_name(p->p.role)) + (int)len;
    } else {
        n = printf("? (probe %u lost)", r->flags);
    }
    for (; n < width; n++)
        putchar(' ');
}

/* Width of the entry column: 20, or the longest probe label of this trace. */
static int entry_width(const struct race_trace *t)
{
    int w = 20;
    for (size_t i = 0; i < t->nprobe; i++) {
        const struct race_proberec *p = &t->probe[i];
        if (p->state != RACE_PST_OK)
            continue;
        int n = (int)strlen(p->p.func) + 3 + (int)strlen(race_probe_role_name(p->p.role));
        if (n > w)
            w = n;
    }
    return w;
}

static const char *probe_width_title(const struct race_trace *t)
{
    return t->nprobe ? "entry, or probe (role)" : "entry";
}

static void text_event(struct race_trace *t, const struct race_rec *r, int width)
{
    char stack[16] = "-", aux[24], size[24], flags[40];
    bool probe = race_is_probe_event(r->kind);
    if (r->stack)
        snprintf(stack, sizeof stack, "%u", r->stack);
    snprintf(aux, sizeof aux, "0x%llx", (unsigned long long)r->aux);
    /* A block's size in decimal; an argument or return value as the word it is. */
    snprintf(size, sizeof size, probe ? "0x%llx" : "%llu", (unsigned long long)r->size);
    if (probe)
        snprintf(flags, sizeof flags, "probe %u", r->flags);
    else
        flag_words(r->flags, flags, sizeof flags);
    printf("%14.3f %8u %7u %8llu  %-5s ", (double)clock_ns(&t->clock, r->ts) / 1e3, r->tid,
           r->ractor, (unsigned long long)r->seq, race_kind_name(r->kind));
    if (probe)
        probe_label(t, r, width);
    else
        printf("%-*s", width, entry_of(r));
    printf(" 0x%016llx %10s %18s %7s  %s\n", (unsigned long long)r->addr, size, aux, stack,
           flags);
}

static void json_event(struct race_trace *t, const struct race_rec *r)
{
    printf("{\"trace\":");
    json_cstr(stdout, t->path);
    printf(",\"time_us\":%.3f,\"tid\":%u,\"ractor\":%u,\"seq\":%llu,\"kind\":\"%s\","
           "\"entry\":\"%s\",\"addr\":", (double)clock_ns(&t->clock, r->ts) / 1e3, r->tid,
           r->ractor, (unsigned long long)r->seq, race_kind_name(r->kind), entry_of(r));
    json_hex(stdout, r->addr);
    printf(",\"size\":%llu,\"aux\":", (unsigned long long)r->size);
    json_hex(stdout, r->aux);
    /* A watched function's event has no record flags: its flags field is the probe. */
    bool probe = race_is_probe_event(r->kind);
    printf(",\"flags\":%u,\"guarded\":%s,\"quarantined\":%s,\"stack_id\":%u", r->flags,
           !probe && (r->flags & RACE_RF_GUARDED) ? "true" : "false",
           !probe && (r->flags & RACE_RF_QUARANTINED) ? "true" : "false", r->stack);
    if (!probe)
        return;
    const struct race_proberec *p = probe_of(t, r);
    printf(",\"probe\":{\"index\":%u,\"function\":", r->flags);
    if (p) {
        json_cstr(stdout, p->p.func);
        printf(",\"role\":\"%s\",\"kind\":\"%s\",\"instance\":%u,\"addr\":",
               race_probe_role_name(p->p.role), race_probe_kind_name(p->p.kind), p->p.instance);
        json_hex(stdout, p->p.addr);
        putchar('}');
    } else {
        printf("null,\"role\":null,\"kind\":null,\"instance\":null,\"addr\":null}");
    }
}

/* A crash record's sig and code, as "SIGSEGV/SEGV_MAPERR" or "SIGABRT/SI_TKILL (sent)". */
static void crash_what(const struct race_crash *c, char *buf, size_t len)
{
    const char *code = race_sicode_name(c->sig, c->code);
    int k = snprintf(buf, len, "%s/", race_sig_name(c->sig));
    if (k < 0 || (size_t)k >= len)
        return;
    if (code)
        snprintf(buf + k, len - (size_t)k, "%s%s", code, c->code <= 0 ? " (sent)" : "");
    else
        snprintf(buf + k, len - (size_t)k, "code %d%s", c->code, c->code <= 0 ? " (sent)" : "");
}

/* Text: the event columns, with the signal in the entry column, si_addr as the address,
 * the pc as aux, and whether it is the crash or raised while one was handled. */
static void text_crash(struct race_trace *t, const struct race_crashrec *cr, int width)
{
    const struct race_crash *c = &cr->c;
    char what[64], stack[16] = "-", first[40] = "first";
    crash_what(c, what, sizeof what);
    if (c->stack)
        snprintf(stack, sizeof stack, "%u", c->stack);
    if (c->first)
        snprintf(first, sizeof first, "after crash %u", c->first - 1);
    printf("%14.3f %8u %7u %8llu  %-5s %-*s 0x%016llx %10s 0x%016llx %7s  %s\n",
           (double)clock_ns(&t->clock, c->ts) / 1e3, c->tid, c->ractor,
           (unsigned long long)c->seq, "crash", width, what, (unsigned long long)c->addr, "-",
           (unsigned long long)c->pc, stack, first);
}

static void json_crash(struct race_trace *t, const struct race_crashrec *cr)
{
    const struct race_crash *c = &cr->c;
    const char *code = race_sicode_name(c->sig, c->code);
    printf("{\"trace\":");
    json_cstr(stdout, t->path);
    printf(",\"time_us\":%.3f,\"tid\":%u,\"ractor\":%u,\"seq\":%llu,\"kind\":\"crash\","
           "\"index\":%u,\"first\":", (double)clock_ns(&t->clock, c->ts) / 1e3, c->tid, c->ractor,
           (unsigned long long)c->seq, cr->index);
    if (c->first)
        printf("%u", c->first - 1);
    else
        printf("null");
    printf(",\"sig\":%u,\"signal\":\"%s\",\"code\":%d,\"code_name\":", c->sig,
           race_sig_name(c->sig), c->code);
    json_cstr(stdout, code);
    printf(",\"sent\":%s,\"addr\":", c->code <= 0 ? "true" : "false");
    json_hex(stdout, c->addr);
    printf(",\"has_regs\":%s,\"pc\":", c->has_regs ? "true" : "false");
    if (c->has_regs)
        json_hex(stdout, c->pc);
    else
        printf("null");
    printf(",\"regs\":");
    if (c->has_regs) {
        for (unsigned i = 0; i < RACE_REG_COUNT; i++) {
            printf(i ? ",\"%s\":" : "{\"%s\":", race_reg_name(i));
            json_hex(stdout, c->regs[i]);
        }
        putchar('}');
    } else {
        printf("null");
    }
    printf(",\"stack_id\":%u", c->stack);
}

static void dump_one(struct race_trace *t, bool json, bool stacks)
{
    struct evs e = {0};
    trace_scan(t, collect, &e);
    if (e.n)
        qsort(e.v, e.n, sizeof *e.v, dump_by_time);
    struct race_sym *sym = stacks ? sym_open(t) : NULL;
    int width = entry_width(t);
    if (!json) {
        printf("# ");
        text_str(stdout, t->path, strlen(t->path));
        printf(": %zu events", e.n);
        if (t->ncrash)
            printf(", %zu crash record%s", t->ncrash, t->ncrash == 1 ? "" : "s");
        printf("; time in microseconds since the trace started\n");
        printf("#%13s %8s %7s %8s  %-5s %-*s %18s %10s %18s %7s  %s\n", "time_us", "tid",
               "ractor", "seq", "kind", width, probe_width_title(t), "addr", "size", "aux",
               "stack", "flags");
    }
    size_t ci = 0;
    for (size_t i = 0; i <= e.n; i++) {
        /* crash records are in slot order, which is time order; each goes before the
         * first event that is later than it */
        for (; ci < t->ncrash && (i == e.n || t->crash[ci].c.ts < e.v[i].ts); ci++) {
            const struct race_crashrec *cr = &t->crash[ci];
            uint64_t pc = cr->c.has_regs ? cr->c.pc : 0;
            if (json) {
                json_crash(t, cr);
                if (stacks) {
                    printf(",\"stack\":");
                    const char *bad = stack_json(t, sym, cr->c.stack, cr->c.ts, pc);
                    if (bad) {
                        printf(",\"stack_error\":");
                        json_cstr(stdout, bad);
                    }
                    rb_json(t, sym, cr->c.rb, cr->c.ts, -1);
                }
                printf("}\n");
            } else {
                text_crash(t, cr, width);
                if (stacks && cr->c.stack)
                    stack_text(t, sym, cr->c.stack, cr->c.ts, pc, "        ");
                if (stacks)
                    rb_text(t, sym, cr->c.rb, cr->c.ts, false);
            }
        }
        if (i == e.n)
            break;
        const struct race_rec *r = &e.v[i];
        if (json) {
            json_event(t, r);
            if (stacks)
                stack_out(t, sym, r, true);
            printf("}\n");
        } else {
            text_event(t, r, width);
            if (stacks)
                stack_out(t, sym, r, false);
        }
    }
    sym_close(sym);
    free(e.v);
}

int cmd_dump(char **paths, int npaths, bool json, bool stacks)
{
    int status = RACE_EXIT_OK;
    for (int i = 0; i < npaths; i++) {
        struct race_trace *t = trace_open(paths[i]);
        if (!json && i)
            putchar('\n');
        dump_one(t, json, stacks);
        if (t->problems)
            status = RACE_EXIT_BADINPUT;
        trace_close(t);
        fflush(stdout);
    }
    return status;
}
