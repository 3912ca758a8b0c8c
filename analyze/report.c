/* report.c - `race report`: every finding in each trace, shaped like AddressSanitizer's
 * report (what was touched, by whom, where; who freed the block, where, when; who
 * allocated it), then a short summary of what each trace covered (watched functions
 * included). Text or JSON.
 * Must never: exit 0 when there are findings (1) or an input could not be read (2, which
 * wins: the findings may then be incomplete), or hide a finding behind the summary. */
#include <stdlib.h>
#include <string.h>

#include "race.h"
#include "race_words.h"

#define INDENT "    "

static double ms_of(const struct race_trace *t, uint64_t ts)
{
    return (double)clock_ns(&t->clock, ts) / 1e6;
}

/* always_ractor: say "(Ractor unknown)" rather than nothing, where which Ractor it was
 * is the point (a stale call-info is one Ractor freeing what another still reads). */
static void who(uint32_t tid, uint32_t ractor, bool always_ractor)
{
    printf(RACE_W_THREAD "%u", tid);
    if (ractor)
        printf(RACE_W_RACTOR "%u)", ractor);
    else if (always_ractor)
        printf(RACE_W_RACTOR_UNKNOWN);
}

/* "rb_vm_ci_lookup was handed a freed kwarg block" */
/* The free of a GC-swept call-info was seen at rb_vm_ci_free's entry: its stack's first
 * frame is that entry, not a return address. */
static uint64_t free_pc_exact(const struct race_finding *f)
{
    return f->free_entry == RACE_ENTRY_RB_VM_CI_FREE ? RACE_PC_EXACT : 0;
}

static void text_stale_ci(const struct race_finding *f)
{
    unsigned sub = race_w_stale_sub(f), len = race_w_watched_len(f->detail);
    if (race_w_stale_whole(sub)) {
        fputs(race_w_stale_whole(sub), stdout);
        return;
    }
    if (len)
        text_str(stdout, f->detail, len);
    else
        fputs(RACE_W_WATCHED_UNKNOWN, stdout);
    fputs(race_w_stale_tail(sub), stdout);
    if (race_w_stale_names_what(sub))
        fputs(race_w_watched_what(f->detail, len), stdout);
}

/* The first frame with a function, for the SUMMARY line, as ASan does. */
static void summary_where(struct race_trace *t, struct race_sym *sym, const struct race_finding *f)
{
    struct race_stack st;
    const char *why;
    if (!f->stack || trace_stack(t, f->stack, &st, &why) != RACE_STACK_OK || st.nframes == 0)
        return;
    struct race_frame fr;
    sym_frame(sym, st.pc[0], f->ts, f->pc && st.pc[0] == f->pc, &fr);
    printf(RACE_W_SUMMARY_IN);
    if (fr.func)
        text_str(stdout, fr.func, strlen(fr.func));
    else if (fr.module)
        printf("%s+0x%llx", fr.module, (unsigned long long)fr.modoff);
    else
        printf("0x%llx", (unsigned long long)fr.pc);
    if (fr.file) {
        putchar(' ');
        text_str(stdout, fr.file, strlen(fr.file));
        printf(":%d", fr.line);
    }
}

