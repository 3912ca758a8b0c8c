/* watch.c - RACE_WATCH: every instance of each watched function in the objects loaded
 * at start-up (the out-of-line one and every inlined copy, from the symbol tables and
 * DWARF, debug files found the way gdb finds them) gets a probe: an entry hook where a
 * jump can be placed safely, else a breakpoint. Owns the probes section of the trace
 * and the ENTER/EXIT/HIT events. Installing runs in the constructor (it opens files
 * and allocates); the callbacks run on probed threads, inside SIGTRAP for breakpoints:
 * async-signal-safe, no locks, no allocation. */
#include <link.h>
#include <string.h>
#include <unistd.h>

#include "record.h"
#include "watch.h"

#define MAX_PROBES 256
#define MAX_INSTANCES 32

struct race_watch_probe {
    struct race_probe_rec *rec; /* in the trace, NULL when it did not fit */
    uint16_t index;             /* its record's index: flags of its events */
    uint16_t role;
    uint64_t addr;
    race_watch_check check;     /* check sites */
    int reg;                    /* check sites: the gregs-order register holding the value */
    int disp;                   /* and the offset the checked instruction adds to it */
    char func[48];
    char chain[120];
};

static struct race_watch_probe probes[MAX_PROBES];
static uint32_t nprobes;
static struct race_probe_hdr *ph;
static struct race_probe_rec *prec;

struct obj {
    char path[512];
    uintptr_t bias;
    uint8_t build_id[32];
    size_t build_id_len;
};
static struct obj objs[128];
static int nobjs;

static int collect(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    (void)arg;
    const char *name = info->dlpi_name;
    if (nobjs >= (int)(sizeof(objs) / sizeof(objs[0])))
        return 1;
    if (name && strstr(name, "linux-vdso"))
        return 0;
    if (!name || !name[0]) {
        ssize_t n = readlink("/proc/self/exe", objs[nobjs].path, sizeof(objs[0].path) - 1);
        if (n <= 0)
            return 0;
        objs[nobjs].path[n] = 0;
    } else {
        race_strlcpy(objs[nobjs].path, name, sizeof(objs[0].path));
    }
    /* the shim's own code is never probed */
    uintptr_t self = (uintptr_t)&race_watch_init;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *p = &info->dlpi_phdr[i];
        if (p->p_type == PT_LOAD && self >= info->dlpi_addr + p->p_vaddr &&
            self < info->dlpi_addr + p->p_vaddr + p->p_memsz)
            return 0;
    }
    objs[nobjs].build_id_len = race_build_id(info, objs[nobjs].build_id);
    objs[nobjs++].bias = info->dlpi_addr;
    return 0;
}

/* The register values in DWARF/gregs order, for check sites. */
uint64_t race_watch_reg(const struct race_regs *r, int greg)
{
    switch (greg) {
    case 13: return r->rax; /* REG_RAX */
    case 11: return r->rbx;
    case 14: return r->rcx;
    case 12: return r->rdx;
    case 9: return r->rsi;
    case 8: return r->rdi;
    case 10: return r->rbp;
    case 15: return r->rsp;
    case 0: return r->r8;
    case 1: return r->r9;
    case 2: return r->r10;
    case 3: return r->r11;
    case 4: return r->r12;
    case 5: return r->r13;
    case 6: return r->r14;
    case 7: return r->r15;
    default: return 0;
    }
}

static void on_probe(const struct race_regs *r, int event, void *arg)
{
    struct race_watch_probe *p = arg;
    struct race_tls *t = &race_tls;
    if (p->rec)
        __atomic_fetch_add(&p->rec->hits, 1, __ATOMIC_RELAXED);
    t->busy++; /* no sampled stack, no guarded allocation from inside a probe */
    if (event == RACE_PROBE_ENTER && p->role != RACE_PROBER_CHECK)
        race_record_event(RACE_EV_ENTER, 0, p->index, (void *)(uintptr_t)p->addr, r->rdi, r->rsi, 0);
    else if (event == RACE_PROBE_EXIT)
        race_record_event(RACE_EV_EXIT, 0, p->index, (void *)(uintptr_t)p->addr, r->rax, 0, 0);
    else
        race_record_event(RACE_EV_HIT, 0, p->index, (void *)(uintptr_t)p->addr,
                          p->check ? race_watch_reg(r, p->reg) : 0, 0, 0);
    if (p->check && event != RACE_PROBE_EXIT)
        p->check(r, p);
    t->busy--;
}

