/* hunt.c - `race hunt [OPTION]... -- COMMAND [ARG]...`: runs COMMAND under `race run` again
 * and again, each time aiming the guarded pool at what the last run's evidence names (the
 * size class and site of a freed block a crash was attributed to), until a run confirms a
 * use after free or double free with its allocation, or the runs are spent.
 * Owns: the choice of each run's recorder settings from the evidence and the budget.
 * Must never: report a finding itself (the report does), or run past --runs. */
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "race.h"

/* Costs this tuning starts from: a guarded allocation about 6 us on a quiet machine
 * (bench/README.md: mmap of a fresh page, later mprotect), but up to 240 us measured on
 * a loaded 2-core one with thousands of slots (bench/results-crash-attrib.md). The
 * first aimed run assumes 200 us: cheap guarding first (the site does the aiming), then
 * what that run measured (6 us at least) sets the next; a free's stack about 0.5 us. */
#define GUARD_NS 200000.0
#define GUARD_NS_MIN 6000.0
#define STACK_NS 500.0
#define SLOTS_MIN 256
#define SLOTS_MAX 4096
#define SIZE_MAX_GUARD 1048576u /* RACE_GUARD_SIZES' upper limit */

/* The recorder options a hunt sets; each run starts from none of them set. */
static const char *const managed[] = {"RACE_GUARD_SAMPLE", "RACE_GUARD_SIZES", "RACE_GUARD_SLOTS",
                                      "RACE_GUARD_SITES", "RACE_STACK_SAMPLE"};

struct settings {
    long sample;            /* RACE_GUARD_SAMPLE; 0 = the default (not set) */
    uint64_t lo, hi;        /* RACE_GUARD_SIZES; hi == 0: the default */
    long slots;             /* 0: the default */
    long stack_sample;      /* 0: the default */
    char sites[128];        /* "" : none */
};

/* What one run saw. */
struct evidence {
    int status;
    double wall_s;
    bool confirmed;                 /* a UAF or double free with its allocation */
    size_t findings, crashes, explained;
    bool have_block;                /* the best explained crash's block */
    uint64_t size;
    uint64_t lo, hi;                /* the size classes to guard next: this one and earlier ones */
    unsigned entry, via;
    uint32_t free_tid, crash_tid;
    char free_func[64], crash_func[64], site[64];
    double class_rate, free_rate;   /* frees per second: of the size class, of all sizes */
    double site_rate;               /* of sizes 1..site_hi, the range a site is guarded in */
    uint64_t guarded;               /* guarded allocations the run made (ALLOC events) */
    uint64_t site_hi;
};

static int usage(const char *fmt, const char *arg)
{
    fputs("race hunt: ", stderr);
    fprintf(stderr, fmt, arg);
    fputs("\nTry 'race hunt --help'.\n", stderr);
    return RACE_EXIT_USAGE;
}

static const char hunt_help[] =
    "Usage: race hunt [OPTION]... [--] COMMAND [ARG]...\n"
    "Runs COMMAND under race run again and again. After each run it reads the traces:\n"
    "a crash explained by a freed block (race report's crash-after-free) aims the next\n"
    "run's guarded pool at that block's size class (and at a site both the crash and the\n"
    "free stack pass through), as often as the budget allows; with no evidence it\n"
    "guards more allocations of every size. It stops at the first confirmed finding\n"
    "(a use after free or double free with its allocation, free and use stacks), prints\n"
    "its report and the race run line that reproduces it; or after --runs runs, with what\n"
    "each run tried and saw.\n"
    "\n"
    "  --runs N       at most N runs (default 10)\n"
    "  --budget X     the slowdown the guarding may cause, as a factor (default 1.5)\n"
    "  -d, --dir DIR  keep the runs' traces in DIR/run-N (default race.hunt.<command>.<pid>)\n"
    "  --library PATH librace.so to preload (as race run)\n"
    "  -h, --help     show this help and exit\n"
    "\n"
    "Exit status: 66 a finding was confirmed; 0 none in N runs; 64 usage error; 69, 73,\n"
    "126, 127 as race run (librace.so not found, directory, command not executable or\n"
    "not found).\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool libc_module(const char *m)
{
    static const char *const skip[] = {"libc.so", "libpthread", "ld-linux", "librace.so", "libstdc++"};
    for (size_t i = 0; m && i < sizeof skip / sizeof skip[0]; i++)
        if (strncmp(m, skip[i], strlen(skip[i])) == 0)
            return true;
    return false;
}

