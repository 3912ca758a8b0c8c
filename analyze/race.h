/* race.h - the analyzer's internal interface: its shared types, and every function that
 * crosses a file boundary, grouped under the file that defines it (so it doubles as a map
 * of analyze/). Must never: define an on-disk layout; those live in race_trace.h only. */
#ifndef RACE_H
#define RACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "race_trace.h"

#define RACE_VERSION_STRING "0.1"

/* Exit statuses; `race --help` documents them. */
enum {
    RACE_EXIT_OK = 0,
    RACE_EXIT_FINDINGS = 1,
    RACE_EXIT_BADINPUT = 2, /* unreadable, corrupt or truncated: what could be read is shown */
    RACE_EXIT_USAGE = 64,
};

#define RACE_PRINTF(a, b) __attribute__((format(printf, a, b)))
/* A stack whose first frame is the probed instruction itself (a watched function's
 * entry, as the free of a GC-swept call-info is seen), not a return address. */
#define RACE_PC_EXACT UINT64_MAX

struct race_trace;

/* ---- diag.c: messages on stderr, and allocation that cannot fail quietly ---- */
void diag_problem(struct race_trace *t, const char *fmt, ...) RACE_PRINTF(2, 3);
void diag_note(const struct race_trace *t, const char *fmt, ...) RACE_PRINTF(2, 3);
void *xcalloc(size_t n, size_t size);
void *xreallocarray(void *p, size_t n, size_t size);
char *xstrndup(const char *s, size_t n);
/* A progress line on stderr while a long report is built, only once enabled (race run
 * enables it when stderr is a terminal); what NULL clears the line. */
void progress_enable(bool on);
void progress(const char *what, int i, int n);

/* ---- map.c: open-addressing hash map, uint64 key -> uint64 value ---- */
struct race_map {
    uint64_t *keys;
    uint64_t *vals;
    uint8_t *used;
    size_t cap;   /* a power of two, or 0 before the first insertion */
    size_t count;
};
struct race_kv {
    uint64_t key, val;
};
void map_init(struct race_map *m);
void map_free(struct race_map *m);
uint64_t *map_get(const struct race_map *m, uint64_t key);
uint64_t *map_put(struct race_map *m, uint64_t key, bool *added);
struct race_kv *map_sorted(const struct race_map *m); /* count desc, then key asc; free() it */

/* ---- clock.c: record timestamps -> nanoseconds since the trace started ---- */
struct race_timebase {
    uint32_t source;      /* enum race_clock as the header says */
    bool calibrated;      /* false: TSC times assume 1 tick = 1 ns */
    double ns_per_tick;
    uint64_t ts_lo, mono_lo, ts_hi, mono_hi; /* the furthest-apart calibration pairs */
    uint64_t mono0;       /* CLOCK_MONOTONIC at trace start */
    unsigned npairs;
};
void clock_init(struct race_timebase *c, const struct race_hdr *h);
void clock_add_pair(struct race_timebase *c, uint64_t ts, uint64_t mono);
void clock_finish(struct race_timebase *c, const struct race_trace *t);
int64_t clock_ns(const struct race_timebase *c, uint64_t ts);

/* ---- reader.c: open, validate, iterate ---- */
struct race_chunkinfo {
    uint64_t off;         /* file offset of the chunk header */
    uint64_t gen;         /* generation from state, valid when claimed */
    uint32_t used;        /* records reserved, clamped to RACE_CHUNK_RECS */
    bool claimed;         /* state holds a generation */
    bool held;            /* a thread was still writing it */
};
struct race_modrec {
    uint64_t off;         /* file offset of the record, for messages */
    uint64_t base, lo, hi, ts;
    uint32_t gen;
    uint8_t build_id_len; /* <= 32 after validation */
    uint8_t build_id[32];
    char *path;           /* NUL-terminated copy, possibly "" */
};
struct race_findrec {
    struct race_finding f;        /* detail NUL-terminated after validation */
    uint64_t off;
};
/* A published crash record: commit right, sig in 1..64, has_regs 0 or 1, first <= index
 * (it names an earlier slot or none), stack 0 or an id the depot holds (a corrupt id is
 * reported and cleared; one lost to a truncation is kept: trace_stack says CUT). */
