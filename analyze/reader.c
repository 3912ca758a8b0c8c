/* reader.c - opens a trace file, validates it against FORMAT.md, and iterates its records.
 * Owns the read-only mapping and every bounds check on what the file says.
 * Must never: trust a field before checking it, read outside the mapping, allocate in
 * proportion to a field's value (only to the file's real size), or give up on a file
 * at its first problem while more of it can still be read. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "race.h"

#define HDR_OFF(field) ((unsigned long long)offsetof(struct race_hdr, field))

/* ---- Bounds-checked access ---------------------------------------------------- */

/* Every read of file contents copies out through here: the mapping has no alignment
 * guarantee at a corrupt offset, and a live producer may change bytes under us, so a
 * value is checked and used from the same private copy. */
static bool copy_in(const struct race_trace *t, uint64_t off, void *dst, size_t len)
{
    if (off > t->size || len > t->size - off)
        return false;
    if (len) /* an empty file has no mapping at all */
        memcpy(dst, t->map + off, len);
    return true;
}

size_t trace_strlen(const char *field, size_t cap)
{
    const char *nul = memchr(field, 0, cap);
    return nul ? (size_t)(nul - field) : cap;
}

/* ---- Names for the header's enumerations --------------------------------------- */

const char *race_clock_name(uint32_t c)
{
    return c == RACE_CLOCK_TSC ? "tsc" : c == RACE_CLOCK_MONOTONIC ? "monotonic" : "unknown";
}

const char *race_ractor_state_name(uint32_t s)
{
    static const char *const n[] = {"unknown", "valid", "not-ruby", "unsupported", "invalid"};
    return s < sizeof n / sizeof n[0] ? n[s] : "corrupt";
}

const char *race_ractor_state_text(uint32_t s)
{
    static const char *const n[] = {
        "not decided (the process ended before the VM ran)",
        "valid (offsets checked on the main thread)",
        "none (not a Ruby process)",
        "unavailable (Ruby version or layout not known to the shim)",
        "invalid (validation failed; ids recorded as 0)",
    };
    return s < sizeof n / sizeof n[0] ? n[s] : "corrupt value";
}

const char *race_kind_name(unsigned k)
{
    static const char *const n[] = {"?", "free", "alloc", "enter", "exit", "hit"};
    return k < sizeof n / sizeof n[0] ? n[k] : "?";
}

const char *race_sig_name(unsigned sig)
{
    static const char *const n[] = {
        NULL, "SIGHUP", "SIGINT", "SIGQUIT", "SIGILL", "SIGTRAP", "SIGABRT", "SIGBUS", "SIGFPE",
        "SIGKILL", "SIGUSR1", "SIGSEGV", "SIGUSR2", "SIGPIPE", "SIGALRM", "SIGTERM", "SIGSTKFLT",
        "SIGCHLD", "SIGCONT", "SIGSTOP", "SIGTSTP", "SIGTTIN", "SIGTTOU", "SIGURG", "SIGXCPU",
        "SIGXFSZ", "SIGVTALRM", "SIGPROF", "SIGWINCH", "SIGIO", "SIGPWR", "SIGSYS",
    };
    static char buf[24];
    if (sig < sizeof n / sizeof n[0] && n[sig])
        return n[sig];
    snprintf(buf, sizeof buf, "signal %u", sig);
    return buf;
}

/* si_code in words: who sent the signal (code <= 0: kill, tkill/raise/abort, sigqueue)
 * or what fault raised it. */
const char *race_sicode_name(unsigned sig, int code)
{
    static const struct {
        int sig, code;
        const char *name;
    } n[] = {
        {0, SI_USER, "SI_USER"}, {0, SI_QUEUE, "SI_QUEUE"}, {0, SI_TIMER, "SI_TIMER"},
        {0, SI_MESGQ, "SI_MESGQ"}, {0, SI_ASYNCIO, "SI_ASYNCIO"}, {0, SI_SIGIO, "SI_SIGIO"},
        {0, SI_TKILL, "SI_TKILL"}, {0, SI_KERNEL, "SI_KERNEL"},
        {SIGSEGV, SEGV_MAPERR, "SEGV_MAPERR"}, {SIGSEGV, SEGV_ACCERR, "SEGV_ACCERR"},
        {SIGSEGV, 3, "SEGV_BNDERR"}, {SIGSEGV, 4, "SEGV_PKUERR"},
        {SIGBUS, BUS_ADRALN, "BUS_ADRALN"}, {SIGBUS, BUS_ADRERR, "BUS_ADRERR"},
        {SIGBUS, BUS_OBJERR, "BUS_OBJERR"}, {SIGBUS, BUS_MCEERR_AR, "BUS_MCEERR_AR"},
        {SIGBUS, BUS_MCEERR_AO, "BUS_MCEERR_AO"},
        {SIGILL, ILL_ILLOPC, "ILL_ILLOPC"}, {SIGILL, ILL_ILLOPN, "ILL_ILLOPN"},
        {SIGILL, ILL_ILLADR, "ILL_ILLADR"}, {SIGILL, ILL_ILLTRP, "ILL_ILLTRP"},
        {SIGILL, ILL_PRVOPC, "ILL_PRVOPC"}, {SIGILL, ILL_PRVREG, "ILL_PRVREG"},
        {SIGILL, ILL_COPROC, "ILL_COPROC"}, {SIGILL, ILL_BADSTK, "ILL_BADSTK"},
        {SIGFPE, FPE_INTDIV, "FPE_INTDIV"}, {SIGFPE, FPE_INTOVF, "FPE_INTOVF"},
        {SIGFPE, FPE_FLTDIV, "FPE_FLTDIV"}, {SIGFPE, FPE_FLTOVF, "FPE_FLTOVF"},
        {SIGFPE, FPE_FLTUND, "FPE_FLTUND"}, {SIGFPE, FPE_FLTRES, "FPE_FLTRES"},
        {SIGFPE, FPE_FLTINV, "FPE_FLTINV"}, {SIGFPE, FPE_FLTSUB, "FPE_FLTSUB"},
    };
    for (size_t i = 0; i < sizeof n / sizeof n[0]; i++)
        if (n[i].code == code && (n[i].sig == 0 ? code <= 0 || code == SI_KERNEL : n[i].sig == (int)sig))
            return n[i].name;
    return NULL;
}

/* ---- Header -------------------------------------------------------------------- */