/* Frames every stack of a thread or of a Ruby VM passes through: as a site they would
 * guard everything. */
static bool outer_func(const char *f)
{
    static const char *const skip[] = {"main", "_start", "__libc_start_main", "__libc_start_call_main",
                                       "start_thread", "clone", "clone3"};
    for (size_t i = 0; i < sizeof skip / sizeof skip[0]; i++)
        if (strcmp(f, skip[i]) == 0)
            return true;
    static const char *const prefix[] = {"rb_vm_", "vm_", "rb_funcall", "rb_protect", "rb_ensure",
                                         "rb_rescue", "rb_yield", "rb_ec_", "ruby_run", "ruby_exec"};
    for (size_t i = 0; i < sizeof prefix / sizeof prefix[0]; i++)
        if (strncmp(f, prefix[i], strlen(prefix[i])) == 0)
            return true;
    return false;
}

/* A site is looked for this close to the crash (frames of the C library and the recorder
 * not counted): an allocation matches a site only on its first frames
 * (RACE_GUARD_SITES), so a frame far down the stack is no site. */
#define SITE_FRAMES 10

/* The first symbolized frame outside the C library and the recorder; "" if none. */
static void first_func(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                       bool exact0, char *out, size_t cap)
{
    struct race_stack st;
    const char *why;
    out[0] = 0;
    if (!id || trace_stack(t, id, &st, &why) != RACE_STACK_OK)
        return;
    for (uint32_t i = 0; i < st.nframes; i++) {
        struct race_frame fr;
        sym_frame(sym, st.pc[i], ts, exact0 && i == 0, &fr);
        if (fr.func && !libc_module(fr.module)) {
            snprintf(out, cap, "%s", fr.func);
            return;
        }
    }
}

/* The stack of the free that explains a crash, or where that free was not sampled
 * (RACE_STACK_SAMPLE), the freeing thread's stacked free nearest to it in time (within
 * 50 ms: the same call, most likely): what the free side ran through. */
struct near_ctx {
    uint32_t tid;
    uint64_t ts, best_dt;
    uint32_t stack;
};

static void near_free(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    (void)off;
    struct near_ctx *n = ctx;
    if (r->kind != RACE_EV_FREE || r->tid != n->tid || !r->stack)
        return;
    uint64_t dt = r->ts > n->ts ? r->ts - n->ts : n->ts - r->ts;
    if (clock_ns(&t->clock, n->ts + dt) - clock_ns(&t->clock, n->ts) > 50000000)
        return;
    if (!n->stack || dt < n->best_dt) {
        n->stack = r->stack;
        n->best_dt = dt;
    }
}

/* A site from the crash stack alone (no free to compare with): the first named function
 * outside the module the crash happened in (the first outside the C library and the
 * recorder: an abort's frames are theirs) and outside the C library, where that code
 * was entered from (a C extension's library called inside rb_nogvl: rb_nogvl). */