struct race_crashrec {
    struct race_crash c;
    uint64_t off;                 /* file offset of the record, for messages */
    uint32_t index;               /* its slot in the section: a later record's first == index + 1 */
};
enum race_probe_state {
    RACE_PST_OK,                  /* published and well-formed: func, detail NUL-terminated */
    RACE_PST_INCOMPLETE,          /* claimed, never published */
    RACE_PST_CORRUPT,             /* published, but a field is out of range (reported) */
};
struct race_proberec {
    struct race_probe_rec p;
    uint64_t off;                 /* file offset of the record, for messages */
    uint8_t state;                /* enum race_probe_state */
    uint64_t events[3];           /* valid ENTER, EXIT, HIT records in the ring naming it */
};
struct race_stack {
    uint32_t nframes;
    uint64_t pc[RACE_MAX_FRAMES];
};
struct race_trace {
    const char *path;             /* as named on the command line */
    const uint8_t *map;           /* read-only private mapping of the whole file */
    uint64_t size;                /* bytes really in the file */
    struct race_hdr hdr;          /* copy of the header, zero past the end of a short file */
    bool identified;              /* magic, version, byte order and sizes are right */
    unsigned problems;            /* problems reported: the command exits 2 */
    char first_problem[256];      /* the first of them, for JSON output */
    uint64_t limit;               /* bytes the sections may span (file_size if sane) */
    /* ring */
    bool ring_ok;
    uint64_t nchunks;             /* in the ring, per its size */
    struct race_chunkinfo *chunk; /* the chunks whose header lies within the file */
    size_t nchunk;
    uint64_t chunks_claimed, chunks_held, chunks_missing, chunks_clamped;
    uint64_t n_valid, n_torn, n_corrupt, n_lost;  /* lost: reserved, past a truncation */
    uint64_t ts_min, ts_max;      /* over valid records */
    /* stack depot */
    bool depot_ok;
    uint64_t depot_area, depot_len; /* absolute offset and published length of the entries */
    uint64_t depot_unique;
    bool depot_cut;               /* its header lies past a truncation */
    uint64_t stack_ids;           /* distinct ids named by valid records, of which: */
    uint64_t stack_bad, stack_cut; /* corrupt, lost to a truncation */
    /* module log */
    struct race_modrec *mod;
    size_t nmod;
    uint64_t mods_incomplete;
    /* findings */
    struct race_findrec *find;    /* published, well-formed findings */
    size_t nfind;
    uint64_t find_incomplete, find_dropped; /* claimed but unpublished; did not fit */
    /* crashes (version 3): in slot order */
    struct race_crashrec *crash;  /* published, well-formed crash records */
    size_t ncrash;
    uint64_t crash_incomplete, crash_dropped; /* claimed but unpublished; did not fit */
    /* Ruby backtraces: records are read through the ids findings and crashes name */
    bool rb_ok;
    uint64_t rb_area, rb_len;     /* absolute offset of the records and the bytes claimed */
    uint64_t rb_dropped;          /* backtraces that did not fit */
    /* probes: slot i is the record that ENTER/EXIT/HIT events with flags == i name */
    uint8_t probes_state;         /* enum race_probes_section */
    struct race_proberec *probe;  /* the slots whose record lies within the file */
    size_t nprobe;
    uint64_t probes_claimed;      /* min(used, cap): slots past nprobe were truncated away */
    uint64_t probes_ok, probes_incomplete, probes_corrupt, probes_dropped; /* did not fit */
    uint64_t probe_ev_cut;        /* events whose probe record was lost to a truncation */
    struct race_timebase clock;
};
enum race_probes_section {
    RACE_PSEC_NONE,               /* the header names no probes section: nothing is watched */
    RACE_PSEC_BAD,                /* named, but unusable (reported) */
    RACE_PSEC_CUT,                /* its header lies past the end of a truncated file */
    RACE_PSEC_OK,
};
typedef void (*race_rec_fn)(struct race_trace *t, const struct race_rec *r, uint64_t off,
                            void *ctx);
