/* ruby_frames.c - Ruby-level backtraces: the current execution context's control frames
 * walked from ec->cfp towards the end of the VM stack, each Ruby frame's label, path and
 * line (decoded from the iseq's succinct line table) or a C method's function, copied as
 * strings into the trace's rbframes section. Runs at a finding, in the crash handler and
 * (the raw walk only) at a guarded free: every load of Ruby's memory is a fault-safe
 * race_arch_load, none follows a pointer into the guarded pool but into a live block,
 * every loop is bounded;
 * no allocation, no lock, no call into Ruby. */
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ruby.h"
#include "shim.h"

/* bench/rubyframes.sh builds this file with -DRACE_RB_BENCH: each capture (a finding's,
 * a crash record's, a guarded free's raw walk) prints one line "race-rb-bench WHAT FRAMES
 * NS" (write(2): it may run in the crash handler). */
#ifdef RACE_RB_BENCH
static uint64_t bench_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts); /* async-signal-safe (POSIX) */
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}
static void bench_line(const char *what, uint64_t a, uint64_t b, uint64_t c)
{
    char buf[128], n[24];
    size_t k = race_strlcpy(buf, "race-rb-bench ", sizeof buf);
    k += race_strlcpy(buf + k, what, sizeof buf - k);
    const uint64_t v[3] = {a, b, c};
    for (int i = 0; i < 3; i++) {
        race_fmt_u64(n, v[i]);
        k += race_strlcpy(buf + k, " ", sizeof buf - k);
        k += race_strlcpy(buf + k, n, sizeof buf - k);
    }
    k += race_strlcpy(buf + k, "\n", sizeof buf - k);
    if (write(2, buf, k) < 0)
        return;
}
#endif

static struct race_rb_hdr *rh;
static uint8_t *area;

void race_rb_init(struct race_hdr *h)
{
    rh = NULL;
    area = NULL;
    if (!h->rbframes.size || h->rbframes.size < sizeof(*rh))
        return;
    rh = (struct race_rb_hdr *)((uint8_t *)h + h->rbframes.off);
    rh->cap = h->rbframes.size - sizeof(*rh);
    area = (uint8_t *)(rh + 1);
}

/* ---- Loads that may fault ---------------------------------------------------------- */

/* A pointer that may be followed: not NULL, not in the first page, canonical, and in
 * the guarded pool only into a live block (Ruby's own structures are sampled into it
 * like any allocation; a freed slot is a finding's, never the walk's). */
static int ok_ptr(uint64_t p)
{
    return p >= 4096 && p < (1ull << 47) && race_pool_readable(p);
}

static int ld(uint64_t p, uint64_t *v)
{
    if (!ok_ptr(p))
        return 0;
    if (p & 7) { /* two aligned words: an unaligned load may cross into an unmapped page */
        uint64_t lo, hi, s = (p & 7) * 8;
        if (!race_arch_load((const void *)(p & ~7ull), &lo) || !race_arch_load((const void *)((p & ~7ull) + 8), &hi))
            return 0;
        *v = lo >> s | hi << (64 - s);
        return 1;
    }
    return race_arch_load((const void *)p, v);
}

static int ld32(uint64_t p, uint32_t *v)
{
    uint64_t w;
    if (!ok_ptr(p))
        return 0;
    if (!race_arch_load((const void *)(p & ~7ull), &w)) /* never crosses a page */
        return 0;
    if ((p & 7) > 4) {
        uint64_t x;
        if (!ld(p, &x))
            return 0;
        *v = (uint32_t)x;
        return 1;
    }
    *v = (uint32_t)(w >> ((p & 7) * 8));
    return 1;
}

/* n bytes from p into out, by aligned words. */
static int ld_bytes(uint64_t p, char *out, size_t n)
{
    for (size_t k = 0; k < n;) {
        uint64_t a = (p + k) & ~7ull, w;
        if (!ok_ptr(a) || !race_arch_load((const void *)a, &w))
            return 0;
        for (size_t b = (p + k) & 7; b < 8 && k < n; b++)
            out[k++] = (char)(w >> (b * 8));
    }
    return 1;
}

static int obj_type(const struct race_ruby_layout *l, uint64_t v, uint64_t *flags)
{
    if (!ok_ptr(v) || (v & 7) || !ld(v, flags))
        return -1;
    return (int)(*flags & l->t_mask);
}

static int imemo_is(const struct race_ruby_layout *l, uint64_t v, uint32_t type)
{
    uint64_t f;
    return obj_type(l, v, &f) == (int)l->t_imemo && ((f >> l->imemo_shift) & l->imemo_mask) == type;
}