/* Identity first: past a wrong magic, version, byte order or record size nothing else
 * in the file can be interpreted, so these stop the reading. */
static bool check_identity(struct race_trace *t)
{
    static const char magic[8] = RACE_TRACE_MAGIC;
    const struct race_hdr *h = &t->hdr;
    uint64_t have = t->size;

    for (uint64_t i = 0; i < 8 && i < have; i++)
        if (h->magic[i] != magic[i]) {
            diag_problem(t, "not a race trace (bad magic at offset %llu)",
                         (unsigned long long)i);
            return false;
        }
    if (have < 12) {
        diag_problem(t, "truncated at offset %llu (a trace header alone is %u bytes)",
                     (unsigned long long)have, RACE_HDR_SIZE);
        return false;
    }
    if (h->version < RACE_TRACE_VERSION_MIN || h->version > RACE_TRACE_VERSION) {
        diag_problem(t, "unsupported trace version %u at offset %llu (this race reads versions %u to %u)",
                     h->version, HDR_OFF(version), RACE_TRACE_VERSION_MIN, RACE_TRACE_VERSION);
        return false;
    }
    static const struct {
        size_t off;
        uint32_t want;
        const char *name;
    } fixed[] = {
        {offsetof(struct race_hdr, endian), RACE_TRACE_ENDIAN, "byte order marker"},
        {offsetof(struct race_hdr, hdr_size), RACE_HDR_SIZE, "hdr_size"},
        {offsetof(struct race_hdr, rec_size), RACE_REC_SIZE, "rec_size"},
        {offsetof(struct race_hdr, chunk_size), RACE_CHUNK_SIZE, "chunk_size"},
        {offsetof(struct race_hdr, chunk_recs), RACE_CHUNK_RECS, "chunk_recs"},
    };
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
        if (have < fixed[i].off + 4) {
            diag_problem(t, "truncated at offset %llu (a trace header alone is %u bytes)",
                         (unsigned long long)have, RACE_HDR_SIZE);
            return false;
        }
        uint32_t v;
        memcpy(&v, (const char *)h + fixed[i].off, 4);
        if (v == fixed[i].want)
            continue;
        if (i == 0 && v == __builtin_bswap32(RACE_TRACE_ENDIAN))
            diag_problem(t, "written with the other byte order (marker 0x%08x at offset %zu); "
                         "this race reads little-endian traces", v, fixed[i].off);
        else
            diag_problem(t, "bad %s %u (0x%x) at offset %zu (version %u says %u)",
                         fixed[i].name, v, v, fixed[i].off, RACE_TRACE_VERSION, fixed[i].want);
        return false;
    }
    if (have < HDR_OFF(file_size) + 8) {
        diag_problem(t, "truncated at offset %llu (a trace header alone is %u bytes)",
                     (unsigned long long)have, RACE_HDR_SIZE);
        return false;
    }
    return true;
}

/* The file's real size against file_size; then the limit the sections must respect. */
static bool check_size(struct race_trace *t)
{
    uint64_t fs = t->hdr.file_size;
    t->limit = fs;
    if (fs < RACE_HDR_SIZE) {
        diag_problem(t, "file_size %llu at offset %llu is smaller than the header (%u bytes)",
                     (unsigned long long)fs, HDR_OFF(file_size), RACE_HDR_SIZE);
        t->limit = t->size;
    } else if (t->size < fs) {
        diag_problem(t, "truncated at offset %llu (header says %llu bytes); reading what is there",
                     (unsigned long long)t->size, (unsigned long long)fs);
    } else if (t->size > fs) {
        diag_problem(t, "%llu bytes past the end at offset %llu (header says %llu bytes); "
                     "ignoring them", (unsigned long long)(t->size - fs),
                     (unsigned long long)fs, (unsigned long long)fs);
    }
    if (t->size < RACE_HDR_SIZE) {
        if (t->size >= fs)
            diag_problem(t, "truncated at offset %llu (a trace header alone is %u bytes)",
                         (unsigned long long)t->size, RACE_HDR_SIZE);
        return false; /* the section table may be missing: nothing past it is usable */
    }
    return true;
}

/* Fields that do not stop the reading: a bad one is reported; the lengths come as the
 * file had them, trace_open() having clamped the copy already. */
static void check_fields(struct race_trace *t, uint32_t cmdline_len, uint32_t options_len)
{
    const struct race_hdr *h = &t->hdr;
    if (h->flags & ~(uint32_t)(RACE_FLAG_CLOSED | RACE_FLAG_FORKED | RACE_FLAG_STACKS_OFF))
        diag_problem(t, "unknown flags 0x%x at offset %llu", h->flags, HDR_OFF(flags));
    if (h->clock != RACE_CLOCK_TSC && h->clock != RACE_CLOCK_MONOTONIC)
        diag_problem(t, "unknown clock source %u at offset %llu; times are shown as raw ticks",
                     h->clock, HDR_OFF(clock));
    if (h->ractor_state > RACE_RACTOR_INVALID)
        diag_problem(t, "unknown Ractor-id state %u at offset %llu", h->ractor_state,
                     HDR_OFF(ractor_state));
    if (cmdline_len > sizeof h->cmdline)
        diag_problem(t, "cmdline_len %u at offset %llu exceeds its %zu-byte field",
                     cmdline_len, HDR_OFF(cmdline_len), sizeof h->cmdline);
    if (options_len > sizeof h->options)
        diag_problem(t, "options_len %u at offset %llu exceeds its %zu-byte field",
                     options_len, HDR_OFF(options_len), sizeof h->options);
    /* Printing these goes through trace_strlen(), so an unterminated one is safe; still
     * it means a foreign writer, so say so. */
    if (trace_strlen(h->ruby_version, sizeof h->ruby_version) == sizeof h->ruby_version)
        diag_problem(t, "ruby_version at offset %llu is not NUL-terminated", HDR_OFF(ruby_version));
    if (trace_strlen(h->exe, sizeof h->exe) == sizeof h->exe)
        diag_problem(t, "exe at offset %llu is not NUL-terminated", HDR_OFF(exe));
    if (h->version < 3 && (h->crashes.off || h->crashes.size))
        diag_problem(t, "crashes section at offset %llu is not empty (version %u has none)",
                     HDR_OFF(crashes), h->version);
    if (h->version < 3 && (h->rbframes.off || h->rbframes.size))
        diag_problem(t, "Ruby backtraces section at offset %llu is not empty (version %u has none)",
                     HDR_OFF(rbframes), h->version);
}