static void entry_site(struct race_trace *t, struct race_sym *sym, const struct race_crash *c,
                       char *out, size_t cap)
{
    struct race_stack a;
    const char *why;
    out[0] = 0;
    if (!c->stack || trace_stack(t, c->stack, &a, &why) != RACE_STACK_OK || !a.nframes)
        return;
    char mod0[128] = "";
    bool left = false;
    for (uint32_t i = 0, counted = 0; i < a.nframes && counted < SITE_FRAMES; i++) {
        struct race_frame fr;
        sym_frame(sym, a.pc[i], c->ts, i == 0, &fr);
        if (libc_module(fr.module))
            continue;
        counted++;
        if (!mod0[0]) {
            snprintf(mod0, sizeof mod0, "%s", fr.module ? fr.module : "?");
            continue;
        }
        if (!left && fr.module && strcmp(fr.module, mod0) == 0)
            continue;
        left = true;
        if (!fr.func || outer_func(fr.func))
            continue;
        snprintf(out, cap, "%.*s", (int)(cap - 1), fr.func);
        return;
    }
}

/* A site for RACE_GUARD_SITES: the innermost named function of the crash stack, outside
 * the C library, that the free side passes through too (mysql2: rb_nogvl, inside which
 * the connection's use, its close, and its allocation at connect all run). */
static void common_site(struct race_trace *t, struct race_sym *sym, const struct race_explain *x,
                        char *out, size_t cap)
{
    struct race_stack a, b;
    const char *why;
    out[0] = 0;
    const struct race_crash *c = &x->cr->c;
    if (!x->nm || !c->stack)
        return;
    struct near_ctx n = {.tid = x->m[0].free_tid, .ts = x->m[0].free_ts, .stack = x->m[0].free_stack};
    if (!n.stack)
        trace_scan(t, near_free, &n);
    if (!n.stack || trace_stack(t, c->stack, &a, &why) != RACE_STACK_OK ||
        trace_stack(t, n.stack, &b, &why) != RACE_STACK_OK)
        return;
    for (uint32_t i = 0, counted = 0; i < a.nframes && counted < SITE_FRAMES; i++) {
        struct race_frame fa;
        sym_frame(sym, a.pc[i], c->ts, i == 0, &fa);
        if (libc_module(fa.module))
            continue; /* an abort's frames do not count */
        counted++;
        if (!fa.func || outer_func(fa.func))
            continue;
        char fname[128];
        snprintf(fname, sizeof fname, "%s", fa.func);
        for (uint32_t j = 0; j < b.nframes; j++) {
            struct race_frame fb;
            sym_frame(sym, b.pc[j], x->m[0].free_ts, false, &fb);
            if (fb.func && strcmp(fb.func, fname) == 0) {
                snprintf(out, cap, "%.*s", (int)(cap - 1), fname);
                return;
            }
        }
    }
}

struct count_ctx {
    uint64_t lo, hi, site_hi, n_class, n_site, n_all, n_guarded;
};

static void count_frees(struct race_trace *t, const struct race_rec *r, uint64_t off, void *ctx)
{
    (void)t;
    (void)off;
    struct count_ctx *c = ctx;
    if (r->kind == RACE_EV_ALLOC)
        c->n_guarded++;
    if (r->kind != RACE_EV_FREE)
        return;
    c->n_all++;
    c->n_class += r->size >= c->lo && r->size <= c->hi;
    c->n_site += r->size <= c->site_hi;
}

static bool confirmed(const struct race_finding *f)
{
    return (f->type == RACE_FIND_USE_AFTER_FREE || f->type == RACE_FIND_DOUBLE_FREE) && f->alloc_ts;
}

/* Reads one run's traces: findings, crashes and the best explanation, and the rates of
 * frees (the busiest process's) the next run's settings are computed from. */