static void text_finding(struct race_trace *t, struct race_sym *sym, const struct race_findrec *fr)
{
    const struct race_finding *f = &fr->f;
    const char *name = race_find_name(f->type);
    printf(RACE_W_HEAD_PRE "%d" RACE_W_HEAD_POST "%s" RACE_W_ON_ADDRESS "0x%llx", t->hdr.pid, name,
           (unsigned long long)f->addr);
    if (f->pc)
        printf(RACE_W_AT_PC "0x%llx", (unsigned long long)f->pc);
    printf("\n");
    const char *open = race_w_opening(f->type);
    if (open) {
        fputs(open, stdout);
    } else {
        printf("%s" RACE_W_OF_SIZE, race_w_access(f->access));
        if (f->access_size)
            printf("%u", f->access_size);
        else
            printf(RACE_W_SIZE_UNKNOWN);
        printf(RACE_W_AT);
    }
    printf("0x%llx%s", (unsigned long long)f->addr, race_w_by(f->type));
    bool stale = f->type == RACE_FIND_STALE_CI;
    who(f->tid, f->ractor, stale);
    printf(RACE_W_AT "%.3f" RACE_W_MS ":", ms_of(t, f->ts));
    if (stale) {
        putchar(' ');
        text_stale_ci(f);
    }
    putchar('\n');
    stack_text(t, sym, f->stack, f->ts, f->pc, INDENT);
    if (f->block_addr) {
        uint64_t a = f->addr, b = f->block_addr, end = f->block_addr + f->block_size;
        printf("\n0x%llx" RACE_W_LOCATED, (unsigned long long)a);
        if (a < b)
            printf("%llu" RACE_W_BYTES_BEFORE, (unsigned long long)(b - a));
        else if (a >= end)
            printf("%llu" RACE_W_BYTES_AFTER, (unsigned long long)(a - end));
        else
            printf("%llu" RACE_W_BYTES_INSIDE, (unsigned long long)(a - b));
        printf(" %llu" RACE_W_REGION "0x%llx,0x%llx)\n", (unsigned long long)f->block_size,
               (unsigned long long)b, (unsigned long long)end);
    }
    if (f->free_ts) {
        printf("\n" RACE_W_FREED_BY);
        who(f->free_tid, f->free_ractor, stale);
        printf(RACE_W_VIA "%s" RACE_W_AT "%.3f" RACE_W_MS, race_entry_name(f->free_entry),
               ms_of(t, f->free_ts));
        if (f->ts >= f->free_ts)
            printf(RACE_W_BEFORE_PRE "%.3f" RACE_W_BEFORE_POST, ms_of(t, f->ts) - ms_of(t, f->free_ts));
        printf(":\n");
        stack_text(t, sym, f->free_stack, f->free_ts, free_pc_exact(f), INDENT);
    }
    if (f->alloc_ts) {
        printf("\n" RACE_W_ALLOCATED_BY);
        who(f->alloc_tid, f->alloc_ractor, false);
        printf(RACE_W_AT "%.3f" RACE_W_MS ":\n", ms_of(t, f->alloc_ts));
        stack_text(t, sym, f->alloc_stack, f->alloc_ts, 0, INDENT);
    }
    if (f->detail[0]) {
        printf("\n" RACE_W_DETAIL);
        text_str(stdout, f->detail, strlen(f->detail));
        putchar('\n');
    }
    printf("\n" RACE_W_SUMMARY "%s", name);
    summary_where(t, sym, f);
    printf("\n");
}

static void json_who(const struct race_trace *t, struct race_sym *sym, const char *key,
                     uint64_t ts, uint32_t tid, uint32_t ractor, uint32_t stack, int entry)
{
    printf(",\"%s\":{\"time_ms\":%.6f,\"tid\":%u,\"ractor\":%u", key, ms_of(t, ts), tid, ractor);
    if (entry >= 0)
        printf(",\"entry\":\"%s\"", race_entry_name((unsigned)entry));
    printf(",\"stack_id\":%u,\"stack\":", stack);
    const char *bad = stack_json((struct race_trace *)t, sym, stack, ts,
                                 entry == RACE_ENTRY_RB_VM_CI_FREE ? RACE_PC_EXACT : 0);
    if (bad) {
        printf(",\"stack_error\":");
        json_cstr(stdout, bad);
    }
    putchar('}');
}

/* Times the process saw this finding (same type, pc and block): the shim records it
 * once and counts the rest; a version-2 trace says 0 for once. */
static uint64_t seen_of(const struct race_finding *f)
{
    return f->count ? f->count : 1;
}

