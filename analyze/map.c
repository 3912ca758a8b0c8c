/* map.c - an open-addressing hash map from uint64 keys to uint64 values, for tallies
 * (by thread, by Ractor, stack ids seen) and the symbolizer's per-pc cache.
 * Must never: grow except on insertion of a new key, so its size is bounded by the
 * number of distinct keys actually met in a file, never by a field's value. */
#include <stdlib.h>
#include <string.h>

#include "race.h"

void map_init(struct race_map *m)
{
    memset(m, 0, sizeof *m);
}

void map_free(struct race_map *m)
{
    free(m->keys);
    free(m->vals);
    free(m->used);
    map_init(m);
}

/* Keys are thread ids, small counters and code addresses: all poorly spread in their
 * low bits, so mix before masking. */
static size_t slot_of(uint64_t key, size_t cap)
{
    key ^= key >> 33;
    key *= 0xff51afd7ed558ccdull;
    key ^= key >> 33;
    return (size_t)key & (cap - 1);
}

uint64_t *map_get(const struct race_map *m, uint64_t key)
{
    if (m->cap == 0)
        return NULL;
    for (size_t i = slot_of(key, m->cap);; i = (i + 1) & (m->cap - 1)) {
        if (!m->used[i])
            return NULL;
        if (m->keys[i] == key)
            return &m->vals[i];
    }
}

static void grow(struct race_map *m)
{
    struct race_map n;
    n.cap = m->cap ? m->cap * 2 : 64;
    n.count = 0;
    n.keys = xcalloc(n.cap, sizeof *n.keys);
    n.vals = xcalloc(n.cap, sizeof *n.vals);
    n.used = xcalloc(n.cap, 1);
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->used[i])
            continue;
        size_t j = slot_of(m->keys[i], n.cap);
        while (n.used[j])
            j = (j + 1) & (n.cap - 1);
        n.used[j] = 1;
        n.keys[j] = m->keys[i];
        n.vals[j] = m->vals[i];
        n.count++;
    }
    map_free(m);
    *m = n;
}

uint64_t *map_put(struct race_map *m, uint64_t key, bool *added)
{
    uint64_t *v = map_get(m, key);
    if (added)
        *added = v == NULL;
    if (v)
        return v;
    /* Half full at most: probes stay short even for clustered keys. */
    if (m->count + 1 > m->cap / 2)
        grow(m);
    size_t i = slot_of(key, m->cap);
    while (m->used[i])
        i = (i + 1) & (m->cap - 1);
    m->used[i] = 1;
    m->keys[i] = key;
    m->vals[i] = 0;
    m->count++;
    return &m->vals[i];
}

static int by_val_desc(const void *a, const void *b)
{
    const struct race_kv *x = a, *y = b;
    if (x->val != y->val)
        return x->val > y->val ? -1 : 1;
    return (x->key > y->key) - (x->key < y->key);
}

struct race_kv *map_sorted(const struct race_map *m)
{
    struct race_kv *kv = xcalloc(m->count, sizeof *kv);
    size_t n = 0;
    for (size_t i = 0; i < m->cap; i++)
        if (m->used[i])
            kv[n++] = (struct race_kv){m->keys[i], m->vals[i]};
    qsort(kv, n, sizeof *kv, by_val_desc);
    return kv;
}
