/* race_trace.h - the on-disk trace format: the one contract between shim/ and analyze/.
 * Owns: every byte layout of a trace file (header, ring chunks, records, stack depot,
 * module log), the record checksum, and the enumerations both sides name.
 * Must never: include anything but <stdint.h>/<stddef.h>/<assert.h>, hold code that
 * allocates, or change a layout without bumping RACE_TRACE_VERSION. See FORMAT.md. */
#ifndef RACE_TRACE_H
#define RACE_TRACE_H

#include <assert.h>
#include <stddef.h>
#include <stdint.h>

#define RACE_TRACE_MAGIC "RACETRC"  /* 7 chars + NUL = 8 bytes */
#define RACE_TRACE_VERSION 3u
#define RACE_TRACE_VERSION_MIN 2u /* the oldest version a reader still accepts */
#define RACE_TRACE_ENDIAN 0x01020304u
#define RACE_HDR_SIZE 8192u
#define RACE_REC_SIZE 64u
#define RACE_CHUNK_SIZE 65536u                       /* one chunk header line + records */
#define RACE_CHUNK_RECS ((RACE_CHUNK_SIZE / RACE_REC_SIZE) - 1u) /* 1023 */
#define RACE_STATE_USED_BITS 24u              /* state = (gen + 1) << 24 | HELD | used */
#define RACE_STATE_HELD (1ull << 23)          /* a thread is writing this chunk */
#define RACE_STATE_USED_MASK (RACE_STATE_HELD - 1ull)
#define RACE_MAX_FRAMES 64u

/* Header flags. */
#define RACE_FLAG_CLOSED 1u      /* the process reached its exit handler */
#define RACE_FLAG_FORKED 2u      /* this trace belongs to a child created by fork() */
#define RACE_FLAG_STACKS_OFF 4u  /* libunwind could not be used: no stacks anywhere */

/* Clock sources: how to turn a record's ts into nanoseconds. */
enum race_clock {
    RACE_CLOCK_TSC = 1,       /* ts = rdtsc; convert with the (tsc, mono_ns) pairs */
    RACE_CLOCK_MONOTONIC = 2, /* ts = CLOCK_MONOTONIC in ns */
};

/* Ractor-id reader state, as the shim last knew it. */
enum race_ractor_state {
    RACE_RACTOR_UNKNOWN = 0,     /* not decided yet (process ended before the VM ran) */
    RACE_RACTOR_VALID = 1,       /* offsets validated on the main thread: ids are real */
    RACE_RACTOR_NOT_RUBY = 2,    /* no ruby_current_ec anywhere in the process */
    RACE_RACTOR_UNSUPPORTED = 3, /* a Ruby whose version or layout we do not know */
    RACE_RACTOR_INVALID = 4,     /* validation failed: ids forced to 0 */
};

/* Event kinds (race_rec.kind). */
enum race_ev {
    RACE_EV_FREE = 1,  /* a block was freed (or released by realloc) */
    RACE_EV_ALLOC = 2, /* a guarded allocation: addr, size, aux = slot index */
    RACE_EV_ENTER = 3, /* a watched function was entered: addr = probe address, size = first
                        * argument, aux = second, flags = index of the probe record */
    RACE_EV_EXIT = 4,  /* it returned: addr = probe address, size = return value, flags as ENTER */
    RACE_EV_HIT = 5,   /* a check probe ran: addr = probe address, size = the value checked
                        * (for rb_vm_ci_lookup: the kwarg block), flags as ENTER */
};

/* Record flags (race_rec.flags). */
#define RACE_RF_GUARDED 1u     /* the block lived in a guarded slot */
#define RACE_RF_QUARANTINED 2u /* the block went to the quarantine instead of libc */

/* Entry points (race_rec.entry): which interposed function saw the event. */
enum race_entry {
    RACE_ENTRY_FREE = 1,
    RACE_ENTRY_REALLOC = 2,      /* realloc moved the block: addr = old, aux = new */
    RACE_ENTRY_REALLOC_ZERO = 3, /* realloc(p, 0) freed p */
    RACE_ENTRY_REALLOCARRAY = 4, /* reallocarray moved the block */
    RACE_ENTRY_RUBY_XFREE = 5,
    RACE_ENTRY_RUBY_SIZED_XFREE = 6,
    RACE_ENTRY_RUBY_XREALLOC = 7,  /* ruby_xrealloc moved the block */
    RACE_ENTRY_RUBY_XREALLOC2 = 8, /* ruby_xrealloc2 moved the block */
    RACE_ENTRY_RUBY_SIZED_XREALLOC = 9,
    RACE_ENTRY_RUBY_SIZED_XREALLOC2 = 10,
    RACE_ENTRY_RB_VM_CI_FREE = 11, /* a GC sweep freed a call-info's slot (watched Ruby 3.4) */
    RACE_ENTRY_MAX = 11,
};