struct race_trace *trace_open(const char *path);
void trace_close(struct race_trace *t);
void trace_scan(struct race_trace *t, race_rec_fn fn, void *ctx);
enum race_stack_status {
    RACE_STACK_OK,
    RACE_STACK_BAD,               /* corrupt, or no such entry: a problem */
    RACE_STACK_CUT,               /* lies past the end of a truncated file */
};
enum race_stack_status trace_stack(const struct race_trace *t, uint32_t id,
                                   struct race_stack *out, const char **why);
/* A Ruby backtrace (common/race_trace.h race_rb_bt), its strings in the mapping. */
struct race_rbframe {
    uint64_t cfunc;               /* 0: a Ruby frame */
    int32_t line;
    const char *label, *path;     /* NUL-terminated, no newline */
};
struct race_rbtrace {
    uint32_t n, tid;
    uint8_t status, when;         /* enum race_rb_status, race_rb_when */
    struct race_rbframe f[RACE_RB_FRAMES_MAX];
};
enum race_stack_status trace_rb(const struct race_trace *t, uint32_t id, struct race_rbtrace *out,
                                const char **why);
struct race_sym;
/* report.c: a Ruby backtrace in a report (text block, JSON members), shared by the
 * other outputs */
bool rb_free_by_gc(struct race_trace *t, struct race_sym *sym, uint32_t stack, uint64_t ts);
const char *rb_label(struct race_sym *sym, const struct race_rbframe *f, uint64_t ts, char *buf,
                     size_t cap);
const char *rb_ending(const struct race_rbtrace *rb, char *buf, size_t cap);
void rb_text(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts, bool by_gc);
void rb_json(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts, int by_gc);
enum race_probe_ref {
    RACE_PREF_OK,
    RACE_PREF_BAD,                /* no such record, or it is incomplete or corrupt */
    RACE_PREF_CUT,                /* the record lies past the end of a truncated file */
};
enum race_probe_ref trace_probe(const struct race_trace *t, uint64_t index,
                                const struct race_proberec **out, const char **why);
static inline bool race_is_probe_event(unsigned kind)
{
    return kind == RACE_EV_ENTER || kind == RACE_EV_EXIT || kind == RACE_EV_HIT;
}
size_t trace_strlen(const char *field, size_t cap);
const char *race_clock_name(uint32_t c);
const char *race_ractor_state_name(uint32_t s);
const char *race_ractor_state_text(uint32_t s);
const char *race_kind_name(unsigned k);
const char *race_sig_name(unsigned sig);            /* "SIGSEGV", or "signal 42" (static buffer) */
const char *race_sicode_name(unsigned sig, int code); /* "SEGV_MAPERR", "SI_USER", ... or NULL */

/* ---- symbolize.c: pc -> function, file:line, offline from the module log ---- */
struct race_frame {
    uint64_t pc;
    const char *func;     /* NULL if unknown */
    const char *file;     /* NULL if unknown */
    int line;             /* 0 if unknown */
    const char *module;   /* basename of the object, NULL if pc lies in none */
    uint64_t modoff;      /* pc - load bias */
};
struct race_sym;
struct race_sym *sym_open(struct race_trace *t);
/* exact: pc is where a fault happened; otherwise a return address (the call is at pc-1). */
void sym_frame(struct race_sym *s, uint64_t pc, uint64_t ts, bool exact, struct race_frame *out);
void sym_close(struct race_sym *s);
const char *sym_file(struct race_sym *s, uint64_t pc, uint64_t ts, uint64_t *bias);

/* ---- stack.c: one depot stack, symbolized, as text lines or a JSON array ---- */
void stack_text(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                uint64_t fault_pc, const char *indent);
const char *stack_json(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                       uint64_t fault_pc); /* returns why an id could not be read, or NULL */
/* "#I 0x... in func file:line" (else module+offset), terminal-safe, no newline. */
void stack_frame_text(FILE *out, const struct race_frame *f, unsigned i, const char *indent);
/* The stack's frames, symbolized, into out[RACE_MAX_FRAMES]; their count (0 if none). */
uint32_t stack_frames(struct race_trace *t, struct race_sym *sym, uint32_t id, uint64_t ts,
                      uint64_t fault_pc, struct race_frame *out);