static void json_finding(struct race_trace *t, struct race_sym *sym, const struct race_findrec *fr)
{
    const struct race_finding *f = &fr->f;
    printf("{\"trace\":");
    json_cstr(stdout, t->path);
    printf(",\"offset\":%llu,\"type\":\"%s\",\"access\":\"%s\",\"access_size\":",
           (unsigned long long)fr->off, race_find_name(f->type),
           f->access == RACE_ACCESS_READ ? "read" : f->access == RACE_ACCESS_WRITE ? "write"
                                                                                  : "unknown");
    if (f->access_size)
        printf("%u", f->access_size);
    else
        printf("null");
    printf(",\"addr\":");
    json_hex(stdout, f->addr);
    printf(",\"pc\":");
    if (f->pc)
        json_hex(stdout, f->pc);
    else
        printf("null");
    printf(",\"count\":%llu", (unsigned long long)seen_of(f));
    printf(",\"time_ms\":%.6f,\"tid\":%u,\"ractor\":%u,\"stack_id\":%u,\"stack\":", ms_of(t, f->ts),
           f->tid, f->ractor, f->stack);
    const char *bad = stack_json(t, sym, f->stack, f->ts, f->pc);
    if (bad) {
        printf(",\"stack_error\":");
        json_cstr(stdout, bad);
    }
    printf(",\"block\":");
    if (f->block_addr) {
        printf("{\"addr\":");
        json_hex(stdout, f->block_addr);
        printf(",\"size\":%llu}", (unsigned long long)f->block_size);
    } else {
        printf("null");
    }
    if (f->free_ts) {
        json_who(t, sym, "free", f->free_ts, f->free_tid, f->free_ractor, f->free_stack,
                 f->free_entry);
        printf(",\"free_seq\":%llu", (unsigned long long)f->free_seq);
    } else {
        printf(",\"free\":null");
    }
    if (f->alloc_ts)
        json_who(t, sym, "alloc", f->alloc_ts, f->alloc_tid, f->alloc_ractor, f->alloc_stack, -1);
    else
        printf(",\"alloc\":null");
    if (f->slot != UINT32_MAX)
        printf(",\"slot\":%u", f->slot);
    else
        printf(",\"slot\":null");
    printf(",\"detail\":");
    if (f->detail[0])
        json_cstr(stdout, f->detail);
    else
        printf("null");
    if (f->type == RACE_FIND_STALE_CI) {
        size_t len = race_w_watched_len(f->detail);
        printf(",\"watched\":");
        if (len)
            json_str(stdout, f->detail, len);
        else
            printf("null");
    }
    /* left open: the caller adds the group fields and closes it */
}

static void text_summary(struct race_trace *t)
{
    const struct race_hdr *h = &t->hdr;
    printf("race report: ");
    text_str(stdout, t->path, strlen(t->path));
    putchar('\n');
    if (!t->identified) {
        printf("  unreadable: %s\n", t->first_problem);
        return;
    }
    printf("  process    pid %d, ", h->pid);
    text_str(stdout, h->exe, trace_strlen(h->exe, sizeof h->exe));
    printf(", %s\n", (h->flags & RACE_FLAG_CLOSED) ? "exited cleanly" : "did not close");
    printf("  events     %llu over %.3f ms; %llu torn, %llu corrupt; %llu overwritten, "
           "%llu dropped\n", (unsigned long long)t->n_valid, trace_span_ms(t),
           (unsigned long long)t->n_torn, (unsigned long long)t->n_corrupt,
           (unsigned long long)h->overwritten, (unsigned long long)h->dropped);
    printf("  ractor ids %s\n", race_ractor_state_text(h->ractor_state));
    printf("  findings   %zu", t->nfind);
    if (t->find_incomplete || t->find_dropped)
        printf(" (and %llu incomplete, %llu that did not fit)",
               (unsigned long long)t->find_incomplete, (unsigned long long)t->find_dropped);
    putchar('\n');
    size_t n;
    struct race_watched *w = watched_collect(t, &n);
    for (size_t i = 0; i < n; i++) {
        printf(i ? "             " : "  watched    ");
        watched_text(&w[i]);
        putchar('\n');
    }
    watched_free(w, n);
}

/* Grouping: findings of one type whose use stack and free stack are the same
 * (symbolized, so that the same bug in several processes groups too, whatever their
 * load addresses) are one group. The key is the frames' text. */
struct key {
    char *s;
    size_t len, cap;
};

static void key_add(struct key *k, const char *s, size_t n)
{
    if (k->len + n + 1 > k->cap) {
        k->cap = (k->len + n + 1) * 2;
        k->s = xreallocarray(k->s, k->cap, 1);
    }
    memcpy(k->s + k->len, s, n);
    k->len += n;
    k->s[k->len] = 0;
}