/* Section table entry. All offsets are from the start of the file. */
struct race_section {
    uint64_t off;
    uint64_t size;
};

/* The header, at offset 0. The live counters sit on cache lines of their own
 * because every thread touches them when it claims a chunk. */
struct race_hdr {
    char magic[8];            /* RACE_TRACE_MAGIC */
    uint32_t version;         /* RACE_TRACE_VERSION */
    uint32_t endian;          /* RACE_TRACE_ENDIAN as written by the producer */
    uint32_t hdr_size;        /* RACE_HDR_SIZE */
    uint32_t rec_size;        /* RACE_REC_SIZE */
    uint32_t chunk_size;      /* RACE_CHUNK_SIZE */
    uint32_t chunk_recs;      /* RACE_CHUNK_RECS */
    uint64_t file_size;
    uint32_t nchunks;         /* ring.size / chunk_size */
    uint32_t flags;           /* RACE_FLAG_* (written by the owner only) */
    struct race_section ring;
    struct race_section depot;
    struct race_section modules;
    struct race_section findings;    /* race_find_hdr + race_finding[]: never overwritten */
    struct race_section probes;      /* race_probe_hdr + race_probe_rec[]: what is watched */
    struct race_section crashes;     /* race_crash_hdr + race_crash[] (version 3; zero in 2) */
    struct race_section rbframes;    /* race_rb_hdr + race_rb_bt records: Ruby-level backtraces
                                      * (version 3 from the Ruby-frames shim on; zero before) */
    int32_t pid;
    int32_t ppid;
    uint32_t clock;           /* enum race_clock */
    uint32_t ractor_state;    /* enum race_ractor_state */
    uint64_t start_realtime_ns; /* CLOCK_REALTIME at start, for humans */
    uint64_t clock_ts0;       /* ts at start ... */
    uint64_t clock_mono0;     /* ... and CLOCK_MONOTONIC ns at the same moment */
    uint64_t clock_ts1;       /* ts at exit (0 if the process did not exit cleanly) */
    uint64_t clock_mono1;
    uint64_t early_frees;     /* frees seen before the trace existed (not recorded) */
    uint32_t stack_sample;    /* RACE_STACK_SAMPLE in force */
    uint32_t stack_depth;     /* RACE_STACK_DEPTH in force */
    uint32_t ractor_off[4];   /* ec->thread, thread->ractor, ractor->id, spare */
    uint8_t pad0[8];
    /* offset 256 */
    uint64_t next_chunk;      /* chunks claimed so far (generation counter) */
    uint8_t pad1[56];
    uint64_t overwritten;     /* committed records lost to overwrite-oldest, exact */
    uint8_t pad2[56];
    uint64_t dropped;         /* events that could not be recorded at all */
    uint64_t stack_dropped;   /* stacks not stored: depot full */
    uint8_t pad3[48];
    /* offset 448 */
    char ruby_version[64];    /* "3.4.5" or "" */
    char exe[448];            /* /proc/self/exe */
    /* offset 960 */
    uint32_t cmdline_len;     /* bytes used in cmdline: argv strings, each NUL-terminated */
    uint32_t options_len;
    uint8_t pad4[56];
    /* offset 1024 */
    char cmdline[4096];
    /* offset 5120 */
    char options[3072];       /* "NAME=value\n" for every RACE_* option in force */
};

/* A ring chunk's first 64 bytes. state = (gen + 1) << 24 | HELD | used: gen is the
 * value of next_chunk the owner claimed, used the number of records it reserved, HELD
 * set while its owner may still write (a held chunk is never reclaimed). */
struct race_chunk {
    uint64_t state;
    uint32_t tid;             /* owner's native thread id */
    uint32_t pad;
    uint64_t clock_ts;        /* ts and CLOCK_MONOTONIC ns when claimed: a calibration pair */
    uint64_t clock_mono;
    uint64_t gen_check;       /* gen + 1 again, written after tid/clock: pair is valid if equal */
    uint8_t pad2[24];
};

