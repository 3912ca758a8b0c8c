/* trace.h - what trace.c offers the writers of the trace file's growing parts (the
 * ring's chunks, the depot's entries): disk space reserved step by step, before the
 * first store, so that a full disk costs dropped events and never a SIGBUS. */
#ifndef RACE_TRACE_FILE_H
#define RACE_TRACE_FILE_H

#include <stdint.h>

/* Reserves bytes [off, off + len) of the trace file and prefaults them writable.
 * Returns 0 when they are backed, -1 when they are not (a full disk, a file size
 * limit): the caller then drops what it would have written there. After the first
 * failure every call fails at once, without a syscall. Async-signal-safe. */
int race_trace_reserve(uint64_t off, uint64_t len);

/* Reservations are made in steps of this many bytes (one ring chunk). */
#define RACE_RESERVE_STEP 65536u

struct race_hdr;
/* stacks.c: bytes of a depot of this size that are written anywhere (its header and
 * buckets), reserved with the file; and at exit, the file offset where the depot's
 * used part ends, past which its reservation is given back (later entries reserve
 * again). */
uint64_t race_depot_fixed(uint64_t depot_size);
uint64_t race_depot_trim(struct race_hdr *h);

#endif