static void gather(char **paths, int n, const struct settings *cur, struct evidence *ev)
{
    const struct race_explain *best = NULL;
    struct race_explain *xs[64] = {0};
    struct race_trace *ts[64] = {0};
    struct race_sym *syms[64] = {0};
    int keep = n < 64 ? n : 64;
    for (int i = 0; i < keep; i++) {
        struct race_trace *t = ts[i] = trace_open(paths[i]);
        ev->findings += t->nfind;
        for (size_t j = 0; j < t->nfind; j++)
            ev->confirmed |= confirmed(&t->find[j].f);
        if (!t->ncrash)
            continue;
        syms[i] = sym_open(t);
        size_t nx = crash_explain_all(t, syms[i], &xs[i]);
        ev->crashes += nx;
        for (size_t j = 0; j < nx; j++) {
            const struct race_explain *x = &xs[i][j];
            if (!x->nm) {
                if (!ev->site[0])
                    entry_site(t, syms[i], &x->cr->c, ev->site, sizeof ev->site);
                continue;
            }
            ev->explained++;
            if (!best || x->m[0].via < best->m[0].via) {
                best = x;
                ev->have_block = true;
                ev->size = x->m[0].size;
                ev->entry = x->m[0].free_entry;
                ev->via = x->m[0].via;
                ev->free_tid = x->m[0].free_tid;
                ev->crash_tid = x->cr->c.tid;
                first_func(t, syms[i], x->m[0].free_stack, x->m[0].free_ts, false, ev->free_func,
                           sizeof ev->free_func);
                first_func(t, syms[i], x->cr->c.stack, x->cr->c.ts, true, ev->crash_func,
                           sizeof ev->crash_func);
                /* The crashing thread's own free says nothing about where the other side
                 * ran: only the entry into the crashing code does. */
                if (x->m[0].free_tid != x->cr->c.tid)
                    common_site(t, syms[i], x, ev->site, sizeof ev->site);
                else
                    ev->site[0] = 0;
                if (!ev->site[0])
                    entry_site(t, syms[i], &x->cr->c, ev->site, sizeof ev->site);
            }
        }
    }
    if (ev->have_block) {
        ev->lo = ev->size > 15 ? ev->size - 15 : 1;
        ev->hi = ev->size;
        if (cur->hi && cur->hi <= SIZE_MAX_GUARD && ev->hi <= SIZE_MAX_GUARD) {
            ev->lo = cur->lo < ev->lo ? cur->lo : ev->lo;
            ev->hi = cur->hi > ev->hi ? cur->hi : ev->hi;
        }
        /* A site is guarded in the default range or the class's, whichever is larger:
         * the state a site allocates need not be the block the crash pointed at. */
        ev->site_hi = ev->hi > 4096 ? ev->hi : 4096;
        struct count_ctx cc = {.lo = ev->lo, .hi = ev->hi, .site_hi = ev->site_hi};
        for (int i = 0; i < keep; i++) {
            struct count_ctx one = cc;
            trace_scan(ts[i], count_frees, &one);
            ev->guarded += one.n_guarded;
            double span = trace_span_ms(ts[i]) / 1e3;
            if (span <= 0)
                continue;
            if (one.n_class / span > ev->class_rate)
                ev->class_rate = (double)one.n_class / span;
            if (one.n_all / span > ev->free_rate)
                ev->free_rate = (double)one.n_all / span;
            if (one.n_site / span > ev->site_rate)
                ev->site_rate = (double)one.n_site / span;
        }
    }
    for (int i = 0; i < keep; i++) {
        free(xs[i]);
        sym_close(syms[i]);
        trace_close(ts[i]);
    }
}

