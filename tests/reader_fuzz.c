/* reader_fuzz.c - from one valid trace, writes damaged variants for tests/t_reader.sh:
 * truncations at every interesting length, bit flips and field smashes across header,
 * chunk headers, records, depot, module log, findings and probes, and random files.
 * Deterministic per seed.
 * Prints one line per file: "KIND ARG PATH" (KIND trunc: ARG = length; flip, smash,
 * rand: ARG = seed-derived index).
 * Must never: read the trace through the analyzer's code; offsets come from race_trace.h. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "race_trace.h"

static uint64_t rng_state;

static uint64_t rnd(void)
{
    /* xorshift64*: reproducible from the seed, good enough to spread damage. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static uint64_t below(uint64_t n)
{
    return n ? rnd() % n : 0;
}

static void put(const char *dir, const char *kind, unsigned long long arg, const void *buf,
                size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s-%llu.trace", dir, kind, arg);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0 || (len && write(fd, buf, len) != (ssize_t)len) || close(fd) != 0) {
        fprintf(stderr, "reader_fuzz: %s: %s\n", path, strerror(errno));
        exit(1);
    }
    printf("%s %llu %s\n", kind, arg, path);
}

/* Lengths where a reader's assumptions change: inside and at the edges of every field
 * of identity, the header, each section's header, chunk headers and records. */
static size_t trunc_lengths(const struct race_hdr *h, size_t size, uint64_t *out, size_t cap)
{
    size_t n = 0;
    static const uint64_t fixed[] = {0, 1, 5, 7, 8, 9, 11, 12, 15, 16, 20, 24, 28, 31, 32, 39,
                                     40, 47, 48, 100, 255, 256, 448, 960, 1024, 5120, 8191, 8192,
                                     8193};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        out[n++] = fixed[i];
    /* The probes section (last in the file): its header, a record's fields and edges. */
    static const uint64_t pd[] = {0, 1, 63, 64, 65, 64 + 24, 64 + 72, 64 + 191, 64 + 192,
                                  64 + 192 * 3 + 100};
    for (size_t i = 0; h->probes.size && i < sizeof pd / sizeof pd[0]; i++)
        out[n++] = h->probes.off + pd[i];
    uint64_t nch = h->ring.size / RACE_CHUNK_SIZE;
    for (uint64_t c = 0; c <= nch && n + 8 < cap; c++) {
        uint64_t base = h->ring.off + c * RACE_CHUNK_SIZE;
        static const int64_t d[] = {-1, 1, 32, 63, 64, 65, 64 + 64 * 7 + 5};
        for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
            out[n++] = base + (uint64_t)d[i];
    }
    static const uint64_t dd[] = {0, 1, 32, 63, 64, 65, 64 + 4 * 64, 64 + 4 * 64 + 17,
                                  64 + 4 * 64 + 200, 4096};
    for (size_t i = 0; i < sizeof dd / sizeof dd[0] && n + 3 < cap; i++) {
        out[n++] = h->depot.off + dd[i];
        out[n++] = h->modules.off + dd[i] + (i == 7 ? 80 : 0);
        out[n++] = h->findings.off + dd[i] + (i == 7 ? 100 : 0); /* header, records */
    }
    out[n++] = size - 1;
    /* Keep only lengths that truncate, each once. */
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        size_t j = 0;
        while (j < k && out[j] != out[i])
            j++;
        if (out[i] < size && j == k)
            out[k++] = out[i];
    }
    return k;
}

/* Where flips land: each region gets its share, so the small, dense structures (header
 * identity and section table, chunk headers, depot entries, module records) are hit as
 * often as the bulk of records. */
static uint64_t pick_offset(const struct race_hdr *h, size_t size)
{
    uint64_t nch = h->ring.size / RACE_CHUNK_SIZE;
    switch (below(9)) {
    case 8: /* probes header and records: kind, role, strings, used/cap */
        if (h->probes.size)
            return h->probes.off + below(64 + 7 * sizeof(struct race_probe_rec));
        return below(size);
    case 7: return h->findings.off + below(64 + 3 * sizeof(struct race_finding));
    case 0: return below(256);                                  /* identity, sections, counters */
    case 1: return below(RACE_HDR_SIZE);                        /* all of the header */
    case 2: return h->ring.off + below(nch) * RACE_CHUNK_SIZE + below(64); /* chunk header */
    case 3: return h->ring.off + below(nch) * RACE_CHUNK_SIZE + 64 + below(64 * 64); /* records */
    case 4: return h->depot.off + below(64 + 4 * 64 + 2048);    /* depot header, buckets, entries */
    case 5: return h->modules.off + below(1024);                /* module log */
    default: return below(size);
    }
}