/* ---- json.c: JSON string escaping ---- */
void json_str(FILE *f, const char *s, size_t len);
void json_cstr(FILE *f, const char *s); /* NULL -> null */
void json_hex(FILE *f, uint64_t v);     /* "0x..." : addresses exceed 2^53 */

/* ---- text.c: untrusted strings made safe for a terminal ---- */
void text_str(FILE *f, const char *s, size_t len);
void text_cmdline(FILE *f, const char *buf, size_t len);

/* ---- stats.c: per-trace tallies, watched functions, `race stats` ---- */
struct race_tally {
    uint64_t by_kind[256];
    uint64_t by_entry[256];       /* frees only */
    uint64_t guarded, quarantined; /* events with these record flags */
    struct race_map by_ractor;
    struct race_map by_tid;
};
/* A watched function: its probe records grouped, in the order the shim wrote them. */
struct race_watched {
    const char *func;             /* in the first of its probe records */
    size_t *slot;                 /* its sound probe records' indexes, ascending */
    size_t nslot;
    uint64_t probes;              /* placed: entry hooks and breakpoints */
    uint64_t by_kind[4];          /* enum race_probe_kind */
    uint64_t by_role[4];          /* enum race_probe_role */
    uint64_t instances;           /* distinct instance numbers, refused ones included */
    uint64_t hits;                /* summed over its records */
    uint64_t events[3];           /* ENTER, EXIT, HIT records still in the ring */
};
struct race_watched *watched_collect(const struct race_trace *t, size_t *n);
void watched_free(struct race_watched *w, size_t n);
void watched_text(const struct race_watched *w); /* "FUNC: 4 probes (...), 116 hits" */
void tally_collect(struct race_trace *t, struct race_tally *y);
void tally_free(struct race_tally *y);
double trace_span_ms(const struct race_trace *t);
void stats_json_trace(struct race_trace *t, bool tables);
int cmd_stats(char **paths, int npaths, bool json);

/* ---- dump.c: `race dump` ---- */
int cmd_dump(char **paths, int npaths, bool json, bool stacks);
int dump_by_time(const void *a, const void *b); /* qsort order of race_rec: ts, tid, seq */

/* ---- last.c: `race report --last MS`, the events before the crash ---- */
extern double report_last_ms;          /* 0: not asked */
void last_text(struct race_trace *t, struct race_sym *sym); /* sym may be NULL */
bool last_parse(const char *s, double *ms);

/* ---- report.c: `race report` ---- */
int cmd_report(char **paths, int npaths, bool json, size_t *nfindings);
/* Findings grouped by kind, use stack and free stack (symbolized): one per finding, in
 * report order (trace, then index); the first of each group carries its size in count,
 * the others 0. Free each key, then the array. */
struct race_member {
    int trace;
    size_t index;
    char *key;
    size_t group, count;  /* group number; members in it (kept on the first) */
    uint64_t seen;        /* this finding's count; on the first, the group's sum */
};
struct race_member *group_findings(struct race_trace **t, struct race_sym **sym, int n, size_t total);
void finding_title(FILE *out, const struct race_finding *f); /* "KIND on address 0x.. at pc 0x.." */
uint64_t free_pc_exact(const struct race_finding *f); /* the free stack's fault_pc for stack_* */
/* What `race report` writes besides its text or JSON (main.c fills it). */
struct report_outputs {
    const char *sarif;            /* file, "-" for stdout (then instead of the text), or NULL */
    const char *html;             /* file or NULL */
    double window_ms;             /* HTML: the last stretch of each trace shown */
    const char *source_root;      /* SARIF: artifact URIs relative to this directory */
};
void report_set_outputs(const struct report_outputs *o);
/* main.c: the parser of those options (and --last), for race report and race run alike */
int report_option(const char *who, int argc, char **argv, int *i, struct report_outputs *o);
int report_options_check(const char *who, bool json, const struct report_outputs *o);