/* The next run's settings from the last run's evidence and the overhead it cost. */
static void next_settings(const struct settings *cur, const struct evidence *ev, double base_wall,
                          double budget, struct settings *next)
{
    *next = *cur;
    double allowed = budget - 1.0; /* seconds of guarding per second of the program */
    bool over = base_wall > 0 && ev->wall_s > budget * base_wall;
    /* What a guarded allocation cost in this run, when it guarded more than the defaults:
     * on a loaded machine, with many slots, far more than the quiet figure. */
    double cost = GUARD_NS;
    if ((cur->hi || cur->sites[0]) && ev->guarded && base_wall > 0) {
        double measured = (ev->wall_s - base_wall) * 1e9 / (double)ev->guarded;
        cost = measured > GUARD_NS_MIN ? measured : GUARD_NS_MIN;
    }
    if (ev->have_block && ev->size <= SIZE_MAX_GUARD) {
        /* Every size class a crash pointed at so far: one run's crash may be explained by
         * another block of the same bug (mysql2: the socket state's 8 KiB and 16 KiB
         * buffers). ev's rate was counted over this range. With a site, the range widens
         * to the site's and the sampling is counted over it. */
        bool site = ev->site[0] != 0; /* kept when over budget: the sampling pays for it */
        next->lo = site ? 1 : ev->lo;
        next->hi = site ? ev->site_hi : ev->hi;
        double rate = site ? ev->site_rate : ev->class_rate;
        /* 1 in N of the range's allocations guarded costs rate / N * GUARD_NS per second. */
        double n = ceil(rate * cost / 1e9 / allowed);
        next->sample = n < 1 ? 1 : n > 1e6 ? 1000000 : (long)n;
        if (over && cur->sample)
            next->sample = cur->sample * 2 > next->sample ? cur->sample * 2 : next->sample;
        /* Slots: a freed guarded block stays inaccessible until its slot is the least
         * recently freed; hold a second of guarded frees (a site adds its own). */
        double per_s = rate / (double)next->sample;
        long lo_slots = site ? 4 * SLOTS_MIN : SLOTS_MIN;
        next->slots = per_s < lo_slots ? lo_slots : per_s > SLOTS_MAX ? SLOTS_MAX : (long)per_s;
        next->stack_sample = ev->free_rate * STACK_NS / 1e9 <= allowed / 4 ? 1 : 0;
        snprintf(next->sites, sizeof next->sites, "%s", site ? ev->site : cur->sites);
        if (!site && cur->sites[0]) { /* a site found earlier: keep it, and its range */
            next->lo = 1;
            next->hi = ev->site_hi > cur->hi ? ev->site_hi : cur->hi;
        }
        return;
    }
    /* No block to aim at, but a crash whose stack names a site: that site. */
    if (ev->site[0] && !cur->sites[0]) {
        snprintf(next->sites, sizeof next->sites, "%s", ev->site);
        return;
    }
    /* No block to aim at: guard more of everything, within the measured overhead. */
    long s = cur->sample ? cur->sample : 1000;
    next->sample = over ? s * 4 : s / 4 < 1 ? 1 : s / 4;
}

static void settings_text(const struct settings *s, char *out, size_t cap)
{
    size_t k = 0;
    out[0] = 0;
    if (s->sample)
        k += (size_t)snprintf(out + k, cap - k, " --guard-sample=%ld", s->sample);
    if (s->hi && k < cap)
        k += (size_t)snprintf(out + k, cap - k, " --guard-sizes=%llu-%llu", (unsigned long long)s->lo,
                              (unsigned long long)s->hi);
    if (s->slots && k < cap)
        k += (size_t)snprintf(out + k, cap - k, " --guard-slots=%ld", s->slots);
    if (s->sites[0] && k < cap)
        k += (size_t)snprintf(out + k, cap - k, " --guard-sites=%s", s->sites);
    if (s->stack_sample && k < cap)
        snprintf(out + k, cap - k, " --stack-sample=%ld", s->stack_sample);
}

static void evidence_text(const struct evidence *ev, char *out, size_t cap)
{
    int k = snprintf(out, cap, "status %d, %.2f s, %zu finding%s%s, %zu crash%s", ev->status, ev->wall_s,
                     ev->findings, ev->findings == 1 ? "" : "s", ev->confirmed ? " (confirmed)" : "",
                     ev->crashes, ev->crashes == 1 ? "" : "es");
    if (ev->have_block && k > 0 && (size_t)k < cap)
        snprintf(out + k, cap - (size_t)k, " (%zu explained: %llu-byte block freed via %s%s%s by thread %u, "
                 "crash in %s)", ev->explained, (unsigned long long)ev->size, race_entry_name(ev->entry),
                 ev->free_func[0] ? " in " : "", ev->free_func, ev->free_tid,
                 ev->crash_func[0] ? ev->crash_func : "?");
}