static void key_stack(struct key *k, struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                      uint64_t fault_pc)
{
    struct race_stack st;
    const char *why;
    char buf[64];
    if (!id || trace_stack(t, id, &st, &why) != RACE_STACK_OK) {
        key_add(k, "-|", 2);
        return;
    }
    for (uint32_t i = 0; i < st.nframes; i++) {
        struct race_frame fr;
        sym_frame(sym, st.pc[i], ts, i == 0 && fault_pc && (fault_pc == RACE_PC_EXACT || st.pc[0] == fault_pc), &fr);
        if (fr.func)
            key_add(k, fr.func, strlen(fr.func));
        if (fr.file) {
            key_add(k, fr.file, strlen(fr.file));
            snprintf(buf, sizeof buf, ":%d", fr.line);
            key_add(k, buf, strlen(buf));
        } else if (fr.module) {
            key_add(k, fr.module, strlen(fr.module));
            snprintf(buf, sizeof buf, "+%llx", (unsigned long long)fr.modoff);
            key_add(k, buf, strlen(buf));
        }
        key_add(k, ";", 1);
    }
    key_add(k, "|", 1);
}

struct member {
    int trace;
    size_t index;
    char *key;
    size_t group, count; /* group number; members in it (kept on the first) */
    uint64_t seen;       /* this finding's count; on the first, the group's sum */
};

static int by_key(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->trace != y->trace ? x->trace - y->trace : (x->index > y->index) - (x->index < y->index);
}

static int by_place(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    return x->trace != y->trace ? x->trace - y->trace : (x->index > y->index) - (x->index < y->index);
}

/* Returns every finding with its group; the first member of each group (in report
 * order) carries the group's size, the others count 0. */
static struct member *group_findings(struct race_trace **t, struct race_sym **sym, int n, size_t total)
{
    struct member *m = xcalloc(total ? total : 1, sizeof *m);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < t[i]->nfind; j++) {
            const struct race_finding *f = &t[i]->find[j].f;
            struct key key = {0};
            char head[32];
            snprintf(head, sizeof head, "%u|", f->type);
            key_add(&key, head, strlen(head));
            key_stack(&key, t[i], sym[i], f->stack, f->ts, f->pc);
            key_stack(&key, t[i], sym[i], f->free_stack, f->free_ts, free_pc_exact(f));
            m[k++] = (struct member){.trace = i, .index = j, .key = key.s, .seen = seen_of(f)};
        }
    qsort(m, total, sizeof *m, by_key);
    size_t g = 0;
    for (size_t a = 0; a < total;) {
        size_t b = a + 1;
        uint64_t seen = m[a].seen;
        m[a].group = g;
        while (b < total && strcmp(m[b].key, m[a].key) == 0) {
            seen += m[b].seen;
            m[b++].group = g;
        }
        m[a].count = b - a; /* the first in report order: sorted by place within the key */
        m[a].seen = seen;
        g++;
        a = b;
    }
    qsort(m, total, sizeof *m, by_place);
    return m;
}

static const struct member *group_first(const struct member *m, size_t total, size_t group)
{
    for (size_t i = 0; i < total; i++)
        if (m[i].group == group && m[i].count)
            return &m[i];
    return NULL;
}

/* "65239" -> "65,239" */
static void print_grouped(uint64_t v)
{
    char d[24];
    int n = snprintf(d, sizeof d, "%llu", (unsigned long long)v);
    for (int i = 0; i < n; i++) {
        if (i && (n - i) % 3 == 0)
            putchar(',');
        putchar(d[i]);
    }
}

/* Blocks (findings, summaries) are separated by one blank line. */
static bool first_block = true;

/* More traces than this, and only the interesting ones get a summary of their own. */
#define BRIEF_OVER 8

static void block(void)
{
    if (!first_block)
        putchar('\n');
    first_block = false;
}

