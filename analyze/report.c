/* report.c - `race report`: every finding in each trace, shaped like AddressSanitizer's
 * report (what was touched, by whom, where; who freed the block, where, when; who
 * allocated it), then a short summary of what each trace covered (watched functions
 * included). Text or JSON.
 * Must never: exit 0 when there are findings (1) or an input could not be read (2, which
 * wins: the findings may then be incomplete), or hide a finding behind the summary. */
#include <signal.h>
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
uint64_t free_pc_exact(const struct race_finding *f)
{
    return f->free_entry == RACE_ENTRY_RB_VM_CI_FREE ? RACE_PC_EXACT : 0;
}

/* What the detector saw, by subtype (version 2 traces have none: the generic words). */
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

/* ---- Ruby-level frames ---------------------------------------------------------- */

/* Did the GC's sweep make this free? Then the Ruby frames of the freeing thread are the
 * code whose allocation triggered the collection, not code that owned the block. */
bool rb_free_by_gc(struct race_trace *t, struct race_sym *sym, uint32_t stack, uint64_t ts)
{
    struct race_frame fr[RACE_MAX_FRAMES];
    uint32_t n = stack_frames(t, sym, stack, ts, 0, fr);
    static const char *const gc[] = {"gc_sweep", "rb_gc", "gc_start", "garbage_collect",
                                     "gc_page_sweep", "rb_objspace_call_finalizer"};
    for (uint32_t i = 0; i < n; i++)
        for (size_t k = 0; fr[i].func && k < sizeof gc / sizeof gc[0]; k++)
            if (!strncmp(fr[i].func, gc[k], strlen(gc[k])))
                return true;
    return false;
}

/* The label of frame f: a Ruby frame's, or a C method's function by its symbol. */
const char *rb_label(struct race_sym *sym, const struct race_rbframe *f, uint64_t ts, char *buf, size_t cap)
{
    if (!f->cfunc)
        return f->label;
    struct race_frame fr;
    sym_frame(sym, f->cfunc, ts, true, &fr);
    if (fr.func)
        return fr.func;
    if (fr.module)
        snprintf(buf, cap, "%s+0x%llx", fr.module, (unsigned long long)fr.modoff);
    else
        snprintf(buf, cap, "0x%llx", (unsigned long long)f->cfunc);
    return buf;
}

/* Why the walk ended where it did, or NULL when it reached the outermost frame. */
const char *rb_ending(const struct race_rbtrace *rb, char *buf, size_t cap)
{
    if (rb->status == RACE_RB_TRUNCATED)
        snprintf(buf, cap, "truncated at %u frames (RACE_RUBY_DEPTH)", rb->n);
    else if (rb->status == RACE_RB_UNREADABLE)
        snprintf(buf, cap, "frame %u unreadable: the walk ended there", rb->n);
    else
        return NULL;
    return buf;
}

/* "Ruby:" and one line per frame, innermost first, as Ruby prints its own backtrace
 * (path:line:in 'label'); nothing when there is no backtrace. */
void rb_text(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts, bool by_gc)
{
    if (!id)
        return;
    struct race_rbtrace *rb = xcalloc(1, sizeof *rb);
    const char *why;
    char buf[96];
    if (trace_rb(t, id, rb, &why) != RACE_STACK_OK) {
        printf(INDENT "Ruby: (backtrace %u unreadable: %s)\n", id, why);
        free(rb);
        return;
    }
    printf(INDENT "Ruby%s:\n", by_gc ? " (the GC sweep ran in this code's allocation, not in the "
                                      "block owner's code)" : "");
    for (uint32_t i = 0; i < rb->n; i++) {
        const struct race_rbframe *f = &rb->f[i];
        printf(INDENT INDENT);
        if (f->path[0]) {
            text_str(stdout, f->path, strlen(f->path));
            printf(":%d:", f->line);
        } else {
            printf("(unknown):");
        }
        printf("in '");
        const char *l = rb_label(sym, f, ts, buf, sizeof buf);
        text_str(stdout, l, strlen(l));
        printf(f->cfunc ? "' (C)\n" : "'\n");
    }
    if (!rb->n && rb->status == RACE_RB_COMPLETE)
        printf(INDENT INDENT "(no Ruby frames)\n");
    const char *end = rb_ending(rb, buf, sizeof buf);
    if (end)
        printf(INDENT INDENT "(%s)\n", end);
    free(rb);
}

