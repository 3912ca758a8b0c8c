/* stats.c - `race stats`: what each trace holds (process, options, counts by kind, entry
 * point, Ractor and thread, damage, time span, stacks, watched functions and their
 * probes), as text or JSON; and the tallies that `race report` reuses.
 * Must never: judge a file (that is the reader's job) or stop at an unreadable trace:
 * every trace named gets its section, even if it only says why it could not be read. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "race.h"

#define TEXT_TOP 20 /* rows per Ractor/thread table in text; JSON has them all */

static void tally_one(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    struct race_tally *y = ctx;
    (void)t;
    (void)off;
    y->by_kind[r->kind]++;
    if (r->kind == RACE_EV_FREE) /* an allocation's entry field names nothing */
        y->by_entry[r->entry]++;
    if (!race_is_probe_event(r->kind)) { /* there, flags is a probe's index */
        y->guarded += (r->flags & RACE_RF_GUARDED) != 0;
        y->quarantined += (r->flags & RACE_RF_QUARANTINED) != 0;
    }
    (*map_put(&y->by_ractor, r->ractor, NULL))++;
    (*map_put(&y->by_tid, r->tid, NULL))++;
}

void tally_collect(struct race_trace *t, struct race_tally *y)
{
    memset(y, 0, sizeof *y);
    map_init(&y->by_ractor);
    map_init(&y->by_tid);
    trace_scan(t, tally_one, y);
}

void tally_free(struct race_tally *y)
{
    map_free(&y->by_ractor);
    map_free(&y->by_tid);
}

/* ---- Watched functions ------------------------------------------------------------ */

static const struct race_trace *sort_trace; /* qsort has no context argument */

static int by_func(const void *a, const void *b)
{
    size_t x = *(const size_t *)a, y = *(const size_t *)b;
    int c = strcmp(sort_trace->probe[x].p.func, sort_trace->probe[y].p.func);
    return c ? c : (x > y) - (x < y);
}

static int by_first_slot(const void *a, const void *b)
{
    const struct race_watched *x = a, *y = b;
    return (x->slot[0] > y->slot[0]) - (x->slot[0] < y->slot[0]);
}

static int by_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Sorting, not pairwise comparing: a damaged file may hold many thousands of records. */
struct race_watched *watched_collect(const struct race_trace *t, size_t *n)
{
    size_t *all = xcalloc(t->nprobe, sizeof *all), nall = 0;
    for (size_t i = 0; i < t->nprobe; i++)
        if (t->probe[i].state == RACE_PST_OK)
            all[nall++] = i;
    sort_trace = t;
    qsort(all, nall, sizeof *all, by_func);
    struct race_watched *w = xcalloc(nall, sizeof *w);
    uint16_t *inst = xcalloc(nall, sizeof *inst);
    *n = 0;
    for (size_t a = 0, b; a < nall; a = b) {
        const char *func = t->probe[all[a]].p.func;
        for (b = a; b < nall && strcmp(t->probe[all[b]].p.func, func) == 0; b++)
            ;
        struct race_watched *f = &w[(*n)++];
        f->func = func;
        f->nslot = b - a;
        f->slot = xcalloc(f->nslot, sizeof *f->slot);
        memcpy(f->slot, all + a, f->nslot * sizeof *f->slot);
        for (size_t k = 0; k < f->nslot; k++) {
            const struct race_proberec *p = &t->probe[f->slot[k]];
            f->by_kind[p->p.kind]++;
            f->by_role[p->p.role]++;
            f->probes += p->p.kind != RACE_PROBEK_REFUSED;
            f->hits += p->p.hits;
            for (int e = 0; e < 3; e++)
                f->events[e] += p->events[e];
            inst[k] = p->p.instance;
        }
        qsort(inst, f->nslot, sizeof *inst, by_u16);
        for (size_t k = 0; k < f->nslot; k++)
            f->instances += k == 0 || inst[k] != inst[k - 1];
    }
    qsort(w, *n, sizeof *w, by_first_slot);
    free(inst);
    free(all);
    return w;
}

void watched_free(struct race_watched *w, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(w[i].slot);
    free(w);
}

static const char *plural(uint64_t n, const char *one, const char *many)
{
    return n == 1 ? one : many;
}