static bool check_section(struct race_trace *t, const char *name, const struct race_section *s,
                          size_t entry_off, uint64_t min_size)
{
    unsigned long long off = s->off, size = s->size;
    if (s->off < RACE_HDR_SIZE) {
        diag_problem(t, "%s section at offset %llu overlaps the header (section table entry at "
                     "offset %zu)", name, off, entry_off);
        return false;
    }
    if (s->size > t->limit || s->off > t->limit - s->size) {
        diag_problem(t, "%s section [%llu, +%llu) ends past the file's %llu bytes (section table "
                     "entry at offset %zu)", name, off, size, (unsigned long long)t->limit,
                     entry_off);
        return false;
    }
    if (s->size < min_size) {
        diag_problem(t, "%s section at offset %llu is %llu bytes, too small for its header "
                     "(section table entry at offset %zu)", name, off, size, entry_off);
        return false;
    }
    return true;
}

static bool overlap(const struct race_section *a, const struct race_section *b)
{
    return a->size && b->size && a->off < b->off + b->size && b->off < a->off + a->size;
}

/* The section table: each section inside the file and clear of the others. When two
 * overlap, the later one in the table gives way: the ring holds the events. */
static void check_sections(struct race_trace *t, bool *depot_ok, bool *mods_ok, bool *find_ok,
                           bool *probes_ok, bool *crash_ok, bool *rb_ok)
{
    const struct race_hdr *h = &t->hdr;
    struct {
        const char *name;
        const struct race_section *s;
        size_t entry;
        uint64_t min;
        bool *ok;
    } sec[] = {
        {"ring", &h->ring, offsetof(struct race_hdr, ring), 0, &t->ring_ok},
        {"depot", &h->depot, offsetof(struct race_hdr, depot), sizeof(struct race_depot_hdr),
         depot_ok},
        {"module log", &h->modules, offsetof(struct race_hdr, modules),
         sizeof(struct race_mod_hdr), mods_ok},
        {"findings", &h->findings, offsetof(struct race_hdr, findings),
         sizeof(struct race_find_hdr), find_ok},
        {"probes", &h->probes, offsetof(struct race_hdr, probes),
         sizeof(struct race_probe_hdr), probes_ok},
        {"crashes", &h->crashes, offsetof(struct race_hdr, crashes),
         sizeof(struct race_crash_hdr), crash_ok},
        {"Ruby backtraces", &h->rbframes, offsetof(struct race_hdr, rbframes),
         sizeof(struct race_rb_hdr), rb_ok},
    };
    size_t n = sizeof sec / sizeof sec[0];
    for (size_t i = 0; i < n; i++) {
        /* A trace without findings, probes or crashes has none: an empty entry is not a
         * problem there (a shim that watches nothing writes no probes section; version 2
         * has no crashes section). */
        if ((sec[i].ok == find_ok || sec[i].ok == probes_ok || sec[i].ok == crash_ok ||
             sec[i].ok == rb_ok) &&
            sec[i].s->off == 0 &&
            sec[i].s->size == 0)
            *sec[i].ok = false;
        else
            *sec[i].ok = check_section(t, sec[i].name, sec[i].s, sec[i].entry, sec[i].min);
    }
    for (size_t j = 1; j < n; j++)
        for (size_t i = 0; i < j && *sec[j].ok; i++)
            if (*sec[i].ok && overlap(sec[i].s, sec[j].s)) {
                diag_problem(t, "%s section at offset %llu overlaps the %s section", sec[j].name,
                             (unsigned long long)sec[j].s->off, sec[i].name);
                *sec[j].ok = false;
            }
    if (!t->ring_ok)
        return;
    if (h->ring.size % RACE_CHUNK_SIZE)
        diag_problem(t, "ring size %llu at offset %llu is not a multiple of %u",
                     (unsigned long long)h->ring.size, HDR_OFF(ring.size), RACE_CHUNK_SIZE);
    t->nchunks = h->ring.size / RACE_CHUNK_SIZE;
    if (h->nchunks != t->nchunks)
        diag_problem(t, "nchunks %u at offset %llu disagrees with the ring's %llu chunks",
                     h->nchunks, HDR_OFF(nchunks), (unsigned long long)t->nchunks);
}

/* ---- Stack depot ----------------------------------------------------------------- */

static void read_depot(struct race_trace *t)
{
    const struct race_section *s = &t->hdr.depot;
    struct race_depot_hdr d;
    if (!copy_in(t, s->off, &d, sizeof d)) {
        t->depot_cut = true; /* past a truncation, already reported */
        return;
    }
    t->depot_unique = d.unique;
    if (d.nbuckets == 0 || (d.nbuckets & (d.nbuckets - 1))) {
        diag_problem(t, "depot nbuckets %u at offset %llu is not a power of two; stacks unreadable",
                     d.nbuckets, (unsigned long long)(s->off + offsetof(struct race_depot_hdr, nbuckets)));
        return;
    }
    uint64_t first = sizeof d + 4ull * d.nbuckets;
    if (d.entries_off < first || d.entries_off > s->size || d.entries_size > s->size - d.entries_off) {
        diag_problem(t, "depot entry area [%llu, +%llu) at offset %llu does not fit its %llu-byte "
                     "section; stacks unreadable", (unsigned long long)d.entries_off,
                     (unsigned long long)d.entries_size,
                     (unsigned long long)(s->off + offsetof(struct race_depot_hdr, entries_off)),
                     (unsigned long long)s->size);
        return;
    }
    t->depot_ok = true;
    t->depot_area = s->off + d.entries_off;
    /* used may run past the area when the depot filled up: only the area counts. */
    t->depot_len = d.used < d.entries_size ? d.used : d.entries_size;
}