/* One event, 64 bytes, one cache line. commit is written last, with release order:
 * low 32 bits = (uint32_t)(gen * RACE_CHUNK_RECS + index), high 32 bits = race_rec_sum(). */
struct race_rec {
    uint64_t commit;
    uint8_t kind;             /* enum race_ev */
    uint8_t entry;            /* enum race_entry */
    uint16_t flags;
    uint32_t tid;             /* native thread id (gettid) */
    uint32_t ractor;          /* Ractor id, 0 = none/unknown */
    uint32_t stack;           /* stack depot id, 0 = no stack */
    uint64_t seq;             /* per-thread sequence, from 1 */
    uint64_t ts;              /* see race_hdr.clock */
    uint64_t addr;            /* the freed block */
    uint64_t size;            /* its usable size */
    uint64_t aux;             /* entry-specific (new address for realloc) */
};

/* Stack depot: a header, a bucket array, then entries. A stack id is the
 * entry's offset from the start of the entry area, in 8-byte units, plus 1. */
struct race_depot_hdr {
    uint64_t used;            /* bytes handed out in the entry area */
    uint32_t nbuckets;        /* power of two */
    uint32_t pad;
    uint64_t entries_off;     /* from the start of the depot section */
    uint64_t entries_size;
    uint64_t unique;          /* entries published */
    uint8_t pad2[24];
};
struct race_depot_entry {
    uint32_t next;            /* next id in the bucket chain, 0 = end */
    uint32_t hash;
    uint16_t nframes;
    uint16_t pad;
    uint32_t commit;          /* == hash when the frames are complete */
    uint64_t pc[];            /* return addresses, innermost first */
};

/* Module log: an append-only list of variable-size records. */
struct race_mod_hdr {
    uint64_t used;            /* bytes handed out after this header */
    uint64_t count;
    uint8_t pad[48];
};
struct race_mod {
    uint32_t size;            /* of this record, multiple of 8 */
    uint32_t commit;          /* RACE_MOD_COMMIT once complete */
    uint64_t base;            /* load bias (dlpi_addr) */
    uint64_t lo, hi;          /* lowest and highest mapped address of its PT_LOAD segments */
    uint64_t ts;              /* when this mapping was recorded */
    uint32_t gen;             /* 0 = at start-up, n = after the n-th dlopen */
    uint16_t path_len;        /* without NUL */
    uint8_t build_id_len;
    uint8_t pad;
    uint8_t build_id[32];
    char path[];              /* path_len bytes + NUL, padded to 8 */
};
#define RACE_MOD_COMMIT 0x4d4f444bu /* "MODK" */

/* Findings: what the detectors saw, in a section of their own that overwriting
 * cannot reach. Each record carries everything the report needs (the block, its
 * allocation and its free), so a finding stays whole even when the ring has long
 * overwritten the events around it. Stack ids refer to the depot. */
enum race_find {
    RACE_FIND_USE_AFTER_FREE = 1,  /* access to a freed guarded block */
    RACE_FIND_OVERFLOW = 2,        /* access to the guard page after a guarded block */
    RACE_FIND_UNDERFLOW = 3,       /* access to the guard page before a guarded block */
    RACE_FIND_DOUBLE_FREE = 4,     /* free of a guarded block already freed */
    RACE_FIND_INVALID_FREE = 5,    /* free of a pointer inside a guarded slot, not its start */
    RACE_FIND_OVERFLOW_AT_FREE = 6,/* the slack after a guarded block was written (seen at free) */
    RACE_FIND_WRITE_AFTER_FREE = 7,/* a quarantined block's poison changed before it left */
    RACE_FIND_WILD_ACCESS = 8,     /* access to a guard-pool page no block ever used */
    RACE_FIND_STALE_CI = 9,        /* a watched function was handed freed memory */
    RACE_FIND_MAX = 9,
};
/* Finding subtypes (race_finding.subtype): what exactly a detector saw, as data, so the
 * analyzer never parses detail. 0 = none/unknown; numbers are per type. */