/* A String's bytes and length (rstring.h, per version). */
static int rstring(const struct race_ruby_layout *l, uint64_t v, uint64_t *ptr, uint64_t *len)
{
    uint64_t f;
    if (obj_type(l, v, &f) != (int)l->t_string)
        return 0;
    if (f & l->str_noembed) {
        if (!ld(v + l->str_len, len) || !ld(v + l->str_ptr, ptr))
            return 0;
    } else {
        *ptr = v + l->str_ary;
        if (l->str_len_shift)
            *len = (f >> l->str_len_shift) & 0x1f;
        else if (!ld(v + l->str_len, len))
            return 0;
    }
    return *len < (1ull << 32);
}

/* The path of a pathobj: a String, or an Array [path, realpath] (vm_core.h pathobj_path). */
static int pathobj_path(const struct race_ruby_layout *l, uint64_t po, uint64_t *ptr, uint64_t *len)
{
    uint64_t f, s;
    int t = obj_type(l, po, &f);
    if (t == (int)l->t_array) {
        if (f & l->ary_embed) {
            if (!ld(po + l->ary_ary, &s))
                return 0;
        } else {
            uint64_t p, n;
            if (!ld(po + l->ary_len, &n) || !n || !ld(po + l->ary_ptr, &p) || !ld(p, &s))
                return 0;
        }
        po = s;
    }
    return rstring(l, po, ptr, len);
}

/* ---- The walk ---------------------------------------------------------------------- */

/* The line of pc in iseq: iseq.c's calc_pos (the pc points past its instruction) and
 * get_insn_info_succinct_bitvector / succ_index_lookup (VM_INSN_INFO_TABLE_IMPL 2, the
 * same in 3.1, 3.3 and 3.4), through loads that may fault. 0: unknown. */
static int32_t line_of(const struct race_ruby_layout *l, uint64_t body, uint64_t pc)
{
    uint64_t enc, info, succ;
    uint32_t isize, n;
    if (!ld(body + l->body_encoded, &enc) || !ld32(body + l->body_iseq_size, &isize) ||
        !ld(body + l->body_insns, &info) || !ld32(body + l->body_insns_size, &n))
        return 0;
    if (pc < enc || (pc - enc) % 8 || (pc - enc) / 8 > isize || !n)
        return 0;
    uint64_t pos = (pc - enc) / 8;
    if (pos)
        pos--;
    uint32_t index = 1;
    if (n > 1) {
        if (!ld(body + l->body_succ, &succ))
            return 0;
        const uint64_t imm = 54; /* IMMEDIATE_TABLE_SIZE */
        uint64_t w;
        if (pos < imm) {
            if (!ld(succ + pos / 9 * 8, &w))
                return 0;
            index = (uint32_t)(w >> (pos % 9 * 7)) & 0x7f;
        } else {
            /* struct succ_dict_block { unsigned rank; uint64_t small_block_ranks; uint64_t bits[8]; } */
            uint64_t b = succ + imm / 9 * 8 + (pos - imm) / 512 * 80, bit = (pos - imm) % 512;
            uint64_t small, bits;
            uint32_t rank;
            if (!ld32(b, &rank) || !ld(b + 8, &small) || !ld(b + 16 + bit / 64 * 8, &bits))
                return 0;
            uint32_t sb = bit / 64 ? (uint32_t)(small >> ((bit / 64 - 1) * 9)) & 0x1ff : 0;
            index = rank + sb + (uint32_t)__builtin_popcountll(bits << (63 - bit % 64));
        }
    }
    if (index < 1 || index > n)
        return 0;
    uint32_t line;
    if (!ld32(info + (uint64_t)(index - 1) * l->insn_entry_size, &line))
        return 0;
    return (int32_t)line;
}

/* One control frame: a Ruby frame (iseq, pc), a C method (0, its function), or
 * neither (a dummy or ifunc frame: skipped as Ruby's backtrace does). -1: unreadable. */
static int frame_at(const struct race_ruby_layout *l, uint64_t cfp, struct race_rb_raw *out)
{
    uint64_t iseq, pc, ep, flags;
    if (!ld(cfp + l->cfp_iseq, &iseq) || !ld(cfp + l->cfp_pc, &pc) || !ld(cfp + l->cfp_ep, &ep))
        return -1;
    if (iseq) {
        if (!pc)
            return 0;
        if (!imemo_is(l, iseq, l->imemo_iseq))
            return -1;
        out->a = iseq;
        out->b = pc;
        return 1;
    }
    if (!ld(ep, &flags))
        return -1;
    if ((flags & l->frame_magic_mask) != l->frame_magic_cfunc)
        return 0;
    uint64_t me, def, func;
    uint32_t type;
    if (!ld(ep + (uint64_t)(int64_t)l->ep_me_cref * 8, &me) || !imemo_is(l, me, l->imemo_ment) ||
        !ld(me + l->me_def, &def) || !ld32(def, &type) || (type & 0xf) != l->method_type_cfunc ||
        !ld(def + l->def_cfunc_func, &func))
        return -1;
    out->a = 0;
    out->b = func;
    return 1;
}