enum race_stack_status trace_stack(const struct race_trace *t, uint32_t id,
                                   struct race_stack *out, const char **why)
{
    out->nframes = 0;
    *why = NULL;
    if (id == 0) {
        *why = "no stack";
        return RACE_STACK_BAD;
    }
    if (!t->depot_ok) {
        *why = t->depot_cut ? "the depot lies past the end of the truncated file"
                            : "the depot is unreadable";
        return t->depot_cut ? RACE_STACK_CUT : RACE_STACK_BAD;
    }
    uint64_t rel = (uint64_t)(id - 1) * 8;
    struct race_depot_entry e;
    if (rel > t->depot_len || sizeof e > t->depot_len - rel) {
        *why = "id outside the depot's published entries";
        return RACE_STACK_BAD;
    }
    if (!copy_in(t, t->depot_area + rel, &e, sizeof e)) {
        *why = "entry past the end of the truncated file";
        return RACE_STACK_CUT;
    }
    if (e.commit != e.hash) {
        *why = "entry incomplete (commit != hash)";
        return RACE_STACK_BAD;
    }
    if (e.nframes > RACE_MAX_FRAMES) {
        *why = "entry has more than 64 frames";
        return RACE_STACK_BAD;
    }
    if (8ull * e.nframes > t->depot_len - rel - sizeof e) {
        *why = "entry's frames run past the depot";
        return RACE_STACK_BAD;
    }
    if (!copy_in(t, t->depot_area + rel + sizeof e, out->pc, 8ull * e.nframes)) {
        *why = "frames past the end of the truncated file";
        return RACE_STACK_CUT;
    }
    out->nframes = e.nframes;
    return RACE_STACK_OK;
}

/* ---- Module log ------------------------------------------------------------------ */

static void read_modules(struct race_trace *t)
{
    const struct race_section *s = &t->hdr.modules;
    struct race_mod_hdr mh;
    if (!copy_in(t, s->off, &mh, sizeof mh))
        return;
    uint64_t room = s->size - sizeof mh, used = mh.used;
    /* Writers add to used before they check for room (as in the depot), so a full log
     * says more than it holds: a note, not a corruption. */
    bool full = used > room;
    if (full) {
        diag_note(t, "the module log is full (used %llu of %llu bytes, offset %llu): objects "
                  "loaded later were not recorded", (unsigned long long)used,
                  (unsigned long long)room, (unsigned long long)s->off);
        used = room;
    }
    size_t cap = 0;
    for (uint64_t pos = 0; pos + sizeof(struct race_mod) <= used;) {
        uint64_t off = s->off + sizeof mh + pos;
        struct race_mod m;
        if (!copy_in(t, off, &m, sizeof m))
            break;
        bool committed = m.commit == RACE_MOD_COMMIT;
        if (m.size < sizeof m || m.size % 8 || m.size > used - pos) {
            /* An uncommitted tail is a writer that died mid-record; the size may not
             * even be written, so the walk ends there either way. */
            if (committed)
                diag_problem(t, "module record at offset %llu has bad size %u",
                             (unsigned long long)off, m.size);
            else if (!full) /* a full log ends in room nobody wrote */
                t->mods_incomplete++;
            break;
        }
        pos += m.size;
        if (!committed) {
            t->mods_incomplete++;
            continue;
        }
        if ((uint64_t)m.path_len + 1 > m.size - sizeof m) {
            diag_problem(t, "module record at offset %llu: path_len %u does not fit its %u bytes",
                         (unsigned long long)off, m.path_len, m.size);
            continue;
        }
        if (m.build_id_len > sizeof m.build_id) {
            diag_problem(t, "module record at offset %llu: build_id_len %u exceeds %zu",
                         (unsigned long long)off, m.build_id_len, sizeof m.build_id);
            continue;
        }
        if (m.lo > m.hi) {
            diag_problem(t, "module record at offset %llu: lo 0x%llx above hi 0x%llx",
                         (unsigned long long)off, (unsigned long long)m.lo,
                         (unsigned long long)m.hi);
            continue;
        }
        char path[UINT16_MAX + 1];
        if (!copy_in(t, off + sizeof m, path, (size_t)m.path_len + 1))
            break;
        if (path[m.path_len] != 0) {
            diag_problem(t, "module record at offset %llu: path is not NUL-terminated",
                         (unsigned long long)off);
            continue;
        }
        if (t->nmod == cap) {
            cap = cap ? cap * 2 : 16;
            t->mod = xreallocarray(t->mod, cap, sizeof *t->mod);
        }
        struct race_modrec *r = &t->mod[t->nmod++];
        *r = (struct race_modrec){.off = off, .base = m.base, .lo = m.lo, .hi = m.hi,
                                  .ts = m.ts, .gen = m.gen, .build_id_len = m.build_id_len};
        memcpy(r->build_id, m.build_id, sizeof r->build_id);
        r->path = xstrndup(path, m.path_len);
    }
}

/* ---- Ruby backtraces -------------------------------------------------------------- */

/* The section's header: the records are read only through the ids that findings and
 * crash records name (trace_rb), each checked whole there. */
static void read_rb(struct race_trace *t)
{
    const struct race_section *s = &t->hdr.rbframes;
    struct race_rb_hdr rh;
    if (!copy_in(t, s->off, &rh, sizeof rh))
        return; /* past a truncation, already reported */
    uint64_t room = s->size - sizeof rh, cap = rh.cap;
    if (cap > room) {
        diag_problem(t, "Ruby backtraces cap %llu at offset %llu exceeds its section's %llu bytes",
                     (unsigned long long)cap,
                     (unsigned long long)(s->off + offsetof(struct race_rb_hdr, cap)),
                     (unsigned long long)room);
        cap = room;
    }
    t->rb_ok = true;
    t->rb_area = s->off + sizeof rh;
    t->rb_len = rh.used < cap ? rh.used : cap; /* a claim past cap was not written */
    t->rb_dropped = rh.dropped;
}