/* ,"ruby":[{"label":..,"path":..,"line":..,"cfunc":..}],"ruby_end":.. (and the GC
 * remark); nothing when there is no backtrace. */
void rb_json(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts, int by_gc)
{
    if (!id)
        return;
    struct race_rbtrace *rb = xcalloc(1, sizeof *rb);
    const char *why;
    char buf[96];
    printf(",\"ruby\":[");
    if (trace_rb(t, id, rb, &why) == RACE_STACK_OK) {
        for (uint32_t i = 0; i < rb->n; i++) {
            const struct race_rbframe *f = &rb->f[i];
            printf("%s{\"label\":", i ? "," : "");
            json_cstr(stdout, rb_label(sym, f, ts, buf, sizeof buf));
            printf(",\"path\":");
            json_cstr(stdout, f->path[0] ? f->path : NULL);
            if (f->line)
                printf(",\"line\":%d", f->line);
            else
                printf(",\"line\":null");
            if (f->cfunc) {
                printf(",\"cfunc\":");
                json_hex(stdout, f->cfunc);
            }
            putchar('}');
        }
        printf("],\"ruby_end\":");
        json_cstr(stdout, rb_ending(rb, buf, sizeof buf));
    } else {
        printf("],\"ruby_error\":");
        json_cstr(stdout, why);
    }
    if (by_gc >= 0)
        printf(",\"ruby_is_gc_trigger\":%s", by_gc ? "true" : "false");
    free(rb);
}

/* The text report's first line, less its "==PID==ERROR: race: " (SARIF's message too). */
void finding_title(FILE *out, const struct race_finding *f)
{
    fprintf(out, "%s" RACE_W_ON_ADDRESS "0x%llx", race_find_name(f->type), (unsigned long long)f->addr);
    if (f->pc)
        fprintf(out, RACE_W_AT_PC "0x%llx", (unsigned long long)f->pc);
}

