/* report.c - `race report`: every finding in each trace, shaped like AddressSanitizer's
 * report (what was touched, by whom, where; who freed the block, where, when; who
 * allocated it), then a short summary of what each trace covered. Text or JSON.
 * Must never: exit 0 when there are findings (1) or an input could not be read (2, which
 * wins: the findings may then be incomplete), or hide a finding behind the summary. */
#include <stdlib.h>
#include <string.h>

#include "race.h"

#define INDENT "    "

static double ms_of(const struct race_trace *t, uint64_t ts)
{
    return (double)clock_ns(&t->clock, ts) / 1e6;
}

static const char *access_name(unsigned a)
{
    return a == RACE_ACCESS_READ ? "READ" : a == RACE_ACCESS_WRITE ? "WRITE" : "ACCESS";
}

static bool is_free_finding(unsigned type)
{
    return type == RACE_FIND_DOUBLE_FREE || type == RACE_FIND_INVALID_FREE;
}

static void who(uint32_t tid, uint32_t ractor)
{
    printf("thread %u", tid);
    if (ractor)
        printf(" (Ractor %u)", ractor);
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
    printf(" in ");
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
    printf("==race== ERROR: %s on address 0x%llx", name, (unsigned long long)f->addr);
    if (f->pc)
        printf(" at pc 0x%llx", (unsigned long long)f->pc);
    printf("\n");
    if (is_free_finding(f->type)) {
        printf("%s 0x%llx by ", f->type == RACE_FIND_DOUBLE_FREE ? "attempting double-free on"
                                : "attempting free of an address that is not a block's start:",
               (unsigned long long)f->addr);
    } else if (f->type == RACE_FIND_OVERFLOW_AT_FREE) {
        printf("a byte after the block was overwritten (seen when it was freed) at 0x%llx; free by ",
               (unsigned long long)f->addr);
    } else {
        printf("%s of size ", access_name(f->access));
        if (f->access_size)
            printf("%u", f->access_size);
        else
            printf("?");
        printf(" at 0x%llx by ", (unsigned long long)f->addr);
    }
    who(f->tid, f->ractor);
    printf(" at %.3f ms:\n", ms_of(t, f->ts));
    stack_text(t, sym, f->stack, f->ts, f->pc, INDENT);
    if (f->block_addr) {
        uint64_t a = f->addr, b = f->block_addr, end = f->block_addr + f->block_size;
        printf("\n0x%llx is located ", (unsigned long long)a);
        if (a < b)
            printf("%llu bytes before", (unsigned long long)(b - a));
        else if (a >= end)
            printf("%llu bytes after", (unsigned long long)(a - end));
        else
            printf("%llu bytes inside of", (unsigned long long)(a - b));
        printf(" %llu-byte region [0x%llx,0x%llx)\n", (unsigned long long)f->block_size,
               (unsigned long long)b, (unsigned long long)end);
    }
    if (f->free_ts) {
        printf("\nfreed by ");
        who(f->free_tid, f->free_ractor);
        printf(" via %s at %.3f ms", race_entry_name(f->free_entry), ms_of(t, f->free_ts));
        if (f->ts >= f->free_ts)
            printf(" (%.3f ms before)", ms_of(t, f->ts) - ms_of(t, f->free_ts));
        printf(":\n");
        stack_text(t, sym, f->free_stack, f->free_ts, 0, INDENT);
    }
    if (f->alloc_ts) {
        printf("\npreviously allocated by ");
        who(f->alloc_tid, f->alloc_ractor);
        printf(" at %.3f ms:\n", ms_of(t, f->alloc_ts));
        stack_text(t, sym, f->alloc_stack, f->alloc_ts, 0, INDENT);
    }
    if (f->detail[0]) {
        printf("\ndetail: ");
        text_str(stdout, f->detail, strlen(f->detail));
        putchar('\n');
    }
    printf("\nSUMMARY: race: %s", name);
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
    const char *bad = stack_json((struct race_trace *)t, sym, stack, ts, 0);
    if (bad) {
        printf(",\"stack_error\":");
        json_cstr(stdout, bad);
    }
    putchar('}');
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
    putchar('}');
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
}

/* Blocks (findings, summaries) are separated by one blank line. */
static bool first_block = true;

static void block(void)
{
    if (!first_block)
        putchar('\n');
    first_block = false;
}

int cmd_report(char **paths, int npaths, bool json)
{
    int status = RACE_EXIT_OK;
    size_t findings = 0;
    /* All traces stay open (mapped, not copied) so that JSON can list every finding
     * before the summaries, each file read, and each problem reported, once. */
    struct race_trace **t = xcalloc((size_t)npaths, sizeof *t);
    for (int i = 0; i < npaths; i++) {
        t[i] = trace_open(paths[i]);
        findings += t[i]->nfind;
        if (t[i]->problems)
            status = RACE_EXIT_BADINPUT;
    }
    if (json) {
        size_t n = 0;
        printf("{\"findings\":[");
        for (int i = 0; i < npaths; i++) {
            struct race_sym *sym = t[i]->nfind ? sym_open(t[i]) : NULL;
            for (size_t k = 0; k < t[i]->nfind; k++) {
                printf(n++ ? ",\n" : "\n");
                json_finding(t[i], sym, &t[i]->find[k]);
            }
            sym_close(sym);
        }
        printf("\n],\"nfindings\":%zu,\"traces\":[", findings);
        for (int i = 0; i < npaths; i++) {
            printf(i ? ",\n" : "\n");
            stats_json_trace(t[i], false);
        }
        printf("\n]}\n");
    } else {
        for (int i = 0; i < npaths; i++) {
            struct race_sym *sym = t[i]->nfind ? sym_open(t[i]) : NULL;
            for (size_t k = 0; k < t[i]->nfind; k++) {
                block();
                text_finding(t[i], sym, &t[i]->find[k]);
            }
            sym_close(sym);
            block();
            text_summary(t[i]);
            fflush(stdout);
        }
        block();
        printf("%zu finding%s\n", findings, findings == 1 ? "" : "s");
    }
    for (int i = 0; i < npaths; i++)
        trace_close(t[i]);
    free(t);
    if (status == RACE_EXIT_OK && findings)
        status = RACE_EXIT_FINDINGS;
    return status;
}