void watched_text(const struct race_watched *w)
{
    text_str(stdout, w->func, strlen(w->func));
    printf(": %llu %s", (unsigned long long)w->probes, plural(w->probes, "probe", "probes"));
    const char *sep = " (";
    for (unsigned k = RACE_PROBEK_HOOK; k <= RACE_PROBEK_BREAK; k++)
        if (w->by_kind[k]) {
            printf("%s%llu %s", sep, (unsigned long long)w->by_kind[k], race_probe_kind_name(k));
            sep = ", ";
        }
    printf("%s", w->probes ? ")" : "");
    if (w->by_kind[RACE_PROBEK_REFUSED])
        printf(", %llu refused", (unsigned long long)w->by_kind[RACE_PROBEK_REFUSED]);
    printf(", %llu %s", (unsigned long long)w->hits, plural(w->hits, "hit", "hits"));
}

double trace_span_ms(const struct race_trace *t)
{
    if (t->n_valid == 0)
        return 0;
    /* In double: two clamped extremes of a corrupt trace would overflow int64. */
    return ((double)clock_ns(&t->clock, t->ts_max) - (double)clock_ns(&t->clock, t->ts_min)) / 1e6;
}

static double since_start_ms(const struct race_trace *t, uint64_t ts)
{
    return (double)clock_ns(&t->clock, ts) / 1e6;
}

static double pct(uint64_t n, uint64_t of)
{
    return of ? 100.0 * (double)n / (double)of : 0.0;
}

/* ---- Text ------------------------------------------------------------------------ */

static void label(const char *name)
{
    printf("  %-13s", name);
}

static void text_started(uint64_t ns)
{
    time_t s = (time_t)(ns / 1000000000u);
    struct tm tm;
    char buf[64];
    if (ns == 0 || !gmtime_r(&s, &tm) || !strftime(buf, sizeof buf, "%Y-%m-%d %H:%M:%S", &tm)) {
        printf("unknown\n");
        return;
    }
    printf("%s.%03u UTC\n", buf, (unsigned)(ns / 1000000u % 1000u));
}

static void text_options(const struct race_hdr *h)
{
    size_t n = h->options_len, i = 0, lines = 0;
    while (i < n) {
        const char *nl = memchr(h->options + i, '\n', n - i);
        size_t len = nl ? (size_t)(nl - (h->options + i)) : n - i;
        size_t z = trace_strlen(h->options + i, len);
        if (z) {
            if (lines++)
                label("");
            text_str(stdout, h->options + i, z);
            putchar('\n');
        }
        i += len + 1;
    }
    if (lines == 0)
        printf("none recorded\n");
}

static void text_table(const char *title, const struct race_map *m, uint64_t total)
{
    struct race_kv *kv = map_sorted(m);
    printf("  %-24s %10s %7s\n", title, "events", "%");
    size_t shown = m->count < TEXT_TOP ? m->count : TEXT_TOP;
    for (size_t i = 0; i < shown; i++) {
        char key[40];
        snprintf(key, sizeof key, "%llu", (unsigned long long)kv[i].key);
        printf("    %-22s %10llu %6.1f%%\n", key, (unsigned long long)kv[i].val,
               pct(kv[i].val, total));
    }
    if (m->count > shown) {
        uint64_t rest = 0;
        for (size_t i = shown; i < m->count; i++)
            rest += kv[i].val;
        printf("    %-22s %10llu %6.1f%%\n", "(others)", (unsigned long long)rest, pct(rest, total));
        printf("    (%zu more not shown; --json lists all)\n", m->count - shown);
    }
    free(kv);
}

static void text_array(const char *title, const uint64_t *by, uint64_t total,
                       const char *(*name)(unsigned))
{
    printf("  %-24s %10s %7s\n", title, "events", "%");
    for (unsigned i = 0; i < 256; i++)
        if (by[i])
            printf("    %-22s %10llu %6.1f%%\n", name(i), (unsigned long long)by[i],
                   pct(by[i], total));
    if (total == 0)
        printf("    (none)\n");
}

static const char *entry_name(unsigned e)
{
    return race_entry_name(e);
}

