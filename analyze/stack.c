/* stack.c - prints one stack from the depot, symbolized: as indented text frames
 * ("#0 0x... in func file:line", else module+offset) or as a JSON array of frames.
 * Shared by `race dump --stacks` and `race report`.
 * Must never: print frames the reader did not validate, or take the innermost frame of
 * a fault for a return address (it is the faulting instruction itself). */
#include <string.h>

#include "race.h"

void stack_frame_text(FILE *out, const struct race_frame *f, unsigned i, const char *indent)
{
    fprintf(out, "%s#%u 0x%016llx in ", indent, i, (unsigned long long)f->pc);
    if (f->func)
        text_str(out, f->func, strlen(f->func));
    else if (f->file || !f->module)
        fputs("??", out);
    if (f->file) {
        fputc(' ', out);
        text_str(out, f->file, strlen(f->file));
        fprintf(out, ":%d", f->line);
    } else if (f->module) {
        fputs(f->func ? " (" : "", out);
        text_str(out, f->module, strlen(f->module));
        fprintf(out, "+0x%llx%s", (unsigned long long)f->modoff, f->func ? ")" : "");
    }
}

static void json_frame(const struct race_frame *f)
{
    printf("{\"pc\":");
    json_hex(stdout, f->pc);
    printf(",\"function\":");
    json_cstr(stdout, f->func);
    printf(",\"file\":");
    json_cstr(stdout, f->file);
    if (f->line)
        printf(",\"line\":%d", f->line);
    else
        printf(",\"line\":null");
    printf(",\"module\":");
    json_cstr(stdout, f->module);
    if (f->module) {
        printf(",\"offset\":");
        json_hex(stdout, f->modoff);
    }
    putchar('}');
}

/* fault_pc: the faulting instruction when this is the stack of a fault (the unwinder
 * then starts at that very pc), RACE_PC_EXACT when the first frame is a probed
 * instruction whatever it is, 0 otherwise (every frame a return address). */
static bool exact(const struct race_stack *st, uint32_t i, uint64_t fault_pc)
{
    return i == 0 && fault_pc && (fault_pc == RACE_PC_EXACT || st->pc[0] == fault_pc);
}

void stack_text(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                uint64_t fault_pc, const char *indent)
{
    struct race_stack st;
    const char *why;
    if (!id) {
        printf("%s(no stack recorded)\n", indent);
        return;
    }
    if (trace_stack(t, id, &st, &why) != RACE_STACK_OK) {
        printf("%s(stack %u unreadable: %s)\n", indent, id, why);
        return;
    }
    for (uint32_t i = 0; i < st.nframes; i++) {
        struct race_frame f;
        sym_frame(sym, st.pc[i], ts, exact(&st, i, fault_pc), &f);
        stack_frame_text(stdout, &f, i, indent);
        putchar('\n');
    }
}

const char *stack_json(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                       uint64_t fault_pc)
{
    struct race_stack st;
    const char *why = NULL;
    putchar('[');
    if (id && trace_stack(t, id, &st, &why) == RACE_STACK_OK) {
        why = NULL;
        for (uint32_t i = 0; i < st.nframes; i++) {
            struct race_frame f;
            sym_frame(sym, st.pc[i], ts, exact(&st, i, fault_pc), &f);
            printf(i ? "," : "");
            json_frame(&f);
        }
    }
    putchar(']');
    return why;
}

uint32_t stack_frames(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                      uint64_t fault_pc, struct race_frame *out)
{
    struct race_stack st;
    const char *why;
    if (!id || trace_stack(t, id, &st, &why) != RACE_STACK_OK)
        return 0;
    for (uint32_t i = 0; i < st.nframes; i++)
        sym_frame(sym, st.pc[i], ts, exact(&st, i, fault_pc), &out[i]);
    return st.nframes;
}