static struct race_watch_probe *add(const char *func, int role, int instance, uint64_t addr, int kind,
                                    const char *detail)
{
    if (nprobes >= MAX_PROBES)
        return NULL;
    struct race_watch_probe *p = &probes[nprobes];
    memset(p, 0, sizeof(*p));
    p->index = (uint16_t)nprobes++;
    p->role = (uint16_t)role;
    p->addr = addr;
    race_strlcpy(p->func, func, sizeof(p->func));
    race_strlcpy(p->chain, detail, sizeof(p->chain));
    if (ph && p->index < ph->cap) {
        struct race_probe_rec *rec = &prec[p->index];
        rec->kind = (uint8_t)kind;
        rec->role = (uint8_t)role;
        rec->instance = (uint16_t)instance;
        rec->addr = addr;
        race_strlcpy(rec->func, func, sizeof(rec->func));
        race_strlcpy(rec->detail, detail, sizeof(rec->detail));
        __atomic_store_n(&rec->commit, RACE_PROBE_COMMIT, __ATOMIC_RELEASE);
        p->rec = rec;
    }
    if (ph)
        __atomic_fetch_add(&ph->used, 1, __ATOMIC_RELAXED);
    return p;
}

/* Refines a refused probe's record: kind refused, the reason in detail. */
static void refused(struct race_watch_probe *p, const char *why)
{
    if (!p)
        return;
    if (p->rec) {
        p->rec->kind = RACE_PROBEK_REFUSED;
        char d[120];
        size_t k = race_strlcpy(d, why, sizeof(d));
        k += race_strlcpy(d + k, ": ", sizeof(d) - k);
        race_strlcpy(d + k, p->chain, sizeof(d) - k);
        race_strlcpy(p->rec->detail, d, sizeof(p->rec->detail));
    }
    char a[24];
    race_fmt_hex(a, p->addr);
    race_notice("cannot probe ", p->func, " at 0x", a);
    race_notice("  (", why, ")", NULL);
}

/* Installs a probe and says so in its record; returns it, or NULL when refused. */
struct race_watch_probe *race_watch_install(const char *func, int role, int instance, uint64_t addr,
                                            uint64_t fn, uint64_t fn_size, const char *detail)
{
    const char *why = NULL;
    struct race_watch_probe *p;
    if (role == RACE_PROBER_ENTRY) {
        p = add(func, role, instance, addr, RACE_PROBEK_HOOK, detail);
        if (!p)
            return NULL;
        if (race_probe_hook((uintptr_t)addr, fn_size, on_probe, p, &why) == 0)
            return p;
        /* the entry cannot take a jump: a breakpoint still sees every call */
        if (p->rec)
            p->rec->kind = RACE_PROBEK_BREAK;
        if (race_probe_break((uintptr_t)addr, (uintptr_t)fn, fn_size, on_probe, p, &why) == 0)
            return p;
    } else {
        /* A check at a function's own entry: an entry-only hook when the entry takes a
         * jump (a breakpoint costs five times as much per hit), else a breakpoint. */
        int at_entry = fn && addr == fn;
        p = add(func, role, instance, addr, at_entry ? RACE_PROBEK_HOOK : RACE_PROBEK_BREAK, detail);
        if (!p)
            return NULL;
        if (at_entry && race_probe_hook_entry((uintptr_t)addr, fn_size, on_probe, p, &why) == 0)
            return p;
        if (p->rec)
            p->rec->kind = RACE_PROBEK_BREAK;
        if (race_probe_break((uintptr_t)addr, (uintptr_t)fn, fn_size, on_probe, p, &why) == 0)
            return p;
    }
    refused(p, why ? why : "refused");
    p->check = NULL;
    return NULL;
}

void race_watch_set_check(struct race_watch_probe *p, int greg, int disp, race_watch_check check)
{
    p->reg = greg;
    p->disp = disp;
    p->check = check;
}

int race_watch_disp(const struct race_watch_probe *p)
{
    return p->disp;
}

const char *race_watch_chain(const struct race_watch_probe *p)
{
    return p->chain;
}

int race_watch_regno(const struct race_watch_probe *p)
{
    return p->reg;
}

/* RACE_SYMBOLS=FILE[:FILE] as the list debuginfo wants. */
static const char *hand[17];
static char hand_buf[1024];