/* The probes section's state, in the header block. */
static void text_probes_line(const struct race_trace *t)
{
    switch ((enum race_probes_section)t->probes_state) {
    case RACE_PSEC_NONE:
        printf("none (no function was watched)\n");
        return;
    case RACE_PSEC_BAD:
        printf("unreadable\n");
        return;
    case RACE_PSEC_CUT:
        printf("lost past the end of the file\n");
        return;
    case RACE_PSEC_OK:
        break;
    }
    printf("%llu %s", (unsigned long long)t->probes_ok, plural(t->probes_ok, "record", "records"));
    if (t->probes_incomplete || t->probes_corrupt || t->probes_dropped)
        printf(" (%llu incomplete, %llu corrupt, %llu did not fit)",
               (unsigned long long)t->probes_incomplete, (unsigned long long)t->probes_corrupt,
               (unsigned long long)t->probes_dropped);
    if (t->probes_claimed > t->nprobe)
        printf("; %llu lost past the end of the file",
               (unsigned long long)(t->probes_claimed - t->nprobe));
    putchar('\n');
}

/* Each watched function: its totals, then one row per probe record. */
static void text_watched(const struct race_trace *t)
{
    size_t n;
    struct race_watched *w = watched_collect(t, &n);
    for (size_t i = 0; i < n; i++) {
        const struct race_watched *f = &w[i];
        printf("\n  watched      ");
        watched_text(f);
        printf("\n    %-22s %llu entry, %llu inlined, %llu check, over %llu %s\n", "roles",
               (unsigned long long)f->by_role[RACE_PROBER_ENTRY],
               (unsigned long long)f->by_role[RACE_PROBER_INLINE],
               (unsigned long long)f->by_role[RACE_PROBER_CHECK],
               (unsigned long long)f->instances, plural(f->instances, "instance", "instances"));
        printf("    %-22s %llu enter, %llu exit, %llu hit\n", "events in the ring",
               (unsigned long long)f->events[0], (unsigned long long)f->events[1],
               (unsigned long long)f->events[2]);
        printf("    %-6s %-11s %-8s %8s %18s %10s  %s\n", "probe", "kind", "role", "instance",
               "addr", "hits", "detail");
        size_t shown = f->nslot < TEXT_TOP ? f->nslot : TEXT_TOP;
        for (size_t k = 0; k < shown; k++) {
            const struct race_proberec *p = &t->probe[f->slot[k]];
            char idx[24];
            snprintf(idx, sizeof idx, "#%zu", f->slot[k]);
            printf("    %-6s %-11s %-8s %8u 0x%016llx %10llu  ", idx,
                   race_probe_kind_name(p->p.kind), race_probe_role_name(p->p.role),
                   p->p.instance, (unsigned long long)p->p.addr, (unsigned long long)p->p.hits);
            if (p->p.detail[0])
                text_str(stdout, p->p.detail, strlen(p->p.detail));
            else
                putchar('-');
            putchar('\n');
        }
        if (f->nslot > shown)
            printf("    (%zu more not shown; --json lists all)\n", f->nslot - shown);
    }
    if (t->probe_ev_cut)
        printf("\n  %llu watched-function events name probe records lost past the end of the "
               "file\n", (unsigned long long)t->probe_ev_cut);
    watched_free(w, n);
}

/* Crash records: how many, how many were the process's crash (first == 0) and how many
 * were raised while one was handled, and the signal of the first crash. */
static size_t crashes_first(const struct race_trace *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->ncrash; i++)
        n += t->crash[i].c.first == 0;
    return n;
}

static void text_crashes(const struct race_trace *t)
{
    size_t first = crashes_first(t);
    printf("%zu", t->ncrash);
    if (t->ncrash)
        printf(" (%zu %s, %zu raised while one was handled)", first, plural(first, "crash", "crashes"),
               t->ncrash - first);
    if (t->crash_incomplete || t->crash_dropped)
        printf(" (%llu incomplete, %llu did not fit)", (unsigned long long)t->crash_incomplete,
               (unsigned long long)t->crash_dropped);
    for (size_t i = 0; i < t->ncrash; i++)
        if (t->crash[i].c.first == 0) {
            const struct race_crash *c = &t->crash[i].c;
            const char *code = race_sicode_name(c->sig, c->code);
            printf(": %s", race_sig_name(c->sig));
            if (code)
                printf("/%s", code);
            else
                printf("/code %d", c->code);
            printf(" at 0x%llx by thread %u", (unsigned long long)c->addr, c->tid);
            if (c->ractor)
                printf(" (Ractor %u)", c->ractor);
            break;
        }
    putchar('\n');
}