enum race_find_sub {
    RACE_SUB_NONE = 0,
    /* RACE_FIND_STALE_CI */
    RACE_SUB_CI_KWARG_FREED = 1, /* the call-info's kwarg block was freed */
    RACE_SUB_CI_NO_KWARG = 2,    /* its kwarg pointer leads to no kwarg block (call-info gone) */
    RACE_SUB_CI_SWEPT = 3,       /* the call-info's slot was swept by the GC */
    RACE_SUB_CI_GC_MARK = 4,     /* the GC marked a call-info a sweep had freed (T_NONE) */
    RACE_SUB_MAX = 4,
};
enum race_access { RACE_ACCESS_UNKNOWN = 0, RACE_ACCESS_READ = 1, RACE_ACCESS_WRITE = 2 };

struct race_find_hdr {
    uint64_t used;            /* records claimed (may exceed cap: the excess was dropped) */
    uint64_t cap;             /* records the section holds */
    uint8_t pad[48];
};
struct race_finding {
    uint32_t commit;          /* RACE_FIND_COMMIT once complete */
    uint16_t type;            /* enum race_find */
    uint8_t access;           /* enum race_access */
    uint8_t free_entry;       /* enum race_entry of the free */
    uint32_t access_size;     /* bytes, 0 = unknown */
    uint32_t tid;             /* who made the access (or the bad free) */
    uint32_t ractor;
    uint32_t stack;           /* use stack (depot id), 0 = none */
    uint64_t addr;            /* accessed (or freed) address */
    uint64_t pc;              /* faulting instruction, 0 = none */
    uint64_t ts;
    uint64_t block_addr;      /* the block it belongs to (0 = unknown) */
    uint64_t block_size;
    uint64_t alloc_ts;        /* 0 = allocation unknown */
    uint32_t alloc_tid, alloc_ractor, alloc_stack;
    uint32_t slot;            /* guarded slot index, UINT32_MAX = not a guarded block */
    uint64_t free_ts;         /* 0 = not freed (overflow of a live block) */
    uint32_t free_tid, free_ractor, free_stack;
    uint32_t pad;
    uint64_t free_seq;        /* the FREE record's seq on free_tid */
    char detail[64];          /* e.g. the watched function, NUL-terminated */
    uint64_t count;           /* times this finding was seen in the process (version 3;
                               * 0 in version 2 = once): updated after publication */
    uint16_t subtype;         /* enum race_find_sub, by type (version 3; 0 in version 2) */
    uint16_t pad1;
    uint32_t rb_use;          /* Ruby backtrace of the access (race_rb_bt id), 0 = none */
    uint32_t rb_free;         /* Ruby backtrace of the free (guarded slots), 0 = none */
    uint8_t pad2[20];
};
#define RACE_FIND_COMMIT 0x444e4946u /* "FIND" */

/* Crashes: one record per fatal signal that was not the shim's own (SIGSEGV, SIGBUS,
 * SIGILL, SIGFPE, SIGABRT), written by the signal handler before it chains to the
 * program's handler, into a section the ring cannot overwrite. The first is the crash;
 * a later one raised while the program handled it (Ruby's SIGSEGV handler ends in
 * abort()) names it in `first`. */
enum race_reg {
    RACE_REG_RAX, RACE_REG_RBX, RACE_REG_RCX, RACE_REG_RDX, RACE_REG_RSI, RACE_REG_RDI,
    RACE_REG_RBP, RACE_REG_RSP, RACE_REG_R8, RACE_REG_R9, RACE_REG_R10, RACE_REG_R11,
    RACE_REG_R12, RACE_REG_R13, RACE_REG_R14, RACE_REG_R15, RACE_REG_RIP, RACE_REG_EFLAGS,
    RACE_REG_COUNT,
};
struct race_crash_hdr {
    uint64_t used;            /* records claimed (may exceed cap: the excess was dropped) */
    uint64_t cap;
    uint8_t pad[48];
};
struct race_crash {
    uint32_t commit;          /* RACE_CRASH_COMMIT once complete */
    uint8_t sig;              /* signal number */
    uint8_t has_regs;         /* regs[] and pc come from the signal context */
    uint16_t first;           /* 0: the process's crash; n: raised while crash n-1 was handled */
    int32_t code;             /* si_code (SI_USER, SI_TKILL for raise/abort, SEGV_MAPERR, ...) */
    uint32_t tid;
    uint32_t ractor;
    uint32_t stack;           /* unwound from the signal context (depot id), 0 = none */
    uint64_t ts;
    uint64_t addr;            /* si_addr (the fault address for SIGSEGV/SIGBUS/SIGILL/SIGFPE) */
    uint64_t pc;              /* the interrupted instruction */
    uint64_t regs[RACE_REG_COUNT];
    uint64_t seq;             /* the thread's event sequence number at the crash */
    uint32_t rb;              /* Ruby backtrace of the crashing thread (race_rb_bt id), 0 = none */
    uint8_t pad[52];
};
#define RACE_CRASH_COMMIT 0x48535243u /* "CRSH" */