enum race_stack_status trace_rb(const struct race_trace *t, uint32_t id, struct race_rbtrace *out,
                                const char **why)
{
    memset(out, 0, offsetof(struct race_rbtrace, f));
    if (!t->rb_ok || !id) {
        *why = "no Ruby backtraces section";
        return RACE_STACK_BAD;
    }
    uint64_t rel = (uint64_t)(id - 1) * 8;
    struct race_rb_bt bt;
    if (rel + sizeof bt > t->rb_len) {
        *why = "no such Ruby backtrace";
        return RACE_STACK_BAD;
    }
    if (!copy_in(t, t->rb_area + rel, &bt, sizeof bt)) {
        *why = "past the end of the file";
        return RACE_STACK_CUT;
    }
    if (bt.commit != RACE_RB_COMMIT) {
        *why = "Ruby backtrace not published";
        return RACE_STACK_BAD;
    }
    if (bt.size < sizeof bt || bt.size % 8 || rel + bt.size > t->rb_len ||
        bt.nframes > RACE_RB_FRAMES_MAX || bt.status > RACE_RB_UNREADABLE ||
        bt.when < RACE_RBW_USE || bt.when > RACE_RBW_CRASH) {
        *why = "Ruby backtrace record is corrupt";
        return RACE_STACK_BAD;
    }
    uint64_t at = t->rb_area + rel, end = at + bt.size;
    if (end > t->size) {
        *why = "past the end of the file";
        return RACE_STACK_CUT;
    }
    at += sizeof bt;
    for (uint32_t k = 0; k < bt.nframes; k++) {
        struct race_rb_frame f;
        if (at + sizeof f > end) {
            *why = "Ruby frame past its record";
            return RACE_STACK_BAD;
        }
        memcpy(&f, t->map + at, sizeof f);
        uint64_t text = (uint64_t)f.label_len + 1 + f.path_len + 1;
        uint64_t fb = (sizeof f + text + 7) & ~7ull;
        const char *p = (const char *)t->map + at + sizeof f;
        if (f.label_len > RACE_RB_LABEL_MAX || f.path_len > RACE_RB_PATH_MAX || at + fb > end ||
            memchr(p, 0, f.label_len) || p[f.label_len] != 0 ||
            memchr(p + f.label_len + 1, 0, f.path_len) || p[f.label_len + 1 + f.path_len] != 0 ||
            memchr(p, '\n', text)) {
            *why = "Ruby frame is corrupt";
            return RACE_STACK_BAD;
        }
        out->f[k] = (struct race_rbframe){.cfunc = f.cfunc, .line = f.line, .label = p,
                                          .path = p + f.label_len + 1};
        at += fb;
    }
    if (at != end) {
        *why = "Ruby backtrace's size disagrees with its frames";
        return RACE_STACK_BAD;
    }
    out->n = bt.nframes;
    out->tid = bt.tid;
    out->status = bt.status;
    out->when = bt.when;
    return RACE_STACK_OK;
}

/* A record's reference: kept when it reads (or lies past a truncation), reported and
 * cleared when it does not. */
static void check_rb_ref(struct race_trace *t, const char *what, uint64_t off, uint32_t *id)
{
    if (!*id)
        return;
    struct race_rbtrace *rb = xcalloc(1, sizeof *rb);
    const char *why;
    if (trace_rb(t, *id, rb, &why) == RACE_STACK_BAD) {
        diag_problem(t, "%s at offset %llu: Ruby backtrace %u: %s", what,
                     (unsigned long long)off, *id, why);
        *id = 0;
    }
    free(rb);
}

/* ---- Findings ------------------------------------------------------------------ */

/* A section of fixed-size records after a 64-byte {used, cap} header (findings, crashes):
 * how many slots were claimed and lie within cap (*n), how many claims did not fit
 * (*dropped), and how many records are really in the file (the return value, for the
 * array: it follows the file's size, whatever the counts say). False when the header
 * lies past a truncation (already reported). */
static bool claimed_slots(struct race_trace *t, const char *name, const struct race_section *s,
                          size_t rec_size, uint64_t *n, uint64_t *dropped, uint64_t *present)
{
    struct race_find_hdr hh; /* every such header is {used, cap, pad} */
    static_assert(sizeof(struct race_crash_hdr) == sizeof hh, "same header shape");
    if (!copy_in(t, s->off, &hh, sizeof hh))
        return false;
    uint64_t room = (s->size - sizeof hh) / rec_size;
    uint64_t cap = hh.cap;
    if (cap > room) {
        diag_problem(t, "%s cap %llu at offset %llu exceeds its section's room for %llu", name,
                     (unsigned long long)cap,
                     (unsigned long long)(s->off + offsetof(struct race_find_hdr, cap)),
                     (unsigned long long)room);
        cap = room;
    }
    /* Writers claim a slot before they check it exists: used past cap counts the
     * records that did not fit. */
    *n = hh.used < cap ? hh.used : cap;
    *dropped = hh.used - *n;
    *present = (t->size - s->off - sizeof hh) / rec_size;
    if (*present > *n)
        *present = *n;
    return true;
}

static void read_findings(struct race_trace *t)
{
    const struct race_section *s = &t->hdr.findings;
    const size_t fh = sizeof(struct race_find_hdr);
    uint64_t n, present;
    if (!claimed_slots(t, "findings", s, sizeof(struct race_finding), &n, &t->find_dropped, &present))
        return;
    t->find = xcalloc(present, sizeof *t->find);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = s->off + fh + i * sizeof(struct race_finding);
        struct race_finding f;
        if (!copy_in(t, off, &f, sizeof f))
            break; /* past a truncation, already reported */
        if (f.commit != RACE_FIND_COMMIT) {
            t->find_incomplete++; /* claimed, not yet (or never) published */
            continue;
        }
        if (f.type == 0 || f.type > RACE_FIND_MAX || f.access > RACE_ACCESS_WRITE ||
            f.free_entry > RACE_ENTRY_MAX) {
            diag_problem(t, "finding at offset %llu is corrupt (type %u, access %u, free entry %u)",
                         (unsigned long long)off, f.type, f.access, f.free_entry);
            continue;
        }
        /* Subtypes are per type: only stale-call-info has any (version 2: none). */
        if (f.subtype > (f.type == RACE_FIND_STALE_CI ? RACE_SUB_MAX : RACE_SUB_NONE)) {
            diag_problem(t, "finding at offset %llu is corrupt (subtype %u of type %u)",
                         (unsigned long long)off, f.subtype, f.type);
            continue;
        }
        f.detail[sizeof f.detail - 1] = 0;
        check_rb_ref(t, "finding", off, &f.rb_use);
        check_rb_ref(t, "finding", off, &f.rb_free);
        t->find[t->nfind].f = f;
        t->find[t->nfind++].off = off;
    }
}

/* ---- Crashes ------------------------------------------------------------------- */

/* Like findings, plus what links the records: first names an earlier slot (or none),
 * and the stack must be one the depot holds. A bad field loses the record, never the
 * trace: the rest is still read. */