static void text_trace(struct race_trace *t)
{
    const struct race_hdr *h = &t->hdr;
    printf("race stats: ");
    text_str(stdout, t->path, strlen(t->path));
    putchar('\n');
    if (!t->identified) {
        printf("  unreadable: %s\n", t->first_problem);
        return;
    }
    label("process");
    printf("pid %d, parent %d, %s%s\n", h->pid, h->ppid,
           (h->flags & RACE_FLAG_CLOSED) ? "exited cleanly"
                                         : "did not close (crashed, was killed, or called exec)",
           (h->flags & RACE_FLAG_FORKED) ? ", child of fork()" : "");
    label("exe");
    text_str(stdout, h->exe, trace_strlen(h->exe, sizeof h->exe));
    putchar('\n');
    label("cmdline");
    text_cmdline(stdout, h->cmdline, h->cmdline_len);
    putchar('\n');
    label("started");
    text_started(h->start_realtime_ns);
    label("ruby");
    if (h->ruby_version[0])
        text_str(stdout, h->ruby_version, trace_strlen(h->ruby_version, sizeof h->ruby_version));
    else
        printf("none recorded");
    putchar('\n');
    label("ractor ids");
    printf("%s\n", race_ractor_state_text(h->ractor_state));
    label("stacks");
    if (h->flags & RACE_FLAG_STACKS_OFF)
        printf("off (libunwind could not be used)\n");
    else if (h->stack_sample == 0)
        printf("none (RACE_STACK_SAMPLE=0)\n");
    else if (h->stack_sample == 1)
        printf("every free, up to %u frames\n", h->stack_depth);
    else
        printf("1 in %u frees per thread, up to %u frames\n", h->stack_sample, h->stack_depth);
    label("clock");
    printf("%s", race_clock_name(h->clock));
    if (h->clock == RACE_CLOCK_TSC && t->clock.calibrated)
        printf(", %.3f GHz (from %u calibration pairs, the outermost %.3f ms apart)",
               1.0 / t->clock.ns_per_tick, t->clock.npairs,
               (double)(t->clock.mono_hi - t->clock.mono_lo) / 1e6);
    else if (h->clock == RACE_CLOCK_TSC)
        printf(", not calibrated: times assume 1 GHz");
    putchar('\n');
    label("options");
    text_options(h);
    label("ring");
    printf("%llu chunks of %u KiB, %llu claimed now (%llu still held), %llu claimed over the run\n",
           (unsigned long long)t->nchunks, RACE_CHUNK_SIZE / 1024,
           (unsigned long long)t->chunks_claimed, (unsigned long long)t->chunks_held,
           (unsigned long long)h->next_chunk);
    label("records");
    printf("%llu valid, %llu torn or incomplete, %llu corrupt", (unsigned long long)t->n_valid,
           (unsigned long long)t->n_torn, (unsigned long long)t->n_corrupt);
    if (t->chunks_clamped)
        printf(", %llu corrupt chunk headers", (unsigned long long)t->chunks_clamped);
    putchar('\n');
    if (t->n_lost || t->chunks_missing) {
        label("truncation");
        printf("%llu reserved records and %llu chunks lost past the end of the file\n",
               (unsigned long long)t->n_lost, (unsigned long long)t->chunks_missing);
    }
    label("lost");
    printf("%llu overwritten, %llu dropped, %llu frees before the trace existed\n",
           (unsigned long long)h->overwritten, (unsigned long long)h->dropped,
           (unsigned long long)h->early_frees);
    label("span");
    if (t->n_valid)
        printf("%.3f ms (first event at %.3f ms, last at %.3f ms after start)\n",
               trace_span_ms(t), since_start_ms(t, t->ts_min), since_start_ms(t, t->ts_max));
    else
        printf("no events\n");
    label("stack ids");
    printf("%llu distinct referenced", (unsigned long long)t->stack_ids);
    if (t->stack_bad || t->stack_cut)
        printf(" (%llu corrupt, %llu lost to truncation)", (unsigned long long)t->stack_bad,
               (unsigned long long)t->stack_cut);
    printf("; depot holds %llu unique, %llu not stored (depot full)\n",
           (unsigned long long)t->depot_unique, (unsigned long long)h->stack_dropped);
    label("modules");
    printf("%zu records", t->nmod);
    if (t->mods_incomplete)
        printf(" (%llu incomplete)", (unsigned long long)t->mods_incomplete);
    putchar('\n');
    label("findings");
    printf("%zu", t->nfind);
    if (t->find_incomplete || t->find_dropped)
        printf(" (%llu incomplete, %llu did not fit)", (unsigned long long)t->find_incomplete,
               (unsigned long long)t->find_dropped);
    printf("%s\n", t->nfind ? ": see race report" : "");
    label("crashes");
    text_crashes(t);
    label("probes");
    text_probes_line(t);

    struct race_tally y;
    tally_collect(t, &y);
    uint64_t frees = y.by_kind[RACE_EV_FREE];
    putchar('\n');
    text_array("events by kind", y.by_kind, t->n_valid, race_kind_name);
    text_array("frees by entry point", y.by_entry, frees, entry_name);
    if (y.guarded || y.quarantined)
        printf("  %-24s %10s\n    %-22s %10llu\n    %-22s %10llu\n", "events by flag", "events",
               "guarded", (unsigned long long)y.guarded, "quarantined",
               (unsigned long long)y.quarantined);
    text_table("events by ractor id", &y.by_ractor, t->n_valid);
    text_table("events by thread id", &y.by_tid, t->n_valid);
    tally_free(&y);
    text_watched(t);
}