/* Ruby-level backtraces: the Ruby frames of the thread that made an access, a free or a
 * crash, copied as strings while the process was alive, so the analyzer needs nothing
 * from it. Variable-size records bump-allocated after the header (8-byte units); an id
 * is a record's offset from the end of the header in 8-byte units, plus 1. Findings and
 * crash records name them; a record is only read through such a reference. */
enum race_rb_status {
    RACE_RB_COMPLETE = 0,   /* walked to the outermost frame */
    RACE_RB_TRUNCATED = 1,  /* RACE_RUBY_DEPTH frames were taken, more were there */
    RACE_RB_UNREADABLE = 2, /* frame `nframes` (0-based) could not be read: the walk ended */
};
enum race_rb_when {
    RACE_RBW_USE = 1,       /* the access of a finding */
    RACE_RBW_FREE = 2,      /* the free of a guarded block (recorded as raw frames at the free) */
    RACE_RBW_CRASH = 3,     /* a crash record */
};
struct race_rb_hdr {
    uint64_t used;            /* bytes claimed after this header (may exceed cap) */
    uint64_t cap;             /* bytes after this header */
    uint64_t dropped;         /* backtraces that did not fit */
    uint8_t pad[40];
};
struct race_rb_bt {
    uint32_t commit;          /* RACE_RB_COMMIT once complete */
    uint32_t size;            /* of this record with its frames, a multiple of 8 */
    uint16_t nframes;
    uint8_t status;           /* enum race_rb_status */
    uint8_t when;             /* enum race_rb_when */
    uint32_t tid;
    uint64_t pad;
};
struct race_rb_frame {
    uint64_t cfunc;           /* a C method's function (symbolize it); 0 = a Ruby frame */
    int32_t line;             /* 0 = unknown (a C method has its caller's line) */
    uint16_t label_len;       /* bytes, without the NUL */
    uint16_t path_len;
    char text[];              /* label NUL path NUL, padded to 8 */
};
#define RACE_RB_COMMIT 0x54425252u /* "RRBT" */
#define RACE_RB_LABEL_MAX 127u /* longer labels and paths are cut (keeping the path's end) */
#define RACE_RB_PATH_MAX 255u
#define RACE_RB_FRAMES_MAX 64u /* RACE_RUBY_DEPTH's upper bound */

/* Probes: one record per place a watched function is probed, or refused. */
enum race_probe_kind {
    RACE_PROBEK_HOOK = 1,    /* entry hook: a jump to a trampoline; ENTER and EXIT events */
    RACE_PROBEK_BREAK = 2,   /* int3 breakpoint, displaced instruction run out of line */
    RACE_PROBEK_REFUSED = 3, /* could not be probed safely: detail says why */
};
enum race_probe_role {
    RACE_PROBER_ENTRY = 1,   /* the out-of-line function's entry */
    RACE_PROBER_INLINE = 2,  /* an inlined copy's entry */
    RACE_PROBER_CHECK = 3,   /* a check site (rb_vm_ci_lookup: the kwarg references++) */
};
struct race_probe_hdr {
    uint64_t used;            /* records claimed (may exceed cap) */
    uint64_t cap;
    uint8_t pad[48];
};
struct race_probe_rec {
    uint32_t commit;          /* RACE_PROBE_COMMIT once complete */
    uint8_t kind;             /* enum race_probe_kind */
    uint8_t role;             /* enum race_probe_role */
    uint16_t instance;        /* which instance of the function (0 = out of line, if any) */
    uint64_t addr;            /* run-time address probed */
    uint64_t hits;            /* times it fired (updated while the process runs) */
    char func[48];            /* the watched function */
    char detail[120];         /* inline chain, check register, or why it was refused */
};
#define RACE_PROBE_COMMIT 0x424f5250u /* "PROB" */

