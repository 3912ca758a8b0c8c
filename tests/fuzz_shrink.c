/* fuzz_shrink.c - rewrites a real trace into the smallest trace that holds the same
 * content, for the fuzzer's seed corpus (tests/fuzz-corpus/): the ring keeps only the
 * chunks claimed (when it never wrapped), the depot one bucket and its used entries, the
 * module log, findings, probes and crashes only their used records. Every kept byte is
 * the shim's; only section sizes, offsets and capacities are rewritten.
 * --hide-paths turns each module's absolute path into a relative one that names nothing
 * ("!usr/lib/..."): the analyzer then symbolizes to module+offset without opening the
 * objects, 10x faster, and the fuzzer runs 10x more inputs.
 * Usage: fuzz_shrink [--hide-paths] IN OUT. Must never: read the trace through the
 * analyzer's code. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "race_trace.h"

static uint8_t *in;
static size_t in_size;

static void die(const char *what)
{
    fprintf(stderr, "fuzz_shrink: %s\n", what);
    exit(1);
}

static const void *at(uint64_t off, uint64_t len)
{
    if (off > in_size || len > in_size - off)
        die("the input is truncated or its section table is corrupt");
    return in + off;
}

/* Bytes of a section (header of hsize, then records of rsize) that hold used records. */
static uint64_t used_records(const struct race_section *s, uint64_t hsize, uint64_t rsize)
{
    if (!s->size)
        return 0;
    const uint64_t *h = at(s->off, hsize); /* used, cap */
    uint64_t n = h[0] < h[1] ? h[0] : h[1];
    return hsize + n * rsize;
}

int main(int argc, char **argv)
{
    int hide = argc == 4 && !strcmp(argv[1], "--hide-paths");
    if (argc != 3 + hide)
        die("usage: fuzz_shrink [--hide-paths] IN OUT");
    argv += hide;
    FILE *f = fopen(argv[1], "rb");
    if (!f)
        die(strerror(errno));
    fseek(f, 0, SEEK_END);
    in_size = (size_t)ftell(f);
    rewind(f);
    in = malloc(in_size + 1);
    if (!in || fread(in, 1, in_size, f) != in_size)
        die("cannot read the input");
    fclose(f);

    const struct race_hdr *h = at(0, sizeof *h);
    if (memcmp(h->magic, RACE_TRACE_MAGIC, 8) || h->version != RACE_TRACE_VERSION)
        die("not a current-version trace");
    uint64_t next = h->next_chunk, nch = h->nchunks;
    struct race_layout l = {.nchunks = next && next <= nch ? next : nch};

    const struct race_depot_hdr *dh = at(h->depot.off, sizeof *dh);
    uint64_t dused = dh->used < dh->entries_size ? dh->used : dh->entries_size;
    uint64_t dentries = (sizeof *dh + 4 + 7) & ~7ull; /* one bucket, entries 8-aligned */
    l.depot = dentries + dused;
    const struct race_mod_hdr *mh = at(h->modules.off, sizeof *mh);
    l.modules = sizeof *mh + mh->used;
    l.findings = used_records(&h->findings, sizeof(struct race_find_hdr), sizeof(struct race_finding));
    l.probes = used_records(&h->probes, sizeof(struct race_probe_hdr), sizeof(struct race_probe_rec));
    l.crashes = used_records(&h->crashes, sizeof(struct race_crash_hdr), sizeof(struct race_crash));

    struct race_hdr nh = *h;
    uint64_t size = race_hdr_layout(&nh, &l);
    uint8_t *out = calloc(1, size);
    if (!out)
        die("out of memory");
    memcpy(out, &nh, sizeof nh);
    memcpy(out + nh.ring.off, at(h->ring.off, nh.ring.size), nh.ring.size);

    struct race_depot_hdr nd = *dh;
    nd.nbuckets = 1;
    nd.entries_off = dentries;
    nd.entries_size = dused;
    memcpy(out + nh.depot.off, &nd, sizeof nd);
    memcpy(out + nh.depot.off + dentries, at(h->depot.off + dh->entries_off, dused), dused);

    memcpy(out + nh.modules.off, at(h->modules.off, l.modules), l.modules);
    for (uint64_t p = sizeof *mh; hide && p + sizeof(struct race_mod) < l.modules;) {
        struct race_mod *m = (struct race_mod *)(out + nh.modules.off + p);
        if (m->size < sizeof *m || m->size > l.modules - p)
            break;
        if (m->path_len && m->path[0] == '/')
            m->path[0] = '!';
        p += m->size;
    }
    const struct race_section *from[] = {&h->findings, &h->probes, &h->crashes};
    const struct race_section *to[] = {&nh.findings, &nh.probes, &nh.crashes};
    const uint64_t rsize[] = {sizeof(struct race_finding), sizeof(struct race_probe_rec),
                              sizeof(struct race_crash)};
    for (int i = 0; i < 3; i++) {
        if (!to[i]->size)
            continue;
        memcpy(out + to[i]->off, at(from[i]->off, to[i]->size), to[i]->size);
        uint64_t *cap = (uint64_t *)(out + to[i]->off) + 1; /* used, cap: the first two words */
        *cap = (to[i]->size - 64) / rsize[i];
    }

    f = fopen(argv[2], "wb");
    if (!f || fwrite(out, 1, size, f) != size || fclose(f) != 0)
        die("cannot write the output");
    printf("%s: %zu -> %llu bytes\n", argv[2], in_size, (unsigned long long)size);
    return 0;
}