/* ---- JSON ------------------------------------------------------------------------ */

static void json_array_obj(const uint64_t *by, const char *(*name)(unsigned))
{
    bool first = true;
    putchar('{');
    for (unsigned i = 0; i < 256; i++) {
        if (!by[i])
            continue;
        printf(first ? "" : ",");
        first = false;
        json_cstr(stdout, name(i));
        printf(":%llu", (unsigned long long)by[i]);
    }
    putchar('}');
}

static void json_map_obj(const struct race_map *m)
{
    struct race_kv *kv = map_sorted(m);
    putchar('{');
    for (size_t i = 0; i < m->count; i++)
        printf("%s\"%llu\":%llu", i ? "," : "", (unsigned long long)kv[i].key,
               (unsigned long long)kv[i].val);
    putchar('}');
    free(kv);
}

static void json_options(const struct race_hdr *h)
{
    size_t n = h->options_len, i = 0;
    bool first = true;
    putchar('{');
    while (i < n) {
        const char *line = h->options + i;
        const char *nl = memchr(line, '\n', n - i);
        size_t len = nl ? (size_t)(nl - line) : n - i;
        size_t z = trace_strlen(line, len);
        const char *eq = memchr(line, '=', z);
        if (z) {
            printf(first ? "" : ",");
            first = false;
            json_str(stdout, line, eq ? (size_t)(eq - line) : z);
            putchar(':');
            if (eq)
                json_str(stdout, eq + 1, z - (size_t)(eq + 1 - line));
            else
                printf("\"\"");
        }
        i += len + 1;
    }
    putchar('}');
}

static void json_cmdline(const struct race_hdr *h)
{
    putchar('[');
    for (size_t i = 0, k = 0; i < h->cmdline_len; k++) {
        const char *a = h->cmdline + i;
        const char *nul = memchr(a, 0, h->cmdline_len - i);
        size_t n = nul ? (size_t)(nul - a) : h->cmdline_len - i;
        printf(k ? "," : "");
        json_str(stdout, a, n);
        i += n + 1;
    }
    putchar(']');
}

/* "probe_records" (the section's counts), "watched" (per function) and "probes" (every
 * sound record, in index order). */