static const char *const *hand_files(void)
{
    const char *s = race_opt.RACE_SYMBOLS;
    if (!s[0])
        return NULL;
    race_strlcpy(hand_buf, s, sizeof(hand_buf));
    int n = 0;
    for (char *p = hand_buf; *p && n < 16;) {
        hand[n++] = p;
        char *c = strchr(p, ':');
        if (!c)
            break;
        *c = 0;
        p = c + 1;
    }
    hand[n] = NULL;
    return hand;
}

/* Every instance of NAME in every loaded object; calls found() for each. Returns the
 * count, or 0 with the reason the most promising object gave in why. */
int race_watch_instances(const char *name,
                         void (*found)(const char *name, const struct obj_instance *oi, void *arg), void *arg,
                         char *why, size_t why_cap)
{
    static struct race_instance inst[MAX_INSTANCES];
    const char *const *hands = hand_files();
    int total = 0;
    why[0] = 0;
    for (int o = 0; o < nobjs; o++) {
        char dbg[512], w[512];
        const struct obj *ob = &objs[o];
        int n = race_dwarf_cache_get(ob->build_id, ob->build_id_len, name, inst, MAX_INSTANCES, w, sizeof(w));
        if (n == -2) {
            int how = race_debug_file(ob->path, NULL, hands, dbg, sizeof(dbg), NULL, 0);
            n = race_function_instances(ob->path, how >= 0 ? dbg : NULL, name, inst, MAX_INSTANCES, w, sizeof(w));
            /* -1 (unreadable) is not an answer worth keeping */
            if (n >= 0)
                race_dwarf_cache_put(ob->build_id, ob->build_id_len, name, inst, n,
                                     how >= 0 && how != RACE_DEBUG_SELF && how != RACE_DEBUG_SYMTAB_ONLY ? dbg : NULL, w);
        }
        if (n <= 0) {
            /* keep the reason of the object that looked most like the right one */
            if (w[0] && (!why[0] || strstr(objs[o].path, "libruby")))
                race_strlcpy(why, w, why_cap);
            continue;
        }
        for (int i = 0; i < n; i++) {
            struct obj_instance oi = {.path = objs[o].path, .bias = objs[o].bias, .in = &inst[i], .index = i};
            found(name, &oi, arg);
        }
        total += n;
    }
    return total;
}

static struct {
    const char *func;
    race_watch_installer install;
} clients[4];
static int nclients;

int race_watch_register(const char *func, race_watch_installer install)
{
    for (int i = 0; i < nclients; i++)
        if (strcmp(clients[i].func, func) == 0) {
            clients[i].install = install; /* a fork child's init registers again */
            return 0;
        }
    if (nclients >= (int)(sizeof(clients) / sizeof(clients[0])))
        return -1;
    clients[nclients].func = func;
    clients[nclients++].install = install;
    return 0;
}

static race_watch_installer client(const char *func)
{
    for (int i = 0; i < nclients; i++)
        if (strcmp(clients[i].func, func) == 0)
            return clients[i].install;
    return NULL;
}

static void plain_found(const char *name, const struct obj_instance *oi, void *arg)
{
    (void)arg;
    const struct race_instance *in = oi->in;
    uint64_t fn = oi->bias + in->range[0].lo, size = in->range[0].hi - in->range[0].lo;
    race_watch_install(name, in->inlined ? RACE_PROBER_INLINE : RACE_PROBER_ENTRY, oi->index,
                       oi->bias + in->entry, in->inlined ? 0 : fn, in->inlined ? 0 : size, in->chain);
}

void race_watch_init(struct race_hdr *h)
{
    if (h && h->probes.size) {
        ph = (struct race_probe_hdr *)((uint8_t *)h + h->probes.off);
        ph->cap = (h->probes.size - sizeof(*ph)) / sizeof(struct race_probe_rec);
        prec = (struct race_probe_rec *)(ph + 1);
    }
    const char *list = race_opt.RACE_WATCH;
    if (!list[0] || strcmp(list, "none") == 0)
        return;
    nobjs = 0;
    dl_iterate_phdr(collect, NULL);
    char names[512];
    race_strlcpy(names, list, sizeof(names));
    for (char *s = names, *e; *s; s = e) {
        e = strchr(s, ',');
        if (e)
            *e++ = 0;
        else
            e = s + strlen(s);
        char why[512];
        race_watch_installer install = client(s);
        int n = install ? install(s, why, sizeof(why)) : race_watch_instances(s, plain_found, NULL, why, sizeof(why));
        if (n == RACE_WATCH_NOT_HERE ? race_opt.RACE_VERBOSE : n <= 0)
            race_notice("cannot watch ", s, ": ", why[0] ? why : "not found in any object loaded at start-up");
    }
}