static void read_crashes(struct race_trace *t)
{
    const struct race_section *s = &t->hdr.crashes;
    const size_t ch = sizeof(struct race_crash_hdr);
    uint64_t n, present;
    /* The shim fills in cap when it claims the first slot: a trace nothing crashed in
     * has used == cap == 0. */
    if (!claimed_slots(t, "crashes", s, sizeof(struct race_crash), &n, &t->crash_dropped, &present))
        return;
    t->crash = xcalloc(present, sizeof *t->crash);
    for (uint64_t i = 0; i < n; i++) {
        uint64_t off = s->off + ch + i * sizeof(struct race_crash);
        struct race_crash c;
        if (!copy_in(t, off, &c, sizeof c))
            break; /* past a truncation, already reported */
        if (c.commit != RACE_CRASH_COMMIT) {
            t->crash_incomplete++; /* claimed, not (or never) published: the writer died */
            continue;
        }
        if (c.sig == 0 || c.sig > 64 || c.has_regs > 1 || c.first > i) {
            diag_problem(t, "crash record %llu at offset %llu is corrupt (sig %u, has_regs %u, "
                         "first %u)", (unsigned long long)i, (unsigned long long)off, c.sig,
                         c.has_regs, c.first);
            continue;
        }
        if (c.stack) {
            struct race_stack st;
            const char *why;
            if (trace_stack(t, c.stack, &st, &why) == RACE_STACK_BAD) {
                diag_problem(t, "crash record %llu at offset %llu: stack %u: %s",
                             (unsigned long long)i, (unsigned long long)off, c.stack, why);
                c.stack = 0;
            }
        }
        check_rb_ref(t, "crash record", off, &c.rb);
        t->crash[t->ncrash++] = (struct race_crashrec){.c = c, .off = off, .index = (uint32_t)i};
    }
}

/* ---- Probes -------------------------------------------------------------------- */

#define PROBE_FIELD(off, field) \
    ((unsigned long long)((off) + offsetof(struct race_probe_rec, field)))

/* One published record: kind and role in range, both strings terminated within their
 * fields (func also non-empty). A bad detail is reported but leaves the record usable:
 * what was probed is still known. */
static uint8_t check_probe(struct race_trace *t, uint64_t i, uint64_t off,
                           struct race_probe_rec *p)
{
    unsigned long long idx = (unsigned long long)i;
    if (p->kind < RACE_PROBEK_HOOK || p->kind > RACE_PROBEK_REFUSED ||
        p->role < RACE_PROBER_ENTRY || p->role > RACE_PROBER_CHECK) {
        diag_problem(t, "probe record %llu at offset %llu is corrupt (kind %u, role %u)", idx,
                     (unsigned long long)off, p->kind, p->role);
        return RACE_PST_CORRUPT;
    }
    size_t flen = trace_strlen(p->func, sizeof p->func);
    if (flen == sizeof p->func) {
        diag_problem(t, "probe record %llu: func at offset %llu is not NUL-terminated within "
                     "its %zu bytes", idx, PROBE_FIELD(off, func), sizeof p->func);
        return RACE_PST_CORRUPT;
    }
    if (flen == 0) {
        diag_problem(t, "probe record %llu: func at offset %llu is empty", idx,
                     PROBE_FIELD(off, func));
        return RACE_PST_CORRUPT;
    }
    if (trace_strlen(p->detail, sizeof p->detail) == sizeof p->detail) {
        diag_problem(t, "probe record %llu: detail at offset %llu is not NUL-terminated within "
                     "its %zu bytes", idx, PROBE_FIELD(off, detail), sizeof p->detail);
        p->detail[sizeof p->detail - 1] = 0;
    }
    return RACE_PST_OK;
}

static void read_probes(struct race_trace *t)
{
    const struct race_section *s = &t->hdr.probes;
    struct race_probe_hdr ph;
    if (!copy_in(t, s->off, &ph, sizeof ph)) {
        t->probes_state = RACE_PSEC_CUT; /* past a truncation, already reported */
        return;
    }
    t->probes_state = RACE_PSEC_OK;
    uint64_t room = (s->size - sizeof ph) / sizeof(struct race_probe_rec);
    uint64_t cap = ph.cap;
    if (cap > room) {
        diag_problem(t, "probes cap %llu at offset %llu exceeds its section's room for %llu",
                     (unsigned long long)cap,
                     (unsigned long long)(s->off + offsetof(struct race_probe_hdr, cap)),
                     (unsigned long long)room);
        cap = room;
    }
    /* As for findings, a writer claims a slot before it checks that the slot exists. */
    uint64_t n = ph.used < cap ? ph.used : cap;
    t->probes_dropped = ph.used - n;
    if (t->probes_dropped)
        diag_note(t, "the probes section is full (used %llu, cap %llu at offset %llu): %llu "
                  "probes did not fit and were not recorded", (unsigned long long)ph.used,
                  (unsigned long long)cap, (unsigned long long)s->off,
                  (unsigned long long)t->probes_dropped);
    t->probes_claimed = n;
    /* Slots follow the records really in the file, whatever the counts say. */
    uint64_t present = (t->size - s->off - sizeof ph) / sizeof(struct race_probe_rec);
    t->nprobe = (size_t)(n < present ? n : present);
    t->probe = xcalloc(t->nprobe, sizeof *t->probe);
    for (uint64_t i = 0; i < t->nprobe; i++) {
        struct race_proberec *r = &t->probe[i];
        r->off = s->off + sizeof ph + i * sizeof(struct race_probe_rec);
        copy_in(t, r->off, &r->p, sizeof r->p); /* within the file: present says so */
        if (r->p.commit != RACE_PROBE_COMMIT) {
            r->state = RACE_PST_INCOMPLETE; /* claimed, not (or never) published */
            t->probes_incomplete++;
            continue;
        }
        r->state = check_probe(t, i, r->off, &r->p);
        if (r->state == RACE_PST_OK)
            t->probes_ok++;
        else
            t->probes_corrupt++;
    }
}

enum race_probe_ref trace_probe(const struct race_trace *t, uint64_t index,
                                const struct race_proberec **out, const char **why)
{
    *out = NULL;
    *why = NULL;
    switch ((enum race_probes_section)t->probes_state) {
    case RACE_PSEC_NONE:
        *why = "names a probe, but the trace has no probes section";
        return RACE_PREF_BAD;
    case RACE_PSEC_BAD:
        *why = "names a probe, but the probes section is unreadable";
        return RACE_PREF_BAD;
    case RACE_PSEC_CUT:
        *why = "the probes section lies past the end of the truncated file";
        return RACE_PREF_CUT;
    case RACE_PSEC_OK:
        break;
    }
    if (index >= t->probes_claimed) {
        *why = "names a probe the probes section does not hold";
        return RACE_PREF_BAD;
    }
    if (index >= t->nprobe) {
        *why = "its probe record lies past the end of the truncated file";
        return RACE_PREF_CUT;
    }
    const struct race_proberec *p = &t->probe[index];
    if (p->state == RACE_PST_INCOMPLETE) {
        *why = "names a probe whose record is incomplete";
        return RACE_PREF_BAD;
    }
    if (p->state == RACE_PST_CORRUPT) {
        *why = "names a probe whose record is corrupt";
        return RACE_PREF_BAD;
    }
    *out = p;
    return RACE_PREF_OK;
}

