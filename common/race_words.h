/* race_words.h - the words of a finding's report, shared by its two writers: the shim's
 * report on stderr at the fault (shim/findings.c, raw module+offset frames) and
 * `race report` (analyze/report.c, symbolized frames). Both print the same lines in the
 * same order; only the frames differ. Owns the headline, the section headings, the
 * sentences per finding type and subtype, and the unit of time (ms, 3 decimals).
 * Must never: hold code that allocates, formats with stdio, or reads a trace: the shim
 * uses these strings inside a signal handler. */
#ifndef RACE_WORDS_H
#define RACE_WORDS_H

#include "race_trace.h"

/* "==PID==ERROR: race: TYPE on address 0xADDR[ at pc 0xPC]" (AddressSanitizer's shape:
 * the PID tells which process of a `race run` it was). */
#define RACE_W_HEAD_PRE "=="
#define RACE_W_HEAD_POST "==ERROR: race: "
#define RACE_W_ON_ADDRESS " on address "
#define RACE_W_AT_PC " at pc "

/* The access line: "READ of size 8 at 0xADDR by thread 123 (Ractor 2) at 1.250 ms:" */
#define RACE_W_OF_SIZE " of size "
#define RACE_W_SIZE_UNKNOWN "?"
#define RACE_W_BY " by "
#define RACE_W_THREAD "thread "
#define RACE_W_RACTOR " (Ractor "
#define RACE_W_RACTOR_UNKNOWN " (Ractor unknown)"
#define RACE_W_VIA " via "
#define RACE_W_AT " at "
#define RACE_W_MS " ms"
#define RACE_W_BEFORE_PRE " ("
#define RACE_W_BEFORE_POST " ms before)"

/* Headings of the sections after the access and its stack. */
#define RACE_W_FREED_BY "freed by "
#define RACE_W_ALLOCATED_BY "previously allocated by "
#define RACE_W_DETAIL "detail: "
#define RACE_W_SUMMARY "SUMMARY: race: "
#define RACE_W_SUMMARY_IN " in "
#define RACE_W_NO_STACK "(no stack recorded)"

/* "0xADDR is located 8 bytes inside of 48-byte region [0xA,0xB)" */
#define RACE_W_LOCATED " is located "
#define RACE_W_BYTES_BEFORE " bytes before"
#define RACE_W_BYTES_AFTER " bytes after"
#define RACE_W_BYTES_INSIDE " bytes inside of"
#define RACE_W_REGION "-byte region ["

/* A finding seen again: the report's count line, and the shim's storm summaries. */
#define RACE_W_MORE_TIMES_PRE "and "
#define RACE_W_MORE_TIMES_POST " more times (the same finding: type, pc and block)"

static inline const char *race_w_access(unsigned a)
{
    return a == RACE_ACCESS_READ ? "READ" : a == RACE_ACCESS_WRITE ? "WRITE" : "ACCESS";
}

static inline int race_w_is_free_finding(unsigned type)
{
    return type == RACE_FIND_DOUBLE_FREE || type == RACE_FIND_INVALID_FREE;
}

/* The access line's opening for the types that are not an access of some size, up to
 * the address; NULL for the others ("READ of size 8 at "). */
static inline const char *race_w_opening(unsigned type)
{
    switch (type) {
    case RACE_FIND_DOUBLE_FREE: return "attempting double-free on ";
    case RACE_FIND_INVALID_FREE: return "attempting free of an address that is not a block's start: ";
    case RACE_FIND_OVERFLOW_AT_FREE: return "a byte after the block was overwritten (seen when it was freed) at ";
    case RACE_FIND_WRITE_AFTER_FREE: return "a freed block was written at ";
    default: return 0;
    }
}

/* After the address: who did it. */
static inline const char *race_w_by(unsigned type)
{
    return type == RACE_FIND_OVERFLOW_AT_FREE ? "; free by "
         : type == RACE_FIND_WRITE_AFTER_FREE ? "; seen by " : RACE_W_BY;
}

/* A stale call-info's detail starts with the watched function ("rb_vm_ci_lookup" or
 * "rb_vm_ci_lookup@caller ..."): the length of that name, 0 if there is none. */
static inline unsigned race_w_watched_len(const char *detail)
{
    unsigned n = 0;
    while ((detail[n] >= 'a' && detail[n] <= 'z') || (detail[n] >= 'A' && detail[n] <= 'Z') ||
           (detail[n] >= '0' && detail[n] <= '9') || detail[n] == '_' || detail[n] == '.')
        n++;
    return n;
}

/* A stale call-info's sentence, after the access line's colon, by subtype (version 3).
 * No subtype (a version-2 trace, or a watched function outside Ruby) reads as a freed
 * kwarg block, the check's first case; the detail line still shows what the shim wrote.
 * The sentence is [the watched function, or "a watched function"] + race_w_stale_tail,
 * except for a GC mark (race_w_stale_whole). */
static inline unsigned race_w_stale_sub(const struct race_finding *f)
{
    return f->subtype ? f->subtype : RACE_SUB_CI_KWARG_FREED;
}

static inline const char *race_w_stale_whole(unsigned sub)
{
    return sub == RACE_SUB_CI_GC_MARK
               ? "the GC is marking a reference to a call-info whose slot a sweep freed (Ruby "
                 "aborts next: try to mark T_NONE object)"
               : 0;
}

#define RACE_W_WATCHED_UNKNOWN "a watched function"

/* Then, for RACE_SUB_CI_KWARG_FREED (or an unknown subtype), what was freed:
 * race_w_watched_what. */
static inline const char *race_w_stale_tail(unsigned sub)
{
    switch (sub) {
    case RACE_SUB_CI_SWEPT:
        return " was about to be handed the kwarg of a call-info whose slot the GC swept "
               "(read from the caller's call data)";
    case RACE_SUB_CI_NO_KWARG:
        return " was handed a kwarg pointer to no kwarg block: the call-info it was read from "
               "is gone (swept by the GC, its slot reused)";
    default:
        return " was handed a freed ";
    }
}

static inline int race_w_stale_names_what(unsigned sub)
{
    return sub != RACE_SUB_CI_SWEPT && sub != RACE_SUB_CI_NO_KWARG;
}

/* What a watched function's check reads: the freed thing it was handed. */
static inline const char *race_w_watched_what(const char *name, unsigned len)
{
    static const char ci[] = "rb_vm_ci_lookup";
    if (len != sizeof(ci) - 1)
        return "block";
    for (unsigned i = 0; i < len; i++)
        if (name[i] != ci[i])
            return "block";
    return "kwarg block";
}

#define RACE_W_STR_(x) #x
#define RACE_W_STR(x) RACE_W_STR_(x)

#endif
