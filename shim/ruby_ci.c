/* ruby_ci.c - the stale call-info check on rb_vm_ci_lookup. In a Ruby whose version
 * has the call-info table (3.3 on), every instance of rb_vm_ci_lookup, inlined ones
 * included, gets a breakpoint on its first touch of the kwarg block (the instruction
 * that does kwarg->references++: docs/watch.md explains why the entries of
 * inlined copies are not enough), and kwarg-shaped blocks freed through ruby_xfree
 * are kept in the quarantine with their free stack, so a lookup handed one is a
 * STALE_CI finding with the free that made it stale. In any other program a function
 * of that name is only watched, and checked where DWARF says its kwarg parameter is:
 * no Ruby layout is ever applied to it. Every Ruby number comes from the layout row
 * (ruby.h). Registers itself with watch (race_ruby_ci_register). The check runs inside
 * SIGTRAP: no locks, no allocation. */
#include <string.h>
#include <ucontext.h>

#include "record.h"
#include "ruby.h"
#include "watch.h"

/* Not a Ruby number: the most keywords a block freed through ruby_xfree may have to be
 * taken for a kwarg block and kept (call sites with more are not worth the memory). */
#define KWARG_SHAPE_MAX 32

int race_ruby_ci_active;   /* the Ruby check is installed: kwarg-shaped frees are kept */
static uint64_t hits, stale, kept, ci_frees;
static int shape_reported, slot_reported;
static const struct race_ruby_layout *L; /* the Ruby's layout, once the Ruby check is installed */

/* This thread's current GC sweep (on_ci_free): the stack shared by the call-infos it
 * frees, and what identifies the sweep. Initial-exec: one %fs load inside SIGTRAP. */
struct sweep {
    uint32_t stack, uses, epoch;
    uint64_t sp, ret, ts;
};
static __thread struct sweep sweep_tls __attribute__((tls_model("initial-exec")));

void race_ruby_ci_kept(void)
{
    __atomic_fetch_add(&kept, 1, __ATOMIC_RELAXED);
}

/* A keyword of a kwarg block is a Symbol: a static one, or a dynamic one (an aligned
 * heap object). */
static int symbol_like(uint64_t v)
{
    return race_ruby_static_sym(L, v) || (v && (v & 7) == 0);
}

/* Does a block about to be freed through ruby_xfree look like an rb_callinfo_kwarg?
 * keyword_len (int at 0) small and matching the size (malloc rounds up by at most 24),
 * and every keyword a Symbol. Called only once the check is installed (L is set). */