/* The calling thread's Ruby frames, innermost first, into raw[0..max); returns how many
 * and sets *status. No Ruby on this thread: 0, complete. */
static uint32_t walk(struct race_rb_raw *raw, uint32_t max, uint8_t *status)
{
    *status = RACE_RB_COMPLETE;
    const struct race_ruby_layout *l = race_ruby_layout();
    if (!l || !l->cfp_size || !max || race_ruby_state != RACE_RACTOR_VALID || (race_vm_ptr && !*race_vm_ptr))
        return 0;
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    uint64_t ec = *(const uint64_t *)(tp + race_ec_tpoff), stack, size, cfp;
    if (!ec)
        return 0;
    if (!ld(ec + l->ec_vm_stack, &stack) || !ld(ec + l->ec_vm_stack_size, &size) ||
        !ld(ec + l->ec_cfp, &cfp) || size > (1ull << 28) || !ok_ptr(stack)) {
        *status = RACE_RB_UNREADABLE;
        return 0;
    }
    uint64_t end = stack + size * 8;
    if (cfp < stack || cfp >= end || (end - cfp) % l->cfp_size) {
        *status = RACE_RB_UNREADABLE;
        return 0;
    }
    uint32_t n = 0;
    /* Bounded by the VM stack's size: the frames lie in it, one cfp_size apart. The
     * outermost one is the thread's top (dummy) frame, which Ruby's backtrace skips
     * (vm_backtrace.c, RUBY_VM_NEXT_CONTROL_FRAME of the end). */
    for (end -= l->cfp_size; cfp < end; cfp += l->cfp_size) {
        struct race_rb_raw r;
        int k = frame_at(l, cfp, &r);
        if (k < 0) {
            *status = RACE_RB_UNREADABLE;
            break;
        }
        if (!k)
            continue;
        if (n == max) {
            *status = RACE_RB_TRUNCATED;
            break;
        }
        raw[n++] = r;
    }
    return n;
}

uint32_t race_rb_capture_raw(struct race_rb_raw *raw, uint32_t max)
{
    uint8_t st;
#ifdef RACE_RB_BENCH
    uint64_t t0 = bench_now();
    uint32_t n = walk(raw, max, &st);
    bench_line("raw", n, bench_now() - t0, 0);
#else
    uint32_t n = walk(raw, max, &st);
#endif
    /* the status rides in the count's high byte: slots keep it as one word */
    return n | (uint32_t)st << 24;
}

/* ---- Strings into the section ------------------------------------------------------ */

struct strs {
    uint64_t label, label_len, path, path_len;
    int32_t line;
};

/* Where a Ruby frame's strings are, and its line; 0 when the iseq does not read. */
static int frame_strs(const struct race_ruby_layout *l, const struct race_rb_raw *r, struct strs *s)
{
    uint64_t body, label;
    if (!imemo_is(l, r->a, l->imemo_iseq) || !ld(r->a + l->iseq_body, &body) || !ok_ptr(body))
        return 0;
    uint64_t po;
    if (!ld(body + l->body_label, &label) || !rstring(l, label, &s->label, &s->label_len) ||
        !ld(body + l->body_pathobj, &po) || !pathobj_path(l, po, &s->path, &s->path_len))
        return 0;
    s->line = line_of(l, body, r->b);
    if (s->label_len > RACE_RB_LABEL_MAX)
        s->label_len = RACE_RB_LABEL_MAX;
    if (s->path_len > RACE_RB_PATH_MAX) { /* the end of a path says more than its start */
        s->path += s->path_len - RACE_RB_PATH_MAX;
        s->path_len = RACE_RB_PATH_MAX;
    }
    return 1;
}

static uint64_t frame_bytes(const struct strs *s)
{
    return (sizeof(struct race_rb_frame) + s->label_len + 1 + s->path_len + 1 + 7) & ~7ull;
}

/* Turns raw frames into a record: strings first measured, then the exact space claimed
 * and the strings copied straight into it (no buffer: the crash handler runs on Ruby's
 * 16 KiB alternate stack). A C method takes its caller's path and line, as Ruby's own
 * backtrace does. A frame whose strings do not read ends the record, marked unreadable. */
