/* ruby_ci.c - the stale call-info check on rb_vm_ci_lookup. In a Ruby whose version
 * has the call-info table (3.3 on), every instance of rb_vm_ci_lookup, inlined ones
 * included, gets a breakpoint on its first touch of the kwarg block (the instruction
 * that does kwarg->references++: ../shared/ruby-internals.md explains why the entries
 * of inlined copies are not enough), and kwarg-shaped blocks freed through ruby_xfree
 * are kept in the quarantine with their free stack, so a lookup handed one is a
 * STALE_CI finding with the free that made it stale. In any other program a function
 * of that name is only watched, and checked where DWARF says its kwarg parameter is:
 * no Ruby layout is ever applied to it. The check runs inside SIGTRAP: no locks, no
 * allocation. */
#include <string.h>
#include <ucontext.h>

#include "record.h"
#include "watch.h"

/* Per version: where references sits in rb_callinfo_kwarg (the disp of the increment)
 * and the most keywords a kwarg block is taken to have when recognizing one. */
#define KW_REFS_OFF 4
#define KW_MAX 32
#define CI_KWARG_OFF 8 /* rb_callinfo.kwarg: 8 in 3.1, 3.3, 3.4 and 4.0 */

int race_ruby_ci_active;   /* the Ruby check is installed: kwarg-shaped frees are kept */
static uint64_t hits, stale, kept;

void race_ruby_ci_kept(void)
{
    __atomic_fetch_add(&kept, 1, __ATOMIC_RELAXED);
}

int race_ruby_ci_wanted(void)
{
    return race_ruby_has_ci_table();
}

/* Does a block about to be freed through ruby_xfree look like an rb_callinfo_kwarg?
 * keyword_len (int at 0) small and matching the size, and every keyword a Symbol: a
 * static one (low byte 0x0c) or an aligned heap pointer. */
int race_ruby_kwarg_shaped(const void *p, size_t usable)
{
    const int32_t *h = p;
    int32_t n = h[0];
    if (n < 1 || n > KW_MAX || usable < 8u + 8u * (uint32_t)n || usable > 8u + 8u * (uint32_t)n + 24u)
        return 0;
    const uint64_t *kw = (const uint64_t *)((const uint8_t *)p + 8);
    for (int32_t i = 0; i < n; i++)
        if (!((kw[i] & 0xff) == 0x0c || (kw[i] && (kw[i] & 7) == 0)))
            return 0;
    return 1;
}

/* The stack of the probed code, from the registers the probe saw. */
static uint32_t stack_of(const struct race_regs *r)
{
    ucontext_t uc;
    memset(&uc, 0, sizeof(uc));
    greg_t *g = uc.uc_mcontext.gregs;
    g[REG_RIP] = (greg_t)r->rip;
    g[REG_RSP] = (greg_t)r->rsp;
    g[REG_RBP] = (greg_t)r->rbp;
    g[REG_RBX] = (greg_t)r->rbx;
    g[REG_R12] = (greg_t)r->r12;
    g[REG_R13] = (greg_t)r->r13;
    g[REG_R14] = (greg_t)r->r14;
    g[REG_R15] = (greg_t)r->r15;
    g[REG_RAX] = (greg_t)r->rax;
    g[REG_RCX] = (greg_t)r->rcx;
    g[REG_RDX] = (greg_t)r->rdx;
    g[REG_RSI] = (greg_t)r->rsi;
    g[REG_RDI] = (greg_t)r->rdi;
    return race_stack_capture_uc(&uc);
}

static void stale_found(const struct race_regs *r, struct race_watch_probe *p, uint64_t addr,
                        struct race_finding *f)
{
    struct race_tls *t = &race_tls;
    __atomic_fetch_add(&stale, 1, __ATOMIC_RELAXED);
    f->type = RACE_FIND_STALE_CI;
    f->access = RACE_ACCESS_READ;
    f->access_size = 4;
    f->addr = addr;
    f->pc = r->rip;
    f->tid = race_tid(t);
    f->ractor = race_ractor_id();
    f->ts = race_now();
    f->stack = stack_of(r);
    /* the chain starts with the function handed the block: the report names it */
    race_strlcpy(f->detail, race_watch_chain(p), sizeof(f->detail));
    race_finding_report(f, NULL);
}

/* A references++ site (or, outside Ruby, an entry where DWARF says kwarg is): the
 * register holds the kwarg block about to be touched. */
static void check(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t kw = race_watch_reg(r, race_watch_regno(p));
    __atomic_fetch_add(&hits, 1, __ATOMIC_RELAXED);
    if (!kw)
        return;
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    if (race_quarantine_find((uintptr_t)kw, &f))
        stale_found(r, p, kw + (uint64_t)race_watch_disp(p), &f);
}

/* The call-info table's hash and compare functions (called through its st_hash_type,
 * so never inlined) read ci->kwarg->keywords of every entry they touch, under the GC
 * sweep too: the crash signature of the seed (vm_ci_hash <- st_update <- lookup). */