/* Whole fields overwritten with values that break bounds arithmetic. */
static void smash(uint8_t *buf, const struct race_hdr *h, size_t size)
{
    static const uint64_t evil[] = {0, 1, 7, 0xff, 0xffff, 0xffffffffull, 0x100000000ull,
                                    0x7fffffffffffffffull, 0x8000000000000000ull, ~0ull,
                                    RACE_HDR_SIZE, RACE_CHUNK_SIZE, 1023, 1024, 64};
    static const size_t hdr_fields[] = {
        offsetof(struct race_hdr, file_size), offsetof(struct race_hdr, nchunks),
        offsetof(struct race_hdr, ring.off), offsetof(struct race_hdr, ring.size),
        offsetof(struct race_hdr, depot.off), offsetof(struct race_hdr, depot.size),
        offsetof(struct race_hdr, modules.off), offsetof(struct race_hdr, modules.size),
        offsetof(struct race_hdr, findings.off), offsetof(struct race_hdr, findings.size),
        offsetof(struct race_hdr, probes.off), offsetof(struct race_hdr, probes.size),
        offsetof(struct race_hdr, rbframes.off), offsetof(struct race_hdr, rbframes.size),
        offsetof(struct race_hdr, clock),
        offsetof(struct race_hdr, ractor_state), offsetof(struct race_hdr, clock_ts0),
        offsetof(struct race_hdr, clock_ts1), offsetof(struct race_hdr, next_chunk),
        offsetof(struct race_hdr, cmdline_len), offsetof(struct race_hdr, options_len),
        offsetof(struct race_hdr, flags)};
    uint64_t v = below(3) ? evil[below(sizeof evil / sizeof evil[0])] : rnd();
    uint64_t off;
    switch (below(7)) {
    case 6: /* probes: used, cap, and every word of the first records */
        off = h->probes.size ? h->probes.off + 8 * below(8 + 7 * sizeof(struct race_probe_rec) / 8)
                             : offsetof(struct race_hdr, probes.off);
        break;
    case 5: off = h->findings.off + 8 * below(8 + 3 * sizeof(struct race_finding) / 8); break;
    case 0:
    case 1: off = hdr_fields[below(sizeof hdr_fields / sizeof hdr_fields[0])]; break;
    case 2: off = h->ring.off + below(h->ring.size / RACE_CHUNK_SIZE) * RACE_CHUNK_SIZE
                  + 8 * below(5); break;  /* state, tid, clock pair, gen_check */
    case 3: off = h->depot.off + 8 * below(8 + 32 + 64); break;
    default: off = h->modules.off + 8 * below(128); break;
    }
    size_t w = below(2) ? 8 : 4;
    if (off + w <= size)
        memcpy(buf + off, &v, w);
}

int main(int argc, char **argv)
{
    if (argc != 6) {
        fputs("usage: reader_fuzz SRC OUTDIR SEED NFLIP NRANDOM\n", stderr);
        return 64;
    }
    const char *src = argv[1], *dir = argv[2];
    rng_state = strtoull(argv[3], NULL, 0) * 0x9e3779b97f4a7c15ull | 1;
    unsigned long nflip = strtoul(argv[4], NULL, 0), nrand = strtoul(argv[5], NULL, 0);

    int fd = open(src, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_size < (off_t)RACE_HDR_SIZE) {
        fprintf(stderr, "reader_fuzz: %s: not a usable trace\n", src);
        return 1;
    }
    size_t size = (size_t)st.st_size;
    uint8_t *orig = malloc(size), *buf = malloc(size + 4096);
    if (!orig || !buf || read(fd, orig, size) != (ssize_t)size) {
        fprintf(stderr, "reader_fuzz: %s: cannot read\n", src);
        return 1;
    }
    close(fd);
    struct race_hdr h;
    memcpy(&h, orig, sizeof h);

    uint64_t lens[256];
    size_t nlen = trunc_lengths(&h, size, lens, 256);
    for (size_t i = 0; i < nlen; i++)
        put(dir, "trunc", lens[i], orig, lens[i]);

    for (unsigned long i = 0; i < nflip; i++) {
        memcpy(buf, orig, size);
        unsigned flips = below(4) ? 1 : 1 + (unsigned)below(16);
        for (unsigned f = 0; f < flips; f++) {
            uint64_t off = pick_offset(&h, size);
            if (off < size)
                buf[off] ^= (uint8_t)(1u << below(8));
        }
        put(dir, "flip", i, buf, size);
    }
    for (unsigned long i = 0; i < nflip / 2; i++) {
        memcpy(buf, orig, size);
        unsigned n = 1 + (unsigned)below(3);
        for (unsigned k = 0; k < n; k++)
            smash(buf, &h, size);
        put(dir, "smash", i, buf, size);
    }
    for (unsigned long i = 0; i < nrand; i++) {
        size_t len = below(4) == 0 ? below(64) : RACE_HDR_SIZE + below(size - RACE_HDR_SIZE + 4096);
        if (i % 4 == 1 && below(2)) /* a header cut short, behind a valid identity */
            len = 32 + below(RACE_HDR_SIZE - 32);
        if (i % 4 == 3)
            len = size;
        for (size_t k = 0; k < len; k++)
            buf[k] = (uint8_t)rnd();
        /* Some keep a valid identity, so the reader gets past the magic; some the whole
         * section table too, so it walks random chunks, depot and module log. */
        if (i % 4 == 1 && len >= 32)
            memcpy(buf, orig, 32);
        if (i % 4 == 3)
            memcpy(buf, orig, 256);
        put(dir, "rand", i, buf, len);
    }
    free(orig);
    free(buf);
    return 0;
}