static uint32_t emit(const struct race_rb_raw *raw, uint32_t n, uint8_t status, uint8_t when, uint32_t tid)
{
    const struct race_ruby_layout *l = race_ruby_layout();
    if (!rh || !l)
        return 0;
    if (n > RACE_RB_FRAMES_MAX)
        n = RACE_RB_FRAMES_MAX;
    struct strs s[RACE_RB_FRAMES_MAX];
    uint64_t bytes = sizeof(struct race_rb_bt);
    uint32_t k = 0;
    for (; k < n; k++) {
        memset(&s[k], 0, sizeof(s[k]));
        if (raw[k].a && !frame_strs(l, &raw[k], &s[k])) {
            status = RACE_RB_UNREADABLE;
            break;
        }
    }
    n = k;
    for (k = n; k-- > 0;) { /* C methods: the nearest Ruby frame outside them */
        if (raw[k].a || k + 1 >= n)
            continue;
        s[k].path = s[k + 1].path;
        s[k].path_len = s[k + 1].path_len;
        s[k].line = s[k + 1].line;
    }
    for (k = 0; k < n; k++)
        bytes += frame_bytes(&s[k]);
    uint64_t at = __atomic_fetch_add(&rh->used, bytes, __ATOMIC_RELAXED);
    if (at + bytes > rh->cap) {
        __atomic_fetch_add(&rh->dropped, 1, __ATOMIC_RELAXED);
        return 0;
    }
    uint8_t *rec = area + at;
    struct race_rb_bt *bt = (struct race_rb_bt *)rec;
    uint8_t *p = rec + sizeof(*bt);
    for (k = 0; k < n; k++) {
        struct race_rb_frame *f = (struct race_rb_frame *)p;
        uint64_t fb = frame_bytes(&s[k]);
        memset(f, 0, fb);
        f->cfunc = raw[k].a ? 0 : raw[k].b;
        f->line = s[k].line;
        f->label_len = (uint16_t)s[k].label_len;
        f->path_len = (uint16_t)s[k].path_len;
        /* read again: a string that no longer reads leaves zeros, never a fault */
        if (s[k].label_len && !ld_bytes(s[k].label, f->text, s[k].label_len))
            memset(f->text, '?', s[k].label_len);
        if (s[k].path_len && !ld_bytes(s[k].path, f->text + s[k].label_len + 1, s[k].path_len))
            memset(f->text + s[k].label_len + 1, '?', s[k].path_len);
        for (uint64_t c = 0; c < s[k].label_len + 1 + s[k].path_len; c++)
            if (c != s[k].label_len && (f->text[c] == 0 || f->text[c] == '\n'))
                f->text[c] = '?'; /* NULs only as terminators; one line per frame */
        p += fb;
    }
    bt->size = (uint32_t)bytes;
    bt->nframes = (uint16_t)n;
    bt->status = status;
    bt->when = when;
    bt->tid = tid;
    bt->pad = 0;
    __atomic_store_n(&bt->commit, RACE_RB_COMMIT, __ATOMIC_RELEASE);
    return (uint32_t)(at / 8 + 1);
}

uint32_t race_rb_capture(uint8_t when)
{
    uint32_t depth = (uint32_t)race_opt.RACE_RUBY_DEPTH;
    if (!depth || !rh)
        return 0;
    struct race_rb_raw raw[RACE_RB_FRAMES_MAX];
    uint8_t st;
#ifdef RACE_RB_BENCH
    uint64_t t0 = bench_now();
#endif
    uint32_t n = walk(raw, depth, &st);
    if (!n && st == RACE_RB_COMPLETE)
        return 0; /* no Ruby on this thread */
    uint32_t id = emit(raw, n, st, when, race_tid(&race_tls));
#ifdef RACE_RB_BENCH
    bench_line(when == RACE_RBW_CRASH ? "crash" : "use", n, bench_now() - t0, 0);
#endif
    return id;
}

uint32_t race_rb_from_raw(const struct race_rb_raw *raw, uint32_t n, uint32_t tid)
{
    uint8_t st = (uint8_t)(n >> 24);
    n &= 0xffffff;
    if (!n && st == RACE_RB_COMPLETE)
        return 0;
#ifdef RACE_RB_BENCH
    uint64_t t0 = bench_now();
    uint32_t id = emit(raw, n, st, RACE_RBW_FREE, tid);
    bench_line("free", n, bench_now() - t0, 0);
    return id;
#else
    return emit(raw, n, st, RACE_RBW_FREE, tid);
#endif
}

/* Record id's header, for the stderr report (findings.c), or NULL. Its frames follow it
 * as the shim wrote them. */
const struct race_rb_bt *race_rb_record(uint32_t id)
{
    if (!rh || !id || (uint64_t)(id - 1) * 8 + sizeof(struct race_rb_bt) > rh->cap)
        return NULL;
    const struct race_rb_bt *bt = (const struct race_rb_bt *)(area + (uint64_t)(id - 1) * 8);
    return __atomic_load_n(&bt->commit, __ATOMIC_ACQUIRE) == RACE_RB_COMMIT ? bt : NULL;
}