static void json_probes(const struct race_trace *t)
{
    static const char *const psec[] = {"none", "unreadable", "lost_to_truncation", "ok"};
    printf(",\"probe_records\":{\"section\":\"%s\",\"count\":%llu,\"incomplete\":%llu,"
           "\"corrupt\":%llu,\"dropped\":%llu,\"lost_to_truncation\":%llu,"
           "\"events_lost_to_truncation\":%llu}", psec[t->probes_state],
           (unsigned long long)t->probes_ok, (unsigned long long)t->probes_incomplete,
           (unsigned long long)t->probes_corrupt, (unsigned long long)t->probes_dropped,
           (unsigned long long)(t->probes_claimed - t->nprobe),
           (unsigned long long)t->probe_ev_cut);
    size_t n;
    struct race_watched *w = watched_collect(t, &n);
    printf(",\"watched\":[");
    for (size_t i = 0; i < n; i++) {
        const struct race_watched *f = &w[i];
        printf("%s{\"function\":", i ? "," : "");
        json_cstr(stdout, f->func);
        printf(",\"probes\":%llu,\"instances\":%llu,\"hits\":%llu,\"kinds\":{",
               (unsigned long long)f->probes, (unsigned long long)f->instances,
               (unsigned long long)f->hits);
        for (unsigned k = RACE_PROBEK_HOOK; k <= RACE_PROBEK_REFUSED; k++)
            printf("%s\"%s\":%llu", k == RACE_PROBEK_HOOK ? "" : ",", race_probe_kind_name(k),
                   (unsigned long long)f->by_kind[k]);
        printf("},\"roles\":{");
        for (unsigned r = RACE_PROBER_ENTRY; r <= RACE_PROBER_CHECK; r++)
            printf("%s\"%s\":%llu", r == RACE_PROBER_ENTRY ? "" : ",", race_probe_role_name(r),
                   (unsigned long long)f->by_role[r]);
        printf("},\"events\":{\"enter\":%llu,\"exit\":%llu,\"hit\":%llu}}",
               (unsigned long long)f->events[0], (unsigned long long)f->events[1],
               (unsigned long long)f->events[2]);
    }
    watched_free(w, n);
    printf("],\"probes\":[");
    bool first = true;
    for (size_t i = 0; i < t->nprobe; i++) {
        const struct race_proberec *p = &t->probe[i];
        if (p->state != RACE_PST_OK)
            continue;
        printf("%s{\"index\":%zu,\"function\":", first ? "" : ",", i);
        first = false;
        json_cstr(stdout, p->p.func);
        printf(",\"role\":\"%s\",\"kind\":\"%s\",\"instance\":%u,\"addr\":",
               race_probe_role_name(p->p.role), race_probe_kind_name(p->p.kind), p->p.instance);
        json_hex(stdout, p->p.addr);
        printf(",\"hits\":%llu,\"detail\":", (unsigned long long)p->p.hits);
        json_cstr(stdout, p->p.detail);
        printf(",\"events\":{\"enter\":%llu,\"exit\":%llu,\"hit\":%llu}}",
               (unsigned long long)p->events[0], (unsigned long long)p->events[1],
               (unsigned long long)p->events[2]);
    }
    putchar(']');
}