/* ---- Ring ---------------------------------------------------------------------- */

enum rec_class { REC_VALID, REC_TORN, REC_CORRUPT };

/* FORMAT.md: only a held chunk can hold a record that does not verify (its writer
 * died mid-record); in a released chunk every reserved record was published. */
static enum rec_class classify(const struct race_trace *t, const struct race_chunkinfo *ci,
                               uint32_t i, const struct race_rec *r, const char **why)
{
    uint64_t gen = ci->gen;
    uint32_t tag = (uint32_t)(gen * RACE_CHUNK_RECS + i);
    /* race_rec_sum() reads the record as uint64_t words: hand it uint64_t objects, so
     * no type-based alias analysis can reorder it against the copy. */
    uint64_t w[RACE_REC_SIZE / 8];
    memcpy(w, r, sizeof w);
    uint32_t sum = race_rec_sum((const struct race_rec *)(const void *)w, tag);
    if (r->commit == 0 || r->commit != ((uint64_t)sum << 32 | tag)) {
        if (ci->held)
            return REC_TORN;
        *why = "checksum fails in a released chunk";
        return REC_CORRUPT;
    }
    if (race_is_probe_event(r->kind)) {
        /* flags names the probe record; a record lost to a truncation leaves the event
         * valid (the truncation is the problem), any other bad reference makes it corrupt. */
        const struct race_proberec *p;
        if (r->entry != 0) {
            *why = "a watched-function event names an entry point";
            return REC_CORRUPT;
        }
        if (trace_probe(t, r->flags, &p, why) == RACE_PREF_BAD)
            return REC_CORRUPT;
        return REC_VALID;
    }
    if (r->kind != RACE_EV_FREE && r->kind != RACE_EV_ALLOC) {
        *why = "unknown kind";
        return REC_CORRUPT;
    }
    /* An allocation names no freeing entry point: 0 is fine there, not in a free. */
    if ((r->entry == 0 && r->kind == RACE_EV_FREE) || r->entry > RACE_ENTRY_MAX) {
        *why = "unknown entry point";
        return REC_CORRUPT;
    }
    return REC_VALID;
}

static void read_chunks(struct race_trace *t)
{
    const struct race_hdr *h = &t->hdr;
    /* Allocation follows the chunks really in the file, whatever nchunks claims. */
    uint64_t present = 0;
    while (present < t->nchunks &&
           h->ring.off + present * RACE_CHUNK_SIZE + sizeof(struct race_chunk) <= t->size)
        present++;
    t->chunks_missing = t->nchunks - present;
    t->chunk = xcalloc(present, sizeof *t->chunk);
    t->nchunk = present;
    for (uint64_t k = 0; k < present; k++) {
        struct race_chunkinfo *ci = &t->chunk[k];
        struct race_chunk c;
        ci->off = h->ring.off + k * RACE_CHUNK_SIZE;
        copy_in(t, ci->off, &c, sizeof c);
        uint64_t gen1 = c.state >> RACE_STATE_USED_BITS;
        uint64_t used = c.state & RACE_STATE_USED_MASK;
        unsigned long long off = ci->off;
        if (gen1 == 0) {
            if (used)
                diag_problem(t, "chunk %llu at offset %llu has %llu records but no generation",
                             (unsigned long long)k, off, (unsigned long long)used);
            continue;
        }
        ci->claimed = true;
        ci->held = (c.state & RACE_STATE_HELD) != 0;
        ci->gen = gen1 - 1;
        t->chunks_claimed++;
        t->chunks_held += ci->held;
        /* Reported, but the records are still read: their tags carry the same gen, so a
         * damaged state shows up as torn records, not as wrong events. */
        if (ci->gen % t->nchunks != k)
            diag_problem(t, "chunk %llu at offset %llu holds generation %llu, which belongs "
                         "in chunk %llu", (unsigned long long)k, off,
                         (unsigned long long)ci->gen,
                         (unsigned long long)(ci->gen % t->nchunks));
        else if (ci->gen >= h->next_chunk)
            diag_problem(t, "chunk %llu at offset %llu holds generation %llu but next_chunk "
                         "(offset %llu) says only %llu were claimed", (unsigned long long)k,
                         off, (unsigned long long)ci->gen, HDR_OFF(next_chunk),
                         (unsigned long long)h->next_chunk);
        if (used > RACE_CHUNK_RECS) {
            diag_problem(t, "chunk %llu at offset %llu says %llu records are used (at most %u); "
                         "reading %u", (unsigned long long)k, off, (unsigned long long)used,
                         RACE_CHUNK_RECS, RACE_CHUNK_RECS);
            used = RACE_CHUNK_RECS;
            t->chunks_clamped++;
        }
        ci->used = (uint32_t)used;
        if (c.gen_check == gen1 && c.clock_ts)
            clock_add_pair(&t->clock, c.clock_ts, c.clock_mono);
    }
}

/* The counting pass: every reserved record is classified once, and each stack id a
 * valid record names is looked up once. */