static void shell_word(FILE *f, const char *s)
{
    bool plain = *s != 0;
    for (const char *p = s; *p && plain; p++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:,+%@", *p) != NULL;
    if (plain) {
        fputs(s, f);
        return;
    }
    fputc('\'', f);
    for (const char *p = s; *p; p++)
        if (*p == '\'')
            fputs("'\\''", f);
        else
            fputc(*p, f);
    fputc('\'', f);
}

static char *hunt_dir(const char *cmd)
{
    const char *base = strrchr(cmd, '/');
    base = base ? base + 1 : cmd;
    char *d = xcalloc(strlen(base) + 48, 1);
    sprintf(d, "race.hunt.%.200s.%ld", base, (long)getpid());
    for (char *p = d + 10; *p; p++)
        if (*p == ' ' || *p == '/')
            *p = '_';
    return d;
}

static bool parse_num(const char *v, double lo, double hi, double *out)
{
    char *end;
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !(d >= lo && d <= hi))
        return false;
    *out = d;
    return true;
}

int cmd_hunt(int argc, char **argv)
{
    double runs = 10, budget = 1.5;
    const char *dir = NULL, *library = NULL;
    int i = 0;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--") == 0) {
            i++;
            break;
        }
        if (a[0] != '-' || !a[1])
            break;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            fputs(hunt_help, stdout);
            return RACE_EXIT_OK;
        }
        const char *name = a[1] == '-' ? a + 2 : NULL;
        if (strcmp(a, "-d") == 0)
            name = "dir";
        if (!name)
            return usage("unknown option '%s'", a);
        const char *eq = strchr(name, '=');
        size_t nlen = eq ? (size_t)(eq - name) : strlen(name);
        const char *value = eq ? eq + 1 : NULL;
        if (!value) {
            if (i + 1 >= argc)
                return usage("option '%s' needs a value", a);
            value = argv[++i];
        }
        if (nlen == 4 && strncmp(name, "runs", 4) == 0) {
            if (!parse_num(value, 1, 10000, &runs) || runs != floor(runs))
                return usage("--runs wants a whole number from 1 to 10000, not '%s'", value);
        } else if (nlen == 6 && strncmp(name, "budget", 6) == 0) {
            if (!parse_num(value, 1.01, 100, &budget))
                return usage("--budget wants a factor from 1.01 to 100, not '%s'", value);
        } else if (nlen == 3 && strncmp(name, "dir", 3) == 0) {
            dir = value;
        } else if (nlen == 7 && strncmp(name, "library", 7) == 0) {
            library = value;
        } else {
            return usage("unknown option '%s'", a);
        }
    }
    if (i >= argc)
        return usage("no command given%s", "");
    char **cmd = argv + i;
    int ncmd = argc - i;
    char *own = dir ? NULL : hunt_dir(cmd[0]);
    if (!dir)
        dir = own;
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "race hunt: cannot create %s: %s\n", dir, strerror(errno));
        free(own);
        return 73;
    }
    char *preload = getenv("LD_PRELOAD") ? xstrndup(getenv("LD_PRELOAD"), 65536) : NULL;
    bool tty = isatty(STDERR_FILENO);
    int nruns = (int)runs;
    struct settings *tried = xcalloc((size_t)nruns, sizeof *tried);
    struct evidence *seen = xcalloc((size_t)nruns, sizeof *seen);
    struct settings cur = {0};
    double base_wall = 0;
    int status = RACE_EXIT_OK, found = -1, done = 0;
    char **argv_run = xcalloc((size_t)ncmd + 16, sizeof *argv_run);
    char opt[6][160];
    for (int r = 0; r < nruns && found < 0; r++) {
        tried[r] = cur;
        char rundir[4096];
        snprintf(rundir, sizeof rundir, "%s/run-%d", dir, r + 1);
        int k = 0;
        argv_run[k++] = (char *)"--dir";
        argv_run[k++] = rundir;
        argv_run[k++] = (char *)"--no-report";
        if (library) {
            argv_run[k++] = (char *)"--library";
            argv_run[k++] = (char *)library;
        }
        int o = 0;
        if (cur.sample)
            snprintf(opt[o], sizeof opt[o], "--guard-sample=%ld", cur.sample), argv_run[k++] = opt[o++];
        if (cur.hi)
            snprintf(opt[o], sizeof opt[o], "--guard-sizes=%llu-%llu", (unsigned long long)cur.lo,
                     (unsigned long long)cur.hi), argv_run[k++] = opt[o++];
        if (cur.slots)
            snprintf(opt[o], sizeof opt[o], "--guard-slots=%ld", cur.slots), argv_run[k++] = opt[o++];
        if (cur.sites[0])
            snprintf(opt[o], sizeof opt[o], "--guard-sites=%s", cur.sites), argv_run[k++] = opt[o++];
        if (cur.stack_sample)
            snprintf(opt[o], sizeof opt[o], "--stack-sample=%ld", cur.stack_sample), argv_run[k++] = opt[o++];
        argv_run[k++] = (char *)"--";
        for (int j = 0; j < ncmd; j++)
            argv_run[k++] = cmd[j];
        argv_run[k] = NULL;
        /* race run sets these in its own environment: each run starts from the user's. */
        for (size_t j = 0; j < sizeof managed / sizeof managed[0]; j++)
            unsetenv(managed[j]);
        if (preload)
            setenv("LD_PRELOAD", preload, 1);
        else
            unsetenv("LD_PRELOAD");
        char what[512];
        settings_text(&cur, what, sizeof what);
        if (tty)
            fprintf(stderr, "race hunt: run %d/%d:%s ...\n", r + 1, nruns, what[0] ? what : " defaults");
        double t0 = now_s();
        int st = cmd_run(k, argv_run);
        struct evidence *ev = &seen[r];
        ev->status = st;
        ev->wall_s = now_s() - t0;
        int n;
        char **paths = list_traces(rundir, &n);
        if (n == 0 && (st == RACE_EXIT_USAGE || st == 69 || st == 73 || st == 126 || st == 127)) {
            status = st; /* race run said why */
            for (int j = 0; j < n; j++)
                free(paths[j]);
            free(paths);
            done = r + 1;
            break;
        }
        gather(paths, n, &cur, ev);
        if (r == 0)
            base_wall = ev->wall_s;
        char saw[512];
        evidence_text(ev, saw, sizeof saw);
        fprintf(stderr, "race hunt: run %d/%d:%s: %s\n", r + 1, nruns, what[0] ? what : " defaults", saw);
        done = r + 1;
        if (ev->confirmed) {
            found = r;
            fflush(stderr);
            cmd_report(paths, n, false, NULL);
            fflush(stdout);
        }
        for (int j = 0; j < n; j++)
            free(paths[j]);
        free(paths);
        if (found < 0) {
            struct settings next;
            next_settings(&cur, ev, base_wall, budget, &next);
            cur = next;
        }
    }
    if (found >= 0) {
        char what[512];
        settings_text(&tried[found], what, sizeof what);
        printf("\nrace hunt: confirmed in run %d of %d; it reproduces with:\n  race run%s -- ", found + 1,
               nruns, what);
        for (int j = 0; j < ncmd; j++) {
            if (j)
                putchar(' ');
            shell_word(stdout, cmd[j]);
        }
        printf("\n");
        status = 66;
    } else if (status == RACE_EXIT_OK) {
        printf("race hunt: nothing confirmed in %d run%s (traces in %s):\n", done, done == 1 ? "" : "s", dir);
        for (int r = 0; r < done; r++) {
            char what[512], saw[512];
            settings_text(&tried[r], what, sizeof what);
            evidence_text(&seen[r], saw, sizeof saw);
            printf("  run %d:%s: %s\n", r + 1, what[0] ? what : " defaults", saw);
        }
    }
    free(argv_run);
    free(tried);
    free(seen);
    free(preload);
    free(own);
    return status;
}
