/* record.c - the cold half of recording: frees seen before the trace existed. The
 * per-event half is inline in record.h. */
#include "record.h"

static uint64_t early_frees;

void race_record_early_free(void)
{
    __atomic_fetch_add(&early_frees, 1, __ATOMIC_RELAXED);
}

uint64_t race_record_early(void)
{
    return __atomic_load_n(&early_frees, __ATOMIC_RELAXED);
}

