/* trace_count.c - bench/run.sh's reader of one trace file: how many events the run
 * recorded and how many of those kept carry a stack. Follows FORMAT.md's validity rule
 * with the format header's own race_rec_sum, so it stays right when the layout moves.
 * Not the analyzer (analyze/race): it prints counters only, on one line:
 *   events=E retained=R valid=V stacked=S overwritten=O dropped=D stack_dropped=SD
 *   unique_stacks=U ractors=N closed=0|1
 * events = records reserved (retained in the ring + overwritten); stacked counts valid
 * retained records with a stack; ractors counts distinct non-zero Ractor ids seen.
 *   usage: trace_count FILE */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "race_trace.h"

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: trace_count FILE\n");
        return 2;
    }
    int fd = open(argv[1], O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) || (size_t)st.st_size < sizeof(struct race_hdr)) {
        fprintf(stderr, "trace_count: %s: cannot open or too short\n", argv[1]);
        return 1;
    }
    const uint8_t *base = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_SHARED, fd, 0);
    close(fd);
    if (base == MAP_FAILED) {
        fprintf(stderr, "trace_count: %s: mmap failed\n", argv[1]);
        return 1;
    }
    const struct race_hdr *h = (const struct race_hdr *)base;
    if (memcmp(h->magic, RACE_TRACE_MAGIC, 8) || h->version != RACE_TRACE_VERSION ||
        h->ring.off + (uint64_t)h->nchunks * RACE_CHUNK_SIZE > (uint64_t)st.st_size) {
        fprintf(stderr, "trace_count: %s: not a version %u trace\n", argv[1], RACE_TRACE_VERSION);
        return 1;
    }
    uint64_t retained = 0, valid = 0, stacked = 0;
    uint32_t ractor_seen[64];
    unsigned nractors = 0;
    for (uint32_t c = 0; c < h->nchunks; c++) {
        const uint8_t *cp = base + h->ring.off + (uint64_t)c * RACE_CHUNK_SIZE;
        const struct race_chunk *ch = (const struct race_chunk *)cp;
        uint64_t gen1 = ch->state >> RACE_STATE_USED_BITS;
        uint64_t used = ch->state & RACE_STATE_USED_MASK;
        if (!gen1)
            continue;
        if (used > RACE_CHUNK_RECS)
            used = RACE_CHUNK_RECS;
        retained += used;
        const struct race_rec *rec = (const struct race_rec *)(ch + 1);
        for (uint32_t i = 0; i < used; i++) {
            uint32_t tag = (uint32_t)((gen1 - 1) * RACE_CHUNK_RECS + i);
            if (rec[i].commit != ((uint64_t)race_rec_sum(&rec[i], tag) << 32 | tag))
                continue;
            valid++;
            if (rec[i].stack)
                stacked++;
            uint32_t id = rec[i].ractor;
            unsigned k = 0;
            while (k < nractors && ractor_seen[k] != id)
                k++;
            if (id && k == nractors && nractors < 64)
                ractor_seen[nractors++] = id;
        }
    }
    const struct race_depot_hdr *dh = (const struct race_depot_hdr *)(base + h->depot.off);
    printf("events=%llu retained=%llu valid=%llu stacked=%llu overwritten=%llu dropped=%llu "
           "stack_dropped=%llu unique_stacks=%llu ractors=%u closed=%u\n",
           (unsigned long long)(retained + h->overwritten), (unsigned long long)retained,
           (unsigned long long)valid, (unsigned long long)stacked,
           (unsigned long long)h->overwritten, (unsigned long long)h->dropped,
           (unsigned long long)h->stack_dropped, (unsigned long long)dh->unique, nractors,
           (h->flags & RACE_FLAG_CLOSED) ? 1u : 0u);
    return 0;
}