static void check_ci_args(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t ci[2] = {r->rdi, race_watch_regno(p) ? r->rsi : 0};
    __atomic_fetch_add(&hits, 1, __ATOMIC_RELAXED);
    for (int i = 0; i < 2; i++) {
        if (!ci[i] || (ci[i] & 7))
            continue;
        uint64_t kw = *(const uint64_t *)(uintptr_t)(ci[i] + CI_KWARG_OFF);
        struct race_finding f;
        memset(&f, 0, sizeof(f));
        if (kw && !(kw & 7) && race_quarantine_find((uintptr_t)kw, &f))
            stale_found(r, p, kw, &f);
    }
}

static void found_table_fn(const char *name, const struct obj_instance *oi, void *arg)
{
    const struct race_instance *in = oi->in;
    int *count = arg;
    if (in->inlined)
        return;
    uint64_t lo = oi->bias + in->range[0].lo, size = in->range[0].hi - in->range[0].lo;
    char d[120];
    size_t k = race_strlcpy(d, name, sizeof(d));
    race_strlcpy(d + k, " (rb_vm_ci_lookup's table): each call-info's kwarg", sizeof(d) - k);
    struct race_watch_probe *p = race_watch_install(name, RACE_PROBER_CHECK, oi->index, oi->bias + in->entry, lo,
                                                    size, d);
    if (p) {
        /* regno 1: compare, two call-infos (rdi, rsi); 0: hash, one */
        race_watch_set_check(p, strcmp(name, "vm_ci_hash_cmp") == 0, 0, check_ci_args);
        (*count)++;
    }
}

struct ci_ctx {
    int ruby;  /* the Ruby layout applies */
    int count;
};

static void found(const char *name, const struct obj_instance *oi, void *arg)
{
    struct ci_ctx *c = arg;
    const struct race_instance *in = oi->in;
    uint64_t lo = oi->bias + in->range[0].lo, size = in->range[0].hi - in->range[0].lo;
    /* The instance itself is watched like any function: ENTER/EXIT or HIT events. */
    struct race_watch_probe *entry =
        race_watch_install(name, in->inlined ? RACE_PROBER_INLINE : RACE_PROBER_ENTRY, oi->index,
                           oi->bias + in->entry, in->inlined ? 0 : lo, in->inlined ? 0 : size, in->chain);
    c->count++;
    if (c->ruby) {
        /* The first touch of kwarg in any of the instance's ranges. */
        for (uint32_t i = 0; i < in->nranges; i++) {
            uint64_t a = oi->bias + in->range[i].lo, e = oi->bias + in->range[i].hi, at;
            int reg;
            if (!race_find_mem_inc((const uint8_t *)(uintptr_t)a, a, e, KW_REFS_OFF, &reg, &at))
                continue;
            char d[160];
            size_t k = race_strlcpy(d, in->chain, sizeof(d));
            k += race_strlcpy(d + k, ": kwarg->references++ via ", sizeof(d) - k);
            race_strlcpy(d + k, race_dwarf_reg_name(reg) ? race_dwarf_reg_name(reg) : "?", sizeof(d) - k);
            struct race_watch_probe *p = race_watch_install(name, RACE_PROBER_CHECK, oi->index, at, 0, 0, d);
            if (p)
                race_watch_set_check(p, race_dwarf_to_greg(reg), KW_REFS_OFF, check);
            break;
        }
        return;
    }
    /* Not a Ruby we know: check at the entry, where DWARF says kwarg (the fourth
     * parameter) is in a register. */
    int reg = in->nparams >= 4 && in->param[3].kind == RACE_LOC_REG ? in->param[3].reg
            : !in->inlined && in->nparams >= 4 ? in->param[3].abi_reg : -1;
    if (entry && reg >= 0)
        race_watch_set_check(entry, race_dwarf_to_greg(reg), 0, check);
}

int race_ruby_ci_watch(char *why, size_t why_cap)
{
    struct ci_ctx c = {.ruby = race_ruby_ci_wanted(), .count = 0};
    int n = race_watch_instances("rb_vm_ci_lookup", found, &c, why, why_cap);
    if (c.ruby && n > 0) {
        char w[256];
        int t = 0;
        race_watch_instances("vm_ci_hash", found_table_fn, &t, w, sizeof(w));
        race_watch_instances("vm_ci_hash_cmp", found_table_fn, &t, w, sizeof(w));
        race_quarantine_ensure();
        race_ruby_ci_active = 1;
    }
    return n;
}

/* RACE_VERBOSE=1, at exit: what the check saw. */
void race_ruby_ci_summary(void)
{
    if (!race_ruby_ci_active)
        return;
    char a[24], b[24], c[24];
    race_fmt_u64(a, __atomic_load_n(&hits, __ATOMIC_RELAXED));
    race_fmt_u64(b, __atomic_load_n(&kept, __ATOMIC_RELAXED));
    race_fmt_u64(c, __atomic_load_n(&stale, __ATOMIC_RELAXED));
    char line[160];
    size_t k = race_strlcpy(line, a, sizeof(line));
    k += race_strlcpy(line + k, " kwarg checks, ", sizeof(line) - k);
    k += race_strlcpy(line + k, b, sizeof(line) - k);
    k += race_strlcpy(line + k, " kwarg blocks kept after their free, ", sizeof(line) - k);
    k += race_strlcpy(line + k, c, sizeof(line) - k);
    race_strlcpy(line + k, " stale", sizeof(line) - k);
    race_notice("rb_vm_ci_lookup: ", line, NULL, NULL);
}