static_assert(sizeof(struct race_hdr) == RACE_HDR_SIZE, "header size");
static_assert(offsetof(struct race_hdr, next_chunk) == 256, "next_chunk line");
static_assert(offsetof(struct race_hdr, overwritten) == 320, "overwritten line");
static_assert(offsetof(struct race_hdr, dropped) == 384, "dropped line");
static_assert(offsetof(struct race_hdr, ruby_version) == 448, "ruby_version");
static_assert(offsetof(struct race_hdr, cmdline_len) == 960, "cmdline_len");
static_assert(offsetof(struct race_hdr, cmdline) == 1024, "cmdline");
static_assert(offsetof(struct race_hdr, options) == 5120, "options");
static_assert(sizeof(struct race_chunk) == RACE_REC_SIZE, "chunk header is one record");
static_assert(sizeof(struct race_rec) == RACE_REC_SIZE, "record size");
static_assert(offsetof(struct race_rec, kind) == 8, "rec.kind");
static_assert(offsetof(struct race_rec, seq) == 24, "rec.seq");
static_assert(offsetof(struct race_rec, aux) == 56, "rec.aux");
static_assert(sizeof(struct race_depot_hdr) == 64, "depot header");
static_assert(sizeof(struct race_depot_entry) == 16, "depot entry");
static_assert(sizeof(struct race_mod_hdr) == 64, "module log header");
static_assert(sizeof(struct race_mod) == 80, "module record");
static_assert(sizeof(struct race_find_hdr) == 64, "findings header");
static_assert(sizeof(struct race_probe_hdr) == 64, "probes header");
static_assert(sizeof(struct race_probe_rec) == 192, "probe record");
static_assert(offsetof(struct race_probe_rec, hits) == 16, "probe.hits");
static_assert(sizeof(struct race_finding) == 224, "finding record");
static_assert(offsetof(struct race_finding, addr) == 24, "finding.addr");
static_assert(offsetof(struct race_finding, free_seq) == 112, "finding.free_seq");
static_assert(offsetof(struct race_finding, count) == 184, "finding.count");
static_assert(offsetof(struct race_finding, subtype) == 192, "finding.subtype");
static_assert(sizeof(struct race_crash_hdr) == 64, "crashes header");
static_assert(sizeof(struct race_crash) == 256, "crash record");
static_assert(offsetof(struct race_crash, regs) == 48, "crash.regs");
static_assert(offsetof(struct race_crash, rb) == 200, "crash.rb");
static_assert(offsetof(struct race_finding, rb_use) == 196, "finding.rb_use");
static_assert(offsetof(struct race_finding, rb_free) == 200, "finding.rb_free");
static_assert(offsetof(struct race_hdr, rbframes) == offsetof(struct race_hdr, crashes) + 16, "hdr.rbframes");
static_assert(offsetof(struct race_hdr, pid) == offsetof(struct race_hdr, rbframes) + 16, "hdr.pid");
static_assert(sizeof(struct race_rb_hdr) == 64, "Ruby backtraces header");
static_assert(sizeof(struct race_rb_bt) == 24, "Ruby backtrace record");
static_assert(sizeof(struct race_rb_frame) == 16, "Ruby frame");

/* The record checksum over the seven payload words w[1..7] (w[0] is the commit word):
 * folded with rotations (each word lands on different bit positions, so a word from
 * another writer or a word never written changes the fold), mixed once with the
 * commit tag. Independent operations only: it runs on every event. */
static inline uint32_t race_rec_sum7(uint64_t w1, uint64_t w2, uint64_t w3, uint64_t w4,
                                     uint64_t w5, uint64_t w6, uint64_t w7, uint32_t tag)
{
#define RACE_ROTL(x, k) (((x) << (k)) | ((x) >> (64 - (k))))
    uint64_t a = w1 ^ RACE_ROTL(w2, 9) ^ RACE_ROTL(w3, 18) ^ RACE_ROTL(w4, 27);
    uint64_t b = RACE_ROTL(w5, 36) ^ RACE_ROTL(w6, 45) ^ RACE_ROTL(w7, 54);
#undef RACE_ROTL
    uint64_t h = (a ^ b ^ tag) * 0xff51afd7ed558ccdull;
    return (uint32_t)(h ^ (h >> 32)) | 1u; /* never 0: 0 marks an unwritten record */
}

static inline uint32_t race_rec_sum_words(const uint64_t *w, uint32_t tag)
{
    return race_rec_sum7(w[1], w[2], w[3], w[4], w[5], w[6], w[7], tag);
}

static inline uint32_t race_rec_sum(const struct race_rec *r, uint32_t tag)
{
    uint64_t w[8]; /* a copy, not a cast: reading the fields as uint64_t would break aliasing */
    __builtin_memcpy(w, r, sizeof(w));
    return race_rec_sum_words(w, tag);
}