int race_ruby_kwarg_shaped(const void *p, size_t usable)
{
    const int32_t *h = p;
    int32_t n = h[0];
    size_t want = L->kwarg_keywords + 8u * (uint32_t)n;
    if (n < 1 || n > KWARG_SHAPE_MAX || usable < want || usable > want + 24u)
        return 0;
    const uint64_t *kw = (const uint64_t *)((const uint8_t *)p + L->kwarg_keywords);
    for (int32_t i = 0; i < n; i++)
        if (!symbol_like(kw[i]))
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

/* Fills in the reader's side of a stale-call-info finding (F already holds the free, if
 * known) and reports it: the access is SIZE bytes at ADDR, at the probe's registers. */
static void report_stale(const struct race_regs *r, struct race_finding *f, unsigned subtype, uint64_t addr,
                         uint32_t size, const char *detail)
{
    struct race_tls *t = &race_tls;
    __atomic_fetch_add(&stale, 1, __ATOMIC_RELAXED);
    f->type = RACE_FIND_STALE_CI;
    f->subtype = (uint16_t)subtype;
    f->access = RACE_ACCESS_READ;
    f->access_size = size;
    f->addr = addr;
    f->pc = r->rip;
    if (race_finding_again(f))
        return; /* seen before: counted, and a storm does not pay an unwind per hit */
    f->tid = race_tid(t);
    f->ractor = race_ractor_id();
    f->ts = race_now();
    f->stack = stack_of(r);
    race_strlcpy(f->detail, detail, sizeof(f->detail));
    race_finding_report(f, NULL);
}

/* A finding's detail is short (64 bytes): "rb_vm_ci_lookup@<the function its copy is
 * inlined into>", then why. Returns the length written. */
static size_t detail_where(struct race_watch_probe *p, char *d, size_t cap)
{
    const char *chain = race_watch_chain(p), *into = chain, *a;
    while ((a = strstr(into, " <- ")))
        into = a + 4;
    size_t k = race_strlcpy(d, "rb_vm_ci_lookup", cap);
    if (into != chain) {
        d[k++] = '@';
        for (const char *c = into; *c && *c != ':' && k + 24 < cap; c++)
            d[k++] = *c;
        d[k] = 0;
    }
    return k;
}

/* A references++ site (or, outside Ruby, an entry where DWARF says kwarg is): the
 * register holds the kwarg block about to be touched. Outside Ruby the finding has no
 * subtype: it is only "a watched function was handed a freed block". */
static int check_freed(const struct race_regs *r, struct race_watch_probe *p, uint64_t kw, unsigned subtype)
{
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    if (!race_quarantine_find((uintptr_t)kw, &f))
        return 0;
    /* the chain starts with the function handed the block: the report names it */
    report_stale(r, &f, subtype, kw + (uint64_t)race_watch_disp(p), 4, race_watch_chain(p));
    return 1;
}

static void check(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t kw = race_watch_reg(r, race_watch_regno(p));
    __atomic_fetch_add(&hits, 1, __ATOMIC_RELAXED);
    if (kw)
        check_freed(r, p, kw, RACE_SUB_NONE);
}

/* In a Ruby of a known layout a live kwarg block always has its shape: keyword_len from
 * 1 on and Symbols for keywords.
 * Read with loads that may fault: the pointer may come from memory that is anything
 * now. Returns 1 shaped, 0 not (keyword_len in *len, or -1 if unreadable). */
static int kwarg_live_shape(uint64_t kw, int64_t *len)
{
    uint64_t head, key;
    *len = -1;
    if ((kw & 7) || !race_arch_load((const void *)(uintptr_t)kw, &head))
        return 0;
    int32_t n = (int32_t)(uint32_t)head;
    *len = n;
    if (n < 1 || n > 4096)
        return 0;
    for (int32_t i = 0; i < n && i < 4; i++) {
        if (!race_arch_load((const void *)(uintptr_t)(kw + L->kwarg_keywords + 8 * (uint64_t)i), &key))
            return 0;
        if (!symbol_like(key))
            return 0;
    }
    return 1;
}

/* The Ruby check: a freed kwarg block (kept, so the free is known), or a pointer that is
 * no kwarg block at all: then the call-info it was read from is gone (swept by the GC
 * and its slot reused) and the lookup is about to increment whatever lives there. */
static void check_ruby(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t kw = race_watch_reg(r, race_watch_regno(p));
    __atomic_fetch_add(&hits, 1, __ATOMIC_RELAXED);
    if (!kw || check_freed(r, p, kw, RACE_SUB_CI_KWARG_FREED))
        return;
    int64_t n;
    if (kwarg_live_shape(kw, &n))
        return;
    /* One such finding per process is enough: it is about to corrupt memory anyway. */
    if (__atomic_exchange_n(&shape_reported, 1, __ATOMIC_RELAXED))
        return;
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    char d[sizeof(f.detail)], num[24]; /* "rb_vm_ci_lookup@vm_search_super_method: no kwarg, len 123" */
    size_t k = detail_where(p, d, sizeof(d));
    if (n < 0) {
        race_strlcpy(d + k, ": no kwarg, unreadable", sizeof(d) - k);
    } else {
        k += race_strlcpy(d + k, ": no kwarg, len ", sizeof(d) - k);
        if (n > 99999)
            race_strlcpy(d + k, ">99999", sizeof(d) - k);
        else {
            race_fmt_u64(num, (uint64_t)n);
            race_strlcpy(d + k, num, sizeof(d) - k);
        }
    }
    report_stale(r, &f, RACE_SUB_CI_NO_KWARG, kw + (uint64_t)race_watch_disp(p), 4, d);
}

/* The load of ci->kwarg that feeds a references++ site (found in the code before it):
 * the register holds the call-info itself, read from the caller's call data. A slot the
 * GC swept is T_NONE (flags 0) or, reused, another type: either way the call data
 * still points at a call-info that is gone. The record of the sweep that freed the
 * slot, when the watch of rb_vm_ci_free saw it, says who and when. */
static void check_ci_slot(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t ci = race_watch_reg(r, race_watch_regno(p)), flags;
    __atomic_fetch_add(&hits, 1, __ATOMIC_RELAXED);
    if (!ci || (ci & 7))
        return; /* packed call-infos are not objects */
    int readable = race_arch_load((const void *)(uintptr_t)ci, &flags);
    if (readable && (flags & L->t_mask) == L->t_imemo &&
        ((flags >> L->imemo_shift) & L->imemo_mask) == L->imemo_callinfo)
        return;
    if (__atomic_exchange_n(&slot_reported, 1, __ATOMIC_RELAXED))
        return;
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    if (race_quarantine_find_foreign((uintptr_t)ci, &f) == 0) {
        f.block_addr = ci;
        f.block_size = L->ci_size;
    }
    char d[sizeof(f.detail)];
    size_t k = detail_where(p, d, sizeof(d));
    if (!readable) {
        race_strlcpy(d + k, ": ci gone, unreadable", sizeof(d) - k);
    } else {
        char hex[24];
        race_fmt_hex(hex, flags);
        k += race_strlcpy(d + k, ": ci gone, flags 0x", sizeof(d) - k);
        race_strlcpy(d + k, hex, sizeof(d) - k);
    }
    report_stale(r, &f, RACE_SUB_CI_SWEPT, ci + L->ci_kwarg, 8, d); /* the read of its kwarg field */
}

/* Ruby found a T_NONE object while marking and is about to abort ("try to mark T_NONE
 * object"): rb_obj_info_dump(obj) comes first. When obj is a call-info slot a sweep
 * freed, something still held that call-info (an iseq's call data): the finding names
 * the sweep, and the marking stack says who held it. */
static void check_marked(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t obj = race_watch_reg(r, race_watch_regno(p)), flags;
    if (!obj || (obj & 7) || !race_arch_load((const void *)(uintptr_t)obj, &flags) ||
        (flags & L->t_mask) != 0 /* RUBY_T_NONE */)
        return; /* only T_NONE: a dump for any other reason is not ours to judge */
    struct race_finding f;
    memset(&f, 0, sizeof(f));
    if (!race_quarantine_find_foreign((uintptr_t)obj, &f) || f.free_entry != RACE_ENTRY_RB_VM_CI_FREE)
        return;
    if (__atomic_exchange_n(&slot_reported, 1, __ATOMIC_RELAXED))
        return;
    report_stale(r, &f, RACE_SUB_CI_GC_MARK, obj + L->ci_kwarg, 8, "gc mark: ci gone, T_NONE (Ruby aborts next)");
}

/* A GC sweep frees a call-info (rb_vm_ci_free, called for each swept one under the VM
 * lock): a FREE event for its slot, and a note the slot check can find. */
static void on_ci_free(const struct race_regs *r, struct race_watch_probe *p)
{
    uint64_t ci = race_watch_reg(r, race_watch_regno(p));
    if (!ci || (ci & 7))
        return;
    /* A sweep frees its call-infos one after another from the same frame: unwinding
     * for each cost more than all the probes together (a lookup-heavy workload ran
     * 1.6x instead of 1.2x). One stack per sweep step: the same stack pointer and
     * return address on this thread, within 2^24 TSC ticks (a few ms), 256 frees.
     * A fork child's stacks are its own: a sweep of the parent's is not reused. */
    struct sweep *w = &sweep_tls;
    uint64_t ret = 0, now = race_now();
    race_arch_load((const void *)(uintptr_t)r->rsp, &ret);
    uint32_t stack;
    if (w->stack && w->epoch == race_g.epoch && w->sp == r->rsp && w->ret == ret && now - w->ts < (1ull << 24) &&
        w->uses < 256) {
        stack = w->stack;
        w->uses++;
    } else {
        stack = stack_of(r);
        w->stack = stack;
        w->epoch = race_g.epoch;
        w->sp = r->rsp;
        w->ret = ret;
        w->ts = now;
        w->uses = 1;
    }
    uint64_t seq =
        race_record_event(RACE_EV_FREE, RACE_ENTRY_RB_VM_CI_FREE, 0, (void *)(uintptr_t)ci, L->ci_size, 0, stack);
    race_quarantine_note((const void *)(uintptr_t)ci, L->ci_size, RACE_ENTRY_RB_VM_CI_FREE, seq, stack);
    __atomic_fetch_add(&ci_frees, 1, __ATOMIC_RELAXED);
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
        uint64_t kw = *(const uint64_t *)(uintptr_t)(ci[i] + L->ci_kwarg);
        struct race_finding f;
        memset(&f, 0, sizeof(f));
        if (kw && !(kw & 7) && race_quarantine_find((uintptr_t)kw, &f))
            report_stale(r, &f, RACE_SUB_CI_KWARG_FREED, kw, 4, race_watch_chain(p));
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
    if (c->ruby && !in->inlined && entry && in->nparams >= 4 && in->param[3].abi_reg >= 0) {
        /* Out of line, kwarg arrives in its ABI register: the entry hook checks it, for a
         * fraction of what a breakpoint on the references++ a few instructions on costs. */
        race_watch_set_check(entry, race_dwarf_to_greg(in->param[3].abi_reg), (int)L->kwarg_refs, check_ruby);
        return;
    }
    if (c->ruby) {
        /* The first touch of kwarg in any of the instance's ranges. */
        for (uint32_t i = 0; i < in->nranges; i++) {
            uint64_t a = oi->bias + in->range[i].lo, e = oi->bias + in->range[i].hi, at;
            int reg;
            if (!race_find_mem_inc((const uint8_t *)(uintptr_t)a, a, e, (int)L->kwarg_refs, &reg, &at))
                continue;
            char d[160];
            size_t k = race_strlcpy(d, in->chain, sizeof(d));
            k += race_strlcpy(d + k, ": kwarg->references++ via ", sizeof(d) - k);
            race_strlcpy(d + k, race_dwarf_reg_name(reg) ? race_dwarf_reg_name(reg) : "?", sizeof(d) - k);
            struct race_watch_probe *p = race_watch_install(name, RACE_PROBER_CHECK, oi->index, at, 0, 0, d);
            if (p)
                race_watch_set_check(p, race_dwarf_to_greg(reg), (int)L->kwarg_refs, check_ruby);
            /* Where the kwarg came from: a load of ci->kwarg just before, in the caller's
             * code (the super path reads cd->ci's kwarg there). */
            uint64_t def;
            int base;
            if (L->imemo_callinfo && at - 160 > a - 4096 &&
                race_find_load_def((const uint8_t *)(uintptr_t)(at - 160), at - 160, at, reg, (int)L->ci_kwarg, &base,
                                   &def)) {
                k = race_strlcpy(d, in->chain, sizeof(d));
                k += race_strlcpy(d + k, ": the call-info its kwarg comes from, in ", sizeof(d) - k);
                race_strlcpy(d + k, race_dwarf_reg_name(base) ? race_dwarf_reg_name(base) : "?", sizeof(d) - k);
                struct race_watch_probe *q = race_watch_install(name, RACE_PROBER_CHECK, oi->index, def, 0, 0, d);
                if (q)
                    race_watch_set_check(q, race_dwarf_to_greg(base), 0, check_ci_slot);
            }
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

static void found_ci_free(const char *name, const struct obj_instance *oi, void *arg)
{
    const struct race_instance *in = oi->in;
    (void)arg;
    if (in->inlined)
        return; /* gc.c calls it across files: the out-of-line one is all there is */
    uint64_t lo = oi->bias + in->range[0].lo, size = in->range[0].hi - in->range[0].lo;
    struct race_watch_probe *p = race_watch_install(name, RACE_PROBER_CHECK, oi->index, oi->bias + in->entry, lo,
                                                    size, "rb_vm_ci_free (GC sweep): the call-info slot freed");
    if (p)
        race_watch_set_check(p, race_dwarf_to_greg(5 /* rdi: the first argument */), 0, on_ci_free);
}

static void found_info_dump(const char *name, const struct obj_instance *oi, void *arg)
{
    const struct race_instance *in = oi->in;
    (void)arg;
    if (in->inlined)
        return;
    uint64_t lo = oi->bias + in->range[0].lo, size = in->range[0].hi - in->range[0].lo;
    struct race_watch_probe *p = race_watch_install(name, RACE_PROBER_CHECK, oi->index, oi->bias + in->entry, lo,
                                                    size, "rb_obj_info_dump (before [BUG]): a marked T_NONE object");
    if (p)
        race_watch_set_check(p, race_dwarf_to_greg(5 /* rdi: the object */), 0, check_marked);
}

/* watch's install hook for rb_vm_ci_lookup. A Ruby whose layout has the call-info
 * table gets the Ruby check; a Ruby without one (3.1) has nothing to watch; in any
 * other program a function of that name is watched and checked where DWARF says. */
static int install(const char *func, char *why, size_t why_cap)
{
    const struct race_ruby_layout *l = race_ruby_layout();
    if (l && !l->ci_table) {
        char v[24];
        size_t k = race_strlcpy(why, "Ruby ", why_cap);
        race_fmt_u64(v, (uint64_t)l->major);
        k += race_strlcpy(why + k, v, why_cap - k);
        k += race_strlcpy(why + k, ".", why_cap - k);
        race_fmt_u64(v, (uint64_t)l->minor);
        k += race_strlcpy(why + k, v, why_cap - k);
        race_strlcpy(why + k, " has no call-info table: nothing to check", why_cap - k);
        return RACE_WATCH_NOT_HERE;
    }
    int ruby = l != NULL;
    if (ruby)
        L = l;
    struct ci_ctx c = {.ruby = ruby, .count = 0};
    int n = race_watch_instances(func, found, &c, why, why_cap);
    if (ruby && n > 0) {
        char w[256];
        int t = 0;
        race_watch_instances("vm_ci_hash", found_table_fn, &t, w, sizeof(w));
        race_watch_instances("vm_ci_hash_cmp", found_table_fn, &t, w, sizeof(w));
        if (L->imemo_callinfo) {
            race_watch_instances("rb_vm_ci_free", found_ci_free, NULL, w, sizeof(w));
            race_watch_instances("rb_obj_info_dump", found_info_dump, NULL, w, sizeof(w));
        }
        race_quarantine_ensure();
        race_ruby_ci_active = 1;
    }
    /* A program that is no Ruby and has no such function: nothing to say. */
    if (n <= 0 && race_ruby_state == RACE_RACTOR_NOT_RUBY)
        return RACE_WATCH_NOT_HERE;
    return n;
}

void race_ruby_ci_register(void)
{
    race_watch_register("rb_vm_ci_lookup", install);
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
    k += race_strlcpy(line + k, " checks, ", sizeof(line) - k);
    k += race_strlcpy(line + k, b, sizeof(line) - k);
    k += race_strlcpy(line + k, " kwarg blocks kept after their free, ", sizeof(line) - k);
    char d4[24];
    race_fmt_u64(d4, __atomic_load_n(&ci_frees, __ATOMIC_RELAXED));
    k += race_strlcpy(line + k, d4, sizeof(line) - k);
    k += race_strlcpy(line + k, " call-info slots swept, ", sizeof(line) - k);
    k += race_strlcpy(line + k, c, sizeof(line) - k);
    race_strlcpy(line + k, " stale", sizeof(line) - k);
    race_notice("rb_vm_ci_lookup: ", line, NULL, NULL);
}