static void text_finding(struct race_trace *t, struct race_sym *sym, const struct race_findrec *fr)
{
    const struct race_finding *f = &fr->f;
    const char *name = race_find_name(f->type);
    printf(RACE_W_HEAD_PRE "%d" RACE_W_HEAD_POST, t->hdr.pid);
    finding_title(stdout, f);
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
    rb_text(t, sym, f->rb_use, f->ts, false);
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
        rb_text(t, sym, f->rb_free, f->free_ts,
                f->rb_free && rb_free_by_gc(t, sym, f->free_stack, f->free_ts));
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
                     uint64_t ts, uint32_t tid, uint32_t ractor, uint32_t stack, int entry,
                     uint32_t rb)
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
    if (rb)
        rb_json((struct race_trace *)t, sym, rb, ts, rb_free_by_gc((struct race_trace *)t, sym, stack, ts));
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
    rb_json(t, sym, f->rb_use, f->ts, -1);
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
                 f->free_entry, f->rb_free);
        printf(",\"free_seq\":%llu", (unsigned long long)f->free_seq);
    } else {
        printf(",\"free\":null");
    }
    if (f->alloc_ts)
        json_who(t, sym, "alloc", f->alloc_ts, f->alloc_tid, f->alloc_ractor, f->alloc_stack, -1, 0);
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
                      uint64_t fault_pc, uint32_t max)
{
    struct race_stack st;
    const char *why;
    char buf[64];
    if (!id || trace_stack(t, id, &st, &why) != RACE_STACK_OK) {
        key_add(k, "-|", 2);
        return;
    }
    for (uint32_t i = 0; i < st.nframes && i < max; i++) {
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

static int by_key(const void *a, const void *b)
{
    const struct race_member *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->trace != y->trace ? x->trace - y->trace : (x->index > y->index) - (x->index < y->index);
}

static int by_place(const void *a, const void *b)
{
    const struct race_member *x = a, *y = b;
    return x->trace != y->trace ? x->trace - y->trace : (x->index > y->index) - (x->index < y->index);
}

/* Returns every finding with its group; the first member of each group (in report
 * order) carries the group's size, the others count 0. SARIF and HTML use it too. */
struct race_member *group_findings(struct race_trace **t, struct race_sym **sym, int n, size_t total)
{
    struct race_member *m = xcalloc(total ? total : 1, sizeof *m);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < t[i]->nfind; j++) {
            const struct race_finding *f = &t[i]->find[j].f;
            struct key key = {0};
            char head[32];
            snprintf(head, sizeof head, "%u|", f->type);
            key_add(&key, head, strlen(head));
            key_stack(&key, t[i], sym[i], f->stack, f->ts, f->pc, UINT32_MAX);
            key_stack(&key, t[i], sym[i], f->free_stack, f->free_ts, free_pc_exact(f), UINT32_MAX);
            m[k++] = (struct race_member){.trace = i, .index = j, .key = key.s, .seen = seen_of(f)};
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

static const struct race_member *group_first(const struct race_member *m, size_t total, size_t group)
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

static struct report_outputs outputs = {.window_ms = 50};

void report_set_outputs(const struct report_outputs *o)
{
    outputs = *o;
}

/* ==== Crashes: crash-after-free, and crashes no recorded free explains ==================
 * crash.c finds the frees; these functions show them. A crash explained by a free is a
 * finding of its own kind, ranked below the confirmed ones (shown after them); one that
 * nothing explains is shown too, and does not count. */

struct crashes {
    struct race_explain **x;   /* per trace */
    size_t *nx;
    struct race_member *m;     /* every crash, grouped; index = into x[trace] */
    size_t total, explained, groups, explained_groups;
};

/* Registers worth showing: the operand's, the matched ones, the poisoned ones. */
static void text_registers(const struct race_explain *x)
{
    const struct race_crash *c = &x->cr->c;
    if (!c->has_regs)
        return;
    uint32_t show = x->poison;
    if (x->base >= 0)
        show |= 1u << x->base;
    if (x->index >= 0)
        show |= 1u << x->index;
    for (size_t i = 0; i < x->nm; i++)
        if (x->m[i].reg >= 0)
            show |= 1u << x->m[i].reg;
    if (!show)
        return;
    printf("registers:");
    for (int r = 0; r < RACE_REG_COUNT; r++)
        if (show & (1u << r))
            printf(" %s=0x%llx", race_reg_name((unsigned)r), (unsigned long long)c->regs[r]);
    putchar('\n');
    if (x->poison)
        printf("a register holding 0xfdfd... was read from freed memory the quarantine poisoned\n");
}

static void text_insn(const struct race_explain *x)
{
    const struct race_crash *c = &x->cr->c;
    if (!x->decoded) {
        if (c->sig == SIGSEGV || c->sig == SIGBUS)
            printf("faulting instruction: not decoded (%s)\n", x->why_undecoded);
        return;
    }
    printf("faulting instruction: ");
    text_str(stdout, x->insn, strlen(x->insn));
    if (x->has_ea) {
        printf(" (%s of size %u at 0x%llx", x->write ? "WRITE" : "READ", x->mem_size,
               (unsigned long long)x->ea);
        if (x->ea_poison)
            printf("; its base register was read from poisoned, freed memory");
        putchar(')');
    }
    putchar('\n');
}

static void text_where(uint64_t a, uint64_t b, uint64_t size)
{
    printf("0x%llx is located %llu bytes inside of %llu-byte region [0x%llx,0x%llx)",
           (unsigned long long)a, (unsigned long long)(a - b), (unsigned long long)size,
           (unsigned long long)b, (unsigned long long)(b + size));
}

static void text_match_source(const struct race_match *m)
{
    if (m->via == RACE_VIA_REG)
        printf("register %s", race_reg_name((unsigned)m->reg));
    else if (m->reg >= 0)
        printf("%s (%s)", race_reg_name((unsigned)m->reg), crash_via_name(m->via));
    else
        printf("%s", crash_via_name(m->via));
}

/* What the trace proves about the block after its free, in words. */
static void text_reuse(const struct race_trace *t, const struct race_match *m, bool guarded)
{
    if (m->reuse == RACE_REUSE_BEFORE)
        printf("the block WAS allocated again before the crash (at %.3f ms, by thread %u): the "
               "crash may concern the new block\n", ms_of(t, m->reuse_ts), m->reuse_tid);
    else if (m->reuse == RACE_REUSE_LATER_FREE)
        printf("the block was allocated again at some point (freed again at %.3f ms, after the "
               "crash); whether before the crash is not known\n", ms_of(t, m->reuse_ts));
    else if (guarded)
        printf("the block was a guarded slot, inaccessible since its free: not reallocated\n");
    else
        printf("the block may have been reallocated since (the recorder records frees, not "
               "allocations; no event at its address says so)\n");
}

/* The free of the same address before the matched one: two frees, by two threads
 * perhaps, of one block, unless it was allocated again in between. */
static void text_prev_free(struct race_trace *t, struct race_sym *sym, const struct race_match *m)
{
    printf("\nbefore that, 0x%llx was freed by ", (unsigned long long)m->block);
    who(m->prev_tid, m->prev_ractor, m->prev_ractor != 0);
    printf(" via %s at %.3f ms (%.3f ms earlier): freed twice, unless it was allocated again in "
           "between (allocations are not recorded):\n", race_entry_name(m->prev_entry),
           ms_of(t, m->prev_ts), ms_of(t, m->free_ts) - ms_of(t, m->prev_ts));
    if (m->prev_stack)
        stack_text(t, sym, m->prev_stack, m->prev_ts, 0, INDENT);
    else
        printf(INDENT "(no stack was recorded for this free)\n");
}

static void text_free_of(struct race_trace *t, struct race_sym *sym, const struct race_match *m,
                         uint64_t crash_ts)
{
    printf("freed by ");
    who(m->free_tid, m->free_ractor, m->free_ractor != 0);
    printf(" via %s at %.3f ms (%.3f ms before the crash):\n", race_entry_name(m->free_entry),
           ms_of(t, m->free_ts), ms_of(t, crash_ts) - ms_of(t, m->free_ts));
    if (m->free_stack)
        stack_text(t, sym, m->free_stack, m->free_ts, 0, INDENT);
    else
        printf(INDENT "(no stack was recorded for this free: RACE_STACK_SAMPLE=1 records every one)\n");
}

static void crash_where(struct race_trace *t, struct race_sym *sym, const struct race_crash *c,
                        struct race_frame *fr)
{
    struct race_stack st;
    const char *why;
    sym_frame(sym, c->pc, c->ts, true, fr);
    if (!c->stack || trace_stack(t, c->stack, &st, &why) != RACE_STACK_OK)
        return;
    /* An abort is raised deep in the C library: the program's frame that called it is the
     * place (glibc's malloc checks, Ruby's rb_bug). */
    for (uint32_t i = 0; i < st.nframes; i++) {
        sym_frame(sym, st.pc[i], c->ts, i == 0, fr);
        if (c->sig != SIGABRT || !fr->module || strncmp(fr->module, "libc.so", 7) != 0)
            return;
    }
}

static void text_crash(struct race_trace *t, struct race_sym *sym, const struct race_explain *x)
{
    const struct race_crash *c = &x->cr->c;
    bool explained = x->nm > 0;
    if (explained)
        printf(RACE_W_HEAD_PRE "%d" RACE_W_HEAD_POST "crash-after-free: %s" RACE_W_ON_ADDRESS
               "0x%llx" RACE_W_AT_PC "0x%llx\n", t->hdr.pid, race_sig_name(c->sig),
               (unsigned long long)c->addr, (unsigned long long)c->pc);
    else
        printf(RACE_W_HEAD_PRE "%d== race: crash, no recorded free explains it: %s" RACE_W_ON_ADDRESS
               "0x%llx" RACE_W_AT_PC "0x%llx\n", t->hdr.pid, race_sig_name(c->sig),
               (unsigned long long)c->addr, (unsigned long long)c->pc);
    printf("%s (%s) in ", race_sig_name(c->sig), crash_code_name(c->sig, c->code));
    who(c->tid, c->ractor, false);
    printf(" at %.3f ms:\n", ms_of(t, c->ts));
    stack_text(t, sym, c->stack, c->ts, c->pc, INDENT);
    rb_text(t, sym, c->rb, c->ts, false);
    text_insn(x);
    text_registers(x);
    if (x->addr_poison)
        printf("the fault address is the quarantine's poison: a pointer read from freed memory\n");
    if (x->in_free) {
        printf("the crash is inside the %s of 0x%llx that this thread began at %.3f ms\n",
               race_entry_name(x->in_free_entry), (unsigned long long)x->in_free_addr,
               ms_of(t, x->in_free_ts));
    }
    if (!explained) {
        printf("\nno recorded free explains it (checked: %s%s%severy register)\n",
               x->has_ea ? "the operand's address, " : "",
               (c->sig == SIGSEGV || c->sig == SIGBUS) ? "the fault address, " : "",
               x->in_free ? "the block being freed, " : "");
    }
    for (size_t i = 0; i < x->nm; i++) {
        const struct race_match *m = &x->m[i];
        if (i == 1)
            printf("\nother matches, less likely:\n");
        if (i == 0) {
            putchar('\n');
            if (m->via == RACE_VIA_DOUBLE_FREE)
                printf("0x%llx was freed before: this is a double free of a %llu-byte block\n",
                       (unsigned long long)m->value, (unsigned long long)m->size);
            else {
                if (m->via == RACE_VIA_REG)
                    printf("the faulting access itself lies in no recorded freed block; a register "
                           "points into one (weaker evidence):\n");
                text_match_source(m);
                printf(": ");
                text_where(m->value, m->block, m->size);
                putchar('\n');
            }
            text_free_of(t, sym, m, c->ts);
            text_reuse(t, m, (m->free_flags & RACE_RF_GUARDED) != 0);
            if (m->prev_ts && m->via != RACE_VIA_DOUBLE_FREE)
                text_prev_free(t, sym, m);
            if (x->in_free && m->via == RACE_VIA_DOUBLE_FREE) {
                printf("\nfreed again by ");
                who(c->tid, c->ractor, c->ractor != 0);
                printf(" via %s at %.3f ms:\n", race_entry_name(x->in_free_entry), ms_of(t, x->in_free_ts));
                stack_text(t, sym, x->in_free_stack, x->in_free_ts, 0, INDENT);
            }
            continue;
        }
        printf(INDENT);
        text_match_source(m);
        printf(": ");
        text_where(m->value, m->block, m->size);
        printf(", freed by ");
        who(m->free_tid, m->free_ractor, false);
        printf(" via %s %.3f ms before%s\n", race_entry_name(m->free_entry),
               ms_of(t, c->ts) - ms_of(t, m->free_ts),
               m->reuse == RACE_REUSE_BEFORE ? " (reallocated since)" : "");
    }
    for (size_t i = 0; i < t->ncrash; i++) {
        const struct race_crash *l = &t->crash[i].c;
        if (l->first != x->cr->index + 1)
            continue;
        printf("then %s (%s) in ", race_sig_name(l->sig), crash_code_name(l->sig, l->code));
        who(l->tid, l->ractor, false);
        printf(" at %.3f ms, while the program handled it\n", ms_of(t, l->ts));
    }
    struct race_frame fr;
    crash_where(t, sym, c, &fr);
    printf("\nSUMMARY: race: %s", explained ? "crash-after-free" : "crash, no recorded free explains it");
    if (fr.func) {
        printf(" in ");
        text_str(stdout, fr.func, strlen(fr.func));
    } else if (fr.module) {
        printf(" in %s+0x%llx", fr.module, (unsigned long long)fr.modoff);
    }
    putchar('\n');
}

static void json_match(struct race_trace *t, struct race_sym *sym, const struct race_match *m)
{
    static const char *const via[] = {"double-free", "operand", "fault-address", "base-register",
                                      "index-register", "register"};
    static const char *const reuse[] = {"unknown", "reallocated-before-crash", "reallocated-some-time"};
    printf("{\"via\":\"%s\",\"register\":", via[m->via]);
    if (m->reg >= 0)
        printf("\"%s\"", race_reg_name((unsigned)m->reg));
    else
        printf("null");
    printf(",\"value\":");
    json_hex(stdout, m->value);
    printf(",\"block\":{\"addr\":");
    json_hex(stdout, m->block);
    printf(",\"size\":%llu},\"offset\":%llu,\"guarded\":%s,\"reuse\":\"%s\"", (unsigned long long)m->size,
           (unsigned long long)(m->value - m->block), (m->free_flags & RACE_RF_GUARDED) ? "true" : "false",
           reuse[m->reuse]);
    json_who(t, sym, "free", m->free_ts, m->free_tid, m->free_ractor, m->free_stack, m->free_entry, 0);
    if (m->prev_ts)
        json_who(t, sym, "previous_free", m->prev_ts, m->prev_tid, m->prev_ractor, m->prev_stack,
                 m->prev_entry, 0);
    else
        printf(",\"previous_free\":null");
    putchar('}');
}

static void json_crash(struct race_trace *t, struct race_sym *sym, const struct race_explain *x)
{
    const struct race_crash *c = &x->cr->c;
    printf("{\"trace\":");
    json_cstr(stdout, t->path);
    printf(",\"offset\":%llu,\"type\":\"%s\",\"signal\":\"%s\",\"code\":%d,\"addr\":",
           (unsigned long long)x->cr->off, x->nm ? "crash-after-free" : "crash",
           race_sig_name(c->sig), c->code);
    json_hex(stdout, c->addr);
    printf(",\"pc\":");
    json_hex(stdout, c->pc);
    printf(",\"time_ms\":%.6f,\"tid\":%u,\"ractor\":%u,\"stack_id\":%u,\"stack\":", ms_of(t, c->ts),
           c->tid, c->ractor, c->stack);
    const char *bad = stack_json(t, sym, c->stack, c->ts, c->pc);
    if (bad) {
        printf(",\"stack_error\":");
        json_cstr(stdout, bad);
    }
    rb_json(t, sym, c->rb, c->ts, -1);
    printf(",\"instruction\":");
    json_cstr(stdout, x->decoded ? x->insn : NULL);
    printf(",\"operand_addr\":");
    if (x->has_ea)
        json_hex(stdout, x->ea);
    else
        printf("null");
    printf(",\"registers\":");
    if (c->has_regs) {
        putchar('{');
        for (int r = 0; r < RACE_REG_COUNT; r++) {
            printf("%s\"%s\":", r ? "," : "", race_reg_name((unsigned)r));
            json_hex(stdout, c->regs[r]);
        }
        putchar('}');
    } else {
        printf("null");
    }
    printf(",\"poisoned_registers\":[");
    for (int r = 0, k = 0; r < RACE_REG_COUNT; r++)
        if (x->poison & (1u << r))
            printf("%s\"%s\"", k++ ? "," : "", race_reg_name((unsigned)r));
    printf("],\"in_free\":");
    if (x->in_free) {
        printf("{\"addr\":");
        json_hex(stdout, x->in_free_addr);
        printf(",\"time_ms\":%.6f}", ms_of(t, x->in_free_ts));
    } else {
        printf("null");
    }
    printf(",\"matches\":[");
    for (size_t i = 0; i < x->nm; i++) {
        printf(i ? "," : "");
        json_match(t, sym, &x->m[i]);
    }
    printf("],\"then\":[");
    for (size_t i = 0, k = 0; i < t->ncrash; i++) {
        const struct race_crash *l = &t->crash[i].c;
        if (l->first != x->cr->index + 1)
            continue;
        printf("%s{\"signal\":\"%s\",\"code\":%d,\"tid\":%u,\"time_ms\":%.6f}", k++ ? "," : "",
               race_sig_name(l->sig), l->code, l->tid, ms_of(t, l->ts));
    }
    printf("]");
    /* left open: the caller adds the group fields and closes it */
}

/* Crashes group across processes by the crashing function and the top frames of the
 * best match's free stack (explained), or the crashing function and signal (not). */
#define CRASH_KEY_FRAMES 3

static void crashes_collect(struct race_trace **t, struct race_sym **sym, int n, struct crashes *cs)
{
    *cs = (struct crashes){.x = xcalloc((size_t)n, sizeof *cs->x), .nx = xcalloc((size_t)n, sizeof *cs->nx)};
    for (int i = 0; i < n; i++) {
        if (t[i]->ncrash)
            progress("explaining crashes", i + 1, n);
        cs->nx[i] = sym[i] ? crash_explain_all(t[i], sym[i], &cs->x[i]) : 0;
        cs->total += cs->nx[i];
    }
    cs->m = xcalloc(cs->total ? cs->total : 1, sizeof *cs->m);
    size_t k = 0;
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < cs->nx[i]; j++) {
            const struct race_explain *x = &cs->x[i][j];
            const struct race_crash *c = &x->cr->c;
            struct key key = {0};
            char head[48];
            snprintf(head, sizeof head, "%c|%u|", x->nm ? 'A' : 'U', x->nm ? 0u : c->sig);
            key_add(&key, head, strlen(head));
            struct race_frame fr;
            crash_where(t[i], sym[i], c, &fr);
            if (fr.func)
                key_add(&key, fr.func, strlen(fr.func));
            key_add(&key, "|", 1);
            if (x->nm)
                key_stack(&key, t[i], sym[i], x->m[0].free_stack, x->m[0].free_ts, 0, CRASH_KEY_FRAMES);
            cs->explained += x->nm > 0;
            cs->m[k++] = (struct race_member){.trace = i, .index = j, .key = key.s};
        }
    qsort(cs->m, cs->total, sizeof *cs->m, by_key);
    for (size_t a = 0; a < cs->total;) {
        size_t b = a;
        while (b < cs->total && strcmp(cs->m[b].key, cs->m[a].key) == 0)
            cs->m[b++].group = cs->groups;
        cs->m[a].count = b - a;
        cs->explained_groups += cs->m[a].key[0] == 'A';
        cs->groups++;
        a = b;
    }
    qsort(cs->m, cs->total, sizeof *cs->m, by_place);
}

static void crashes_free(struct crashes *cs, int n)
{
    for (size_t i = 0; i < cs->total; i++)
        free(cs->m[i].key);
    free(cs->m);
    for (int i = 0; i < n; i++)
        free(cs->x[i]);
    free(cs->x);
    free(cs->nx);
}

/* Explained groups first (they are findings), then the rest. */
static void crashes_text(struct race_trace **t, struct race_sym **sym, const struct crashes *cs)
{
    for (int pass = 0; pass < 2; pass++)
        for (size_t k = 0; k < cs->total; k++) {
            const struct race_member *m = &cs->m[k];
            if (!m->count || (m->key[0] == 'A') != (pass == 0))
                continue;
            block();
            text_crash(t[m->trace], sym[m->trace], &cs->x[m->trace][m->index]);
            if (m->count > 1)
                printf("(this crash, in the same function%s, was seen %zu times)\n",
                       m->key[0] == 'A' ? " with the same free stack" : "", m->count);
        }
}

static void crashes_text_count(const struct crashes *cs)
{
    if (!cs->total)
        return;
    printf("%zu crash-after-free", cs->explained);
    if (cs->explained_groups != cs->explained)
        printf(" in %zu group%s", cs->explained_groups, cs->explained_groups == 1 ? "" : "s");
    if (cs->total > cs->explained)
        printf("; %zu crash%s no recorded free explains (not counted as findings)",
               cs->total - cs->explained, cs->total - cs->explained == 1 ? "" : "es");
    printf("\n");
}

static void crashes_json(struct race_trace **t, struct race_sym **sym, const struct crashes *cs)
{
    printf("\"crashes\":[");
    for (size_t k = 0; k < cs->total; k++) {
        const struct race_member *m = &cs->m[k];
        printf(k ? ",\n" : "\n");
        json_crash(t[m->trace], sym[m->trace], &cs->x[m->trace][m->index]);
        const struct race_member *g = group_first(cs->m, cs->total, m->group);
        printf(",\"group\":%zu,\"group_count\":%zu}", m->group, g ? g->count : (size_t)1);
    }
    printf("\n],\"ncrashes\":%zu,\"ncrash_after_free\":%zu,", cs->total, cs->explained);
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
        if (t[i]->nfind || t[i]->ncrash)
            progress("symbolizing trace", i + 1, npaths);
        sym[i] = t[i]->nfind || t[i]->ncrash ? sym_open(t[i]) : NULL;
    }
    struct crashes cs;
    crashes_collect(t, sym, npaths, &cs);
    progress("grouping findings", 1, 1);
    struct race_member *m = group_findings(t, sym, npaths, findings);
    progress(NULL, 0, 0);
    size_t groups = 0;
    for (size_t i = 0; i < findings; i++)
        groups += m[i].count != 0;
    /* A file that cannot be written is reported by its writer: exit 2, as for output */
    if (outputs.sarif && sarif_write(&outputs, t, sym, npaths, m, findings) != 0)
        status = RACE_EXIT_BADINPUT;
    if (outputs.html && html_write(&outputs, t, sym, npaths, m, findings) != 0)
        status = RACE_EXIT_BADINPUT;
    if (outputs.sarif && strcmp(outputs.sarif, "-") == 0) {
        /* SARIF took stdout */
    } else if (json) {
        printf("{\"findings\":[");
        for (size_t i = 0; i < findings; i++) {
            printf(i ? ",\n" : "\n");
            json_finding(t[m[i].trace], sym[m[i].trace], &t[m[i].trace]->find[m[i].index]);
            /* json_finding left the object open for these */
            const struct race_member *g = group_first(m, findings, m[i].group);
            printf(",\"group\":%zu,\"group_count\":%zu,\"group_seen\":%llu}", m[i].group,
                   g ? g->count : 1, (unsigned long long)(g ? g->seen : 1));
        }
        printf("\n],");
        crashes_json(t, sym, &cs);
        printf("\"nfindings\":%zu,\"ngroups\":%zu,\"traces\":[", findings, groups);
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
            if (report_last_ms > 0) { /* --last MS: last.c */
                block();
                last_text(t[i], sym[i]);
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
        crashes_text(t, sym, &cs);
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
        crashes_text_count(&cs);
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
    /* A crash a recorded free explains counts as a finding; one nothing explains does not. */
    findings += cs.explained;
    crashes_free(&cs, npaths);
    if (status == RACE_EXIT_OK && findings)
        status = RACE_EXIT_FINDINGS;
    if (nfindings)
        *nfindings = findings;
    return status;
}