/* The record's words as the producer builds them (little-endian x86-64 layout). */
static inline uint64_t race_rec_word1(uint8_t kind, uint8_t entry, uint16_t flags, uint32_t tid)
{
    return (uint64_t)kind | (uint64_t)entry << 8 | (uint64_t)flags << 16 | (uint64_t)tid << 32;
}

/* Hash of a stack, used by the depot for deduplication. */
static inline uint32_t race_stack_hash(const uint64_t *pc, uint32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    for (uint32_t i = 0; i < n; i++) {
        h ^= pc[i];
        h *= 0x100000001b3ull;
        h ^= h >> 31;
    }
    return (uint32_t)(h ^ (h >> 32)) | 1u;
}

/* Section sizes in bytes, in file order after the header and the ring. */
struct race_layout {
    uint64_t nchunks, depot, modules, findings, probes, crashes, rbframes;
};

static inline uint64_t race_layout_size(const struct race_layout *l)
{
    return RACE_HDR_SIZE + l->nchunks * RACE_CHUNK_SIZE + l->depot + l->modules + l->findings +
           l->probes + l->crashes + l->rbframes;
}

/* Fills the identity fields and the section table for a file laid out as FORMAT.md
 * draws it (the writer of every trace, the shim or a test's, lays it out here) and
 * returns the file's size. Everything else in the header is left as it was. */
static inline uint64_t race_hdr_layout(struct race_hdr *h, const struct race_layout *l)
{
    __builtin_memcpy(h->magic, RACE_TRACE_MAGIC, 8);
    h->version = RACE_TRACE_VERSION;
    h->endian = RACE_TRACE_ENDIAN;
    h->hdr_size = RACE_HDR_SIZE;
    h->rec_size = RACE_REC_SIZE;
    h->chunk_size = RACE_CHUNK_SIZE;
    h->chunk_recs = RACE_CHUNK_RECS;
    h->nchunks = (uint32_t)l->nchunks;
    uint64_t off = RACE_HDR_SIZE;
    struct race_section *s[] = {&h->ring, &h->depot, &h->modules, &h->findings, &h->probes,
                                &h->crashes, &h->rbframes};
    const uint64_t size[] = {l->nchunks * RACE_CHUNK_SIZE, l->depot, l->modules, l->findings,
                             l->probes, l->crashes, l->rbframes};
    for (unsigned i = 0; i < 7; i++) {
        s[i]->off = size[i] ? off : 0;
        s[i]->size = size[i];
        off += size[i];
    }
    h->file_size = off;
    return off;
}

static inline const char *race_probe_kind_name(unsigned k)
{
    return k == RACE_PROBEK_HOOK ? "entry-hook" : k == RACE_PROBEK_BREAK ? "breakpoint"
         : k == RACE_PROBEK_REFUSED ? "refused" : "?";
}

static inline const char *race_probe_role_name(unsigned r)
{
    return r == RACE_PROBER_ENTRY ? "entry" : r == RACE_PROBER_INLINE ? "inlined"
         : r == RACE_PROBER_CHECK ? "check" : "?";
}

static inline const char *race_find_name(unsigned f)
{
    static const char *const names[] = {
        "?", "heap-use-after-free", "heap-buffer-overflow", "heap-buffer-underflow", "double-free",
        "invalid-free", "heap-buffer-overflow-at-free", "write-after-free", "wild-access",
        "stale-call-info",
    };
    return f <= RACE_FIND_MAX ? names[f] : "?";
}

static inline const char *race_reg_name(unsigned r)
{
    static const char *const names[] = {
        "rax", "rbx", "rcx", "rdx", "rsi", "rdi", "rbp", "rsp", "r8", "r9", "r10", "r11",
        "r12", "r13", "r14", "r15", "rip", "eflags",
    };
    return r < RACE_REG_COUNT ? names[r] : "?";
}

static inline const char *race_entry_name(unsigned e)
{
    static const char *const names[] = {
        "?", "free", "realloc", "realloc(0)", "reallocarray", "ruby_xfree",
        "ruby_sized_xfree", "ruby_xrealloc", "ruby_xrealloc2", "ruby_sized_xrealloc",
        "ruby_sized_xrealloc2", "rb_vm_ci_free (GC sweep)",
    };
    return e <= RACE_ENTRY_MAX ? names[e] : "?";
}

#endif