/* One trace's summary object, shared with `race report --json`. */
void stats_json_trace(struct race_trace *t, bool tables)
{
    const struct race_hdr *h = &t->hdr;
    printf("{\"trace\":");
    json_cstr(stdout, t->path);
    printf(",\"readable\":%s,\"problems\":%u", t->identified ? "true" : "false", t->problems);
    if (t->problems) {
        printf(",\"first_problem\":");
        json_cstr(stdout, t->first_problem);
    }
    if (!t->identified) {
        putchar('}');
        return;
    }
    printf(",\"exe\":");
    json_str(stdout, h->exe, trace_strlen(h->exe, sizeof h->exe));
    printf(",\"pid\":%d,\"ppid\":%d,\"cmdline\":", h->pid, h->ppid);
    json_cmdline(h);
    printf(",\"ruby_version\":");
    json_str(stdout, h->ruby_version, trace_strlen(h->ruby_version, sizeof h->ruby_version));
    printf(",\"ractor_state\":\"%s\",\"closed\":%s,\"forked\":%s,\"stacks_off\":%s",
           race_ractor_state_name(h->ractor_state),
           (h->flags & RACE_FLAG_CLOSED) ? "true" : "false",
           (h->flags & RACE_FLAG_FORKED) ? "true" : "false",
           (h->flags & RACE_FLAG_STACKS_OFF) ? "true" : "false");
    printf(",\"stack_sample\":%u,\"stack_depth\":%u,\"start_realtime_ns\":%llu",
           h->stack_sample, h->stack_depth, (unsigned long long)h->start_realtime_ns);
    printf(",\"clock\":\"%s\",\"clock_calibrated\":%s", race_clock_name(h->clock),
           t->clock.calibrated ? "true" : "false");
    if (h->clock == RACE_CLOCK_TSC)
        printf(",\"tsc_ghz\":%.6f", 1.0 / t->clock.ns_per_tick);
    printf(",\"options\":");
    json_options(h);
    printf(",\"chunks\":{\"total\":%llu,\"claimed\":%llu,\"held\":%llu,\"next_chunk\":%llu,"
           "\"clamped\":%llu,\"missing\":%llu}", (unsigned long long)t->nchunks,
           (unsigned long long)t->chunks_claimed, (unsigned long long)t->chunks_held,
           (unsigned long long)h->next_chunk,
           (unsigned long long)t->chunks_clamped, (unsigned long long)t->chunks_missing);
    printf(",\"records\":{\"valid\":%llu,\"torn\":%llu,\"corrupt\":%llu,\"lost_to_truncation\":%llu}",
           (unsigned long long)t->n_valid, (unsigned long long)t->n_torn,
           (unsigned long long)t->n_corrupt, (unsigned long long)t->n_lost);
    printf(",\"overwritten\":%llu,\"dropped\":%llu,\"early_frees\":%llu",
           (unsigned long long)h->overwritten, (unsigned long long)h->dropped,
           (unsigned long long)h->early_frees);
    printf(",\"span_ms\":%.6f", trace_span_ms(t));
    if (t->n_valid)
        printf(",\"first_ms\":%.6f,\"last_ms\":%.6f", since_start_ms(t, t->ts_min),
               since_start_ms(t, t->ts_max));
    printf(",\"stacks\":{\"referenced\":%llu,\"corrupt\":%llu,\"lost_to_truncation\":%llu,"
           "\"depot_unique\":%llu,\"dropped\":%llu}", (unsigned long long)t->stack_ids,
           (unsigned long long)t->stack_bad, (unsigned long long)t->stack_cut,
           (unsigned long long)t->depot_unique, (unsigned long long)h->stack_dropped);
    printf(",\"modules\":{\"records\":%zu,\"incomplete\":%llu}", t->nmod,
           (unsigned long long)t->mods_incomplete);
    printf(",\"findings\":{\"count\":%zu,\"incomplete\":%llu,\"dropped\":%llu}", t->nfind,
           (unsigned long long)t->find_incomplete, (unsigned long long)t->find_dropped);
    printf(",\"crashes\":{\"count\":%zu,\"first\":%zu,\"incomplete\":%llu,\"dropped\":%llu}",
           t->ncrash, crashes_first(t), (unsigned long long)t->crash_incomplete,
           (unsigned long long)t->crash_dropped);
    json_probes(t);
    if (tables) {
        struct race_tally y;
        tally_collect(t, &y);
        printf(",\"by_kind\":");
        json_array_obj(y.by_kind, race_kind_name);
        printf(",\"by_entry\":");
        json_array_obj(y.by_entry, entry_name);
        printf(",\"by_flag\":{\"guarded\":%llu,\"quarantined\":%llu}",
               (unsigned long long)y.guarded, (unsigned long long)y.quarantined);
        printf(",\"by_ractor\":");
        json_map_obj(&y.by_ractor);
        printf(",\"by_tid\":");
        json_map_obj(&y.by_tid);
        tally_free(&y);
    }
    putchar('}');
}

int cmd_stats(char **paths, int npaths, bool json)
{
    int status = RACE_EXIT_OK;
    if (json)
        printf("{\"traces\":[");
    for (int i = 0; i < npaths; i++) {
        struct race_trace *t = trace_open(paths[i]);
        if (json) {
            printf(i ? ",\n" : "\n");
            stats_json_trace(t, true);
        } else {
            if (i)
                putchar('\n');
            text_trace(t);
        }
        if (t->problems)
            status = RACE_EXIT_BADINPUT;
        trace_close(t);
        fflush(stdout);
    }
    if (json)
        printf("\n]}\n");
    return status;
}