static void count_records(struct race_trace *t)
{
    struct race_map ids;
    map_init(&ids);
    uint64_t first_corrupt = 0;
    const char *corrupt_why = NULL;
    for (size_t k = 0; k < t->nchunk; k++) {
        const struct race_chunkinfo *ci = &t->chunk[k];
        for (uint32_t i = 0; ci->claimed && i < ci->used; i++) {
            uint64_t off = ci->off + (uint64_t)RACE_REC_SIZE * (i + 1);
            struct race_rec r;
            if (!copy_in(t, off, &r, sizeof r)) {
                t->n_lost += ci->used - i;
                break;
            }
            const char *why = NULL;
            switch (classify(t, ci, i, &r, &why)) {
            case REC_TORN:
                t->n_torn++;
                continue;
            case REC_CORRUPT:
                if (t->n_corrupt++ == 0) {
                    first_corrupt = off;
                    corrupt_why = why;
                    if (race_is_probe_event(r.kind))
                        diag_problem(t, "corrupt record at offset %llu: %s (kind %u, entry %u, "
                                     "probe %u)", (unsigned long long)off, why, r.kind, r.entry,
                                     r.flags);
                    else
                        diag_problem(t, "corrupt record at offset %llu: %s (kind %u, entry %u)",
                                     (unsigned long long)off, why, r.kind, r.entry);
                }
                continue;
            case REC_VALID:
                break;
            }
            if (race_is_probe_event(r.kind)) {
                const struct race_proberec *p;
                const char *pwhy;
                if (trace_probe(t, r.flags, &p, &pwhy) == RACE_PREF_OK)
                    t->probe[r.flags].events[r.kind - RACE_EV_ENTER]++;
                else
                    t->probe_ev_cut++;
            }
            if (t->n_valid++ == 0 || r.ts < t->ts_min)
                t->ts_min = r.ts;
            if (t->n_valid == 1 || r.ts > t->ts_max)
                t->ts_max = r.ts;
            bool added;
            if (r.stack == 0)
                continue;
            map_put(&ids, r.stack, &added);
            if (!added)
                continue;
            t->stack_ids++;
            struct race_stack st;
            const char *swhy;
            switch (trace_stack(t, r.stack, &st, &swhy)) {
            case RACE_STACK_OK:
                break;
            case RACE_STACK_CUT: /* the truncation is the problem, reported already */
                t->stack_cut++;
                break;
            case RACE_STACK_BAD:
                if (t->stack_bad++ == 0)
                    diag_problem(t, "record at offset %llu names stack %u: %s",
                                 (unsigned long long)off, r.stack, swhy);
                break;
            }
        }
    }
    if (t->n_corrupt > 1)
        diag_problem(t, "%llu corrupt records in all, the first at offset %llu (%s)",
                     (unsigned long long)t->n_corrupt, (unsigned long long)first_corrupt,
                     corrupt_why);
    if (t->stack_bad > 1)
        diag_problem(t, "%llu of %llu stack ids named by records are corrupt",
                     (unsigned long long)t->stack_bad, (unsigned long long)t->stack_ids);
    map_free(&ids);
}

void trace_scan(struct race_trace *t, race_rec_fn fn, void *ctx)
{
    for (size_t k = 0; k < t->nchunk; k++) {
        const struct race_chunkinfo *ci = &t->chunk[k];
        for (uint32_t i = 0; ci->claimed && i < ci->used; i++) {
            uint64_t off = ci->off + (uint64_t)RACE_REC_SIZE * (i + 1);
            struct race_rec r;
            const char *why;
            if (!copy_in(t, off, &r, sizeof r))
                break;
            if (classify(t, ci, i, &r, &why) == REC_VALID)
                fn(t, &r, off, ctx);
        }
    }
}

/* ---- Open and close -------------------------------------------------------------- */

static bool map_file(struct race_trace *t)
{
    int fd = open(t->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        diag_problem(t, "cannot open: %s", strerror(errno));
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        diag_problem(t, "not a regular file");
        close(fd);
        return false;
    }
    t->size = (uint64_t)st.st_size;
    if (t->size > 0) {
        /* MAP_PRIVATE, read-only: the producer may still be writing through its
         * MAP_SHARED view; we only ever copy values out (see copy_in). */
        void *p = mmap(NULL, t->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p == MAP_FAILED) {
            diag_problem(t, "cannot map %llu bytes: %s", (unsigned long long)t->size,
                         strerror(errno));
            close(fd);
            return false;
        }
        t->map = p;
    }
    close(fd);
    return true;
}

static uint32_t clamp_field(uint32_t len, uint64_t field_off, uint32_t field_size, uint64_t have)
{
    uint64_t room = have <= field_off ? 0 : have - field_off;
    if (room > field_size)
        room = field_size;
    return len > room ? (uint32_t)room : len;
}

struct race_trace *trace_open(const char *path)
{
    struct race_trace *t = xcalloc(1, sizeof *t);
    t->path = path;
    if (!map_file(t))
        return t;
    copy_in(t, 0, &t->hdr, t->size < sizeof t->hdr ? t->size : sizeof t->hdr);
    /* Lengths that index header fields are clamped to their field, and to the bytes
     * really there when the header is cut short, before anything can print them;
     * check_fields() reports bad ones when the header is whole. */
    struct race_hdr *h = &t->hdr;
    uint32_t cmdline_len = h->cmdline_len, options_len = h->options_len;
    h->cmdline_len = clamp_field(h->cmdline_len, HDR_OFF(cmdline), sizeof h->cmdline, t->size);
    h->options_len = clamp_field(h->options_len, HDR_OFF(options), sizeof h->options, t->size);
    clock_init(&t->clock, &t->hdr);
    if (!check_identity(t))
        return t;
    t->identified = true;
    if (!check_size(t))
        return t;
    check_fields(t, cmdline_len, options_len);
    bool depot_ok, mods_ok, find_ok, probes_ok, crash_ok, rb_ok;
    check_sections(t, &depot_ok, &mods_ok, &find_ok, &probes_ok, &crash_ok, &rb_ok);
    if (rb_ok)
        read_rb(t); /* before the findings and crashes that name its records */
    if (depot_ok)
        read_depot(t);
    if (mods_ok)
        read_modules(t);
    if (find_ok)
        read_findings(t);
    if (crash_ok)
        read_crashes(t); /* after the depot: it checks stack ids */
    /* Before the ring: an event is valid only if the probe record it names is. */
    if (probes_ok)
        read_probes(t);
    else if (t->hdr.probes.off || t->hdr.probes.size)
        t->probes_state = RACE_PSEC_BAD;
    if (t->ring_ok) {
        read_chunks(t);
        count_records(t);
    }
    clock_finish(&t->clock, t);
    return t;
}

void trace_close(struct race_trace *t)
{
    if (!t)
        return;
    if (t->map)
        munmap((void *)t->map, t->size);
    for (size_t i = 0; i < t->nmod; i++)
        free(t->mod[i].path);
    free(t->mod);
    free(t->chunk);
    free(t->find);
    free(t->crash);
    free(t->probe);
    free(t);
}