/* ---- sarif.c: `race report --sarif`, SARIF 2.1.0 for code scanning ---- */
int sarif_write(const struct report_outputs *o, struct race_trace **t, struct race_sym **sym,
                int n, const struct race_member *m, size_t total);

/* ---- html.c: `race report --html`, a self-contained timeline page ---- */
int html_write(const struct report_outputs *o, struct race_trace **t, struct race_sym **sym,
               int n, const struct race_member *m, size_t total);

/* ---- crash.c: a crash record explained by the recorded frees (docs/crash.md) ---- */
enum race_via {                   /* how a match was found, best first */
    RACE_VIA_DOUBLE_FREE,         /* the crash is inside a free of a block already freed */
    RACE_VIA_OPERAND,             /* the faulting instruction's memory operand's address */
    RACE_VIA_FAULT,               /* si_addr */
    RACE_VIA_BASE,                /* the operand's base register */
    RACE_VIA_INDEX,               /* its index register */
    RACE_VIA_REG,                 /* any other register */
};
enum race_reuse {
    RACE_REUSE_UNKNOWN,           /* no event says whether the block was allocated again */
    RACE_REUSE_BEFORE,            /* a guarded allocation or a moving realloc put a new block
                                   * there before the crash */
    RACE_REUSE_LATER_FREE,        /* freed again after the crash: allocated again, when unknown */
};
struct race_match {
    uint8_t via;                  /* enum race_via */
    int8_t reg;                   /* enum race_reg for BASE, INDEX, REG; -1 */
    uint8_t reuse;                /* enum race_reuse */
    uint8_t free_entry;
    uint16_t free_flags;
    uint64_t value;               /* the address that lies in the block */
    uint64_t block, size;
    uint64_t free_ts, free_seq;
    uint32_t free_tid, free_ractor, free_stack;
    uint64_t reuse_ts;
    uint32_t reuse_tid;
    /* The free of the same address before this one, if any: the block was freed twice,
     * or allocated again in between (allocations are not recorded). prev_ts 0 = none. */
    uint64_t prev_ts;
    uint32_t prev_tid, prev_ractor, prev_stack;
    uint8_t prev_entry;
};
#define RACE_MAX_MATCH 6
struct race_explain {
    const struct race_crashrec *cr;
    bool decoded, has_mem, has_ea, write;
    char insn[96];                /* AT&T text of the faulting instruction */
    char why_undecoded[96];
    uint32_t mem_size;
    int base, index;              /* enum race_reg of the operand's registers, -1 none */
    uint64_t ea;
    uint32_t poison;              /* registers holding the quarantine's poison, 1 << race_reg */
    bool ea_poison, addr_poison;  /* the operand's base / the fault address came from poison */
    bool in_free;                 /* the crash is inside this thread's free of in_free_addr */
    uint64_t in_free_addr, in_free_ts;
    uint32_t in_free_stack;
    uint8_t in_free_entry;
    struct race_match m[RACE_MAX_MATCH]; /* ranked */
    size_t nm;
};
struct race_freeix;
struct race_freeix *freeix_build(struct race_trace *t);
void freeix_free(struct race_freeix *ix);
void crash_explain(struct race_trace *t, struct race_sym *sym, const struct race_freeix *ix,
                   const struct race_crashrec *cr, struct race_explain *x);
/* Every crash of the trace (first == 0), explained; free() the array. */
size_t crash_explain_all(struct race_trace *t, struct race_sym *sym, struct race_explain **out);
const char *crash_via_name(unsigned via);
const char *crash_code_name(unsigned sig, int code);

/* ---- run.c: race run, the program under librace.so, then the report ---- */
int cmd_run(int argc, char **argv);
char **list_traces(const char *dir, int *n); /* race.*.trace in dir, sorted; free each and the array */

/* ---- hunt.c: race hunt, race run again and again, aimed by the evidence ---- */
int cmd_hunt(int argc, char **argv);

#endif