int cmd_report(char **paths, int npaths, bool json, size_t *nfindings)
{
    int status = RACE_EXIT_OK;
    size_t findings = 0;
    /* All traces stay open (mapped, not copied) so that JSON can list every finding
     * before the summaries, each file read, and each problem reported, once. */
    struct race_trace **t = xcalloc((size_t)npaths, sizeof *t);
    for (int i = 0; i < npaths; i++) {
        progress("reading trace", i + 1, npaths);
        t[i] = trace_open(paths[i]);
        findings += t[i]->nfind;
        if (t[i]->problems)
            status = RACE_EXIT_BADINPUT;
    }
    struct race_sym **sym = xcalloc((size_t)npaths, sizeof *sym);
    for (int i = 0; i < npaths; i++) {
        if (t[i]->nfind)
            progress("symbolizing trace", i + 1, npaths);
        sym[i] = t[i]->nfind ? sym_open(t[i]) : NULL;
    }
    progress("grouping findings", 1, 1);
    struct member *m = group_findings(t, sym, npaths, findings);
    progress(NULL, 0, 0);
    size_t groups = 0;
    for (size_t i = 0; i < findings; i++)
        groups += m[i].count != 0;
    if (json) {
        printf("{\"findings\":[");
        for (size_t i = 0; i < findings; i++) {
            printf(i ? ",\n" : "\n");
            json_finding(t[m[i].trace], sym[m[i].trace], &t[m[i].trace]->find[m[i].index]);
            /* json_finding left the object open for these */
            const struct member *g = group_first(m, findings, m[i].group);
            printf(",\"group\":%zu,\"group_count\":%zu,\"group_seen\":%llu}", m[i].group,
                   g ? g->count : 1, (unsigned long long)(g ? g->seen : 1));
        }
        printf("\n],\"nfindings\":%zu,\"ngroups\":%zu,\"traces\":[", findings, groups);
        for (int i = 0; i < npaths; i++) {
            printf(i ? ",\n" : "\n");
            stats_json_trace(t[i], false);
        }
        printf("\n]}\n");
    } else {
        size_t k = 0, quiet = 0, quiet_open = 0;
        unsigned long long quiet_events = 0;
        for (int i = 0; i < npaths; i++) {
            for (; k < findings && m[k].trace == i; k++) {
                if (!m[k].count)
                    continue; /* shown with the first of its group */
                block();
                text_finding(t[i], sym[i], &t[i]->find[m[k].index]);
                if (m[k].count > 1)
                    printf("(this finding, with the same use and free stacks, was seen %zu times)\n", m[k].count);
                if (m[k].seen > m[k].count) {
                    printf(RACE_W_MORE_TIMES_PRE);
                    print_grouped(m[k].seen - 1);
                    printf(RACE_W_MORE_TIMES_POST "\n");
                }
            }
            /* Many processes (a test suite under race run): a summary only for those
             * with something to say, then one line for the rest. */
            if (npaths <= BRIEF_OVER || t[i]->nfind || t[i]->problems || t[i]->n_torn) {
                block();
                text_summary(t[i]);
            } else {
                quiet++;
                quiet_events += t[i]->n_valid;
                quiet_open += !(t[i]->hdr.flags & RACE_FLAG_CLOSED);
            }
            fflush(stdout);
        }
        if (quiet) {
            block();
            printf("race report: %zu other trace%s, without findings or damage: %llu events, %zu "
                   "processes did not close (exec, or killed); race stats lists each\n",
                   quiet, quiet == 1 ? "" : "s", quiet_events, quiet_open);
        }
        block();
        printf("%zu finding%s", findings, findings == 1 ? "" : "s");
        if (groups != findings)
            printf(" in %zu group%s", groups, groups == 1 ? "" : "s");
        printf("\n");
    }
    for (size_t i = 0; i < findings; i++)
        free(m[i].key);
    free(m);
    for (int i = 0; i < npaths; i++)
        sym_close(sym[i]);
    free(sym);
    for (int i = 0; i < npaths; i++)
        trace_close(t[i]);
    free(t);
    if (status == RACE_EXIT_OK && findings)
        status = RACE_EXIT_FINDINGS;
    if (nfindings)
        *nfindings = findings;
    return status;
}
