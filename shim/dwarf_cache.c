/* dwarf_cache.c - remembers, per loaded object (by build-id) and function name, what
 * race_function_instances answered, in a small file under RACE_CACHE_DIR: only the first
 * process of a build pays for the DWARF walk. That walk is what makes watching costly at
 * start-up (Ruby 3.4.5's debug sections are zlib-compressed: 0.7 s and 40 MB per process,
 * against a few milliseconds to read the answer back), and a test suite starts hundreds
 * of processes. A file that is short, foreign, of another layout or fails its checksum
 * is ignored and rewritten; writes go to a temporary name and are renamed into place, so
 * concurrent processes never read half a file. An answer made without a debug file is
 * not trusted once the build-id path of one exists. Start-up only: opens files and
 * allocates; never on a hook's path or in a signal handler. */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h> /* getenv */
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "debuginfo.h"
#include "shim.h"

#define MAGIC "RACEDWC1"
#define NOTE_LEN 64

struct cache_head {
    char magic[8];
    uint32_t inst_size;     /* sizeof(struct race_instance): another layout is another cache */
    uint32_t n;
    char key[256];          /* build-id hex | function | RACE_SYMBOLS */
    char debug[512];        /* the debug file the answer came from, "" if none */
    char why[256];
    uint64_t sum;           /* FNV-1a of everything after the head */
};
struct cache_inst {
    struct race_instance in;          /* param[].note cleared: pointers do not persist */
    char note[RACE_MAX_PARAMS][NOTE_LEN];
};

static char notes[32][RACE_MAX_PARAMS][NOTE_LEN]; /* where read-back notes point */

static uint64_t fnv(const void *p, size_t n, uint64_t h)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++)
        h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}

/* The cache directory: RACE_CACHE_DIR, else $XDG_CACHE_HOME/race, else $HOME/.cache/race;
 * "" when caching is off ("none", or nowhere to put it). */
static const char *cache_dir(void)
{
    static char dir[512];
    static int done;
    if (done)
        return dir;
    done = 1;
    const char *o = race_opt.RACE_CACHE_DIR, *x = getenv("XDG_CACHE_HOME"), *h = getenv("HOME");
    if (strcmp(o, "none") == 0)
        dir[0] = 0;
    else if (o[0])
        snprintf(dir, sizeof(dir), "%s", o);
    else if (x && x[0] == '/')
        snprintf(dir, sizeof(dir), "%s/race", x);
    else if (h && h[0] == '/')
        snprintf(dir, sizeof(dir), "%s/.cache/race", h);
    return dir;
}

static void make_key(const uint8_t *id, size_t id_len, const char *name, char *key, size_t cap)
{
    char hex[65];
    for (size_t i = 0; i < id_len && i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", id[i]);
    hex[2 * (id_len < 32 ? id_len : 32)] = 0;
    snprintf(key, cap, "%s|%s|%s", hex, name, race_opt.RACE_SYMBOLS);
}

static int file_of(const char *key, char *path, size_t cap)
{
    const char *d = cache_dir();
    if (!d[0])
        return 0;
    snprintf(path, cap, "%s/dwarf/%016llx.inst", d, (unsigned long long)fnv(key, strlen(key), 0xcbf29ce484222325ull));
    return 1;
}

static int exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

int race_dwarf_cache_get(const uint8_t *id, size_t id_len, const char *name, struct race_instance *out, int max,
                         char *why, size_t why_cap)
{
    char key[256], path[640];
    if (!id_len || max > 32)
        return -2;
    make_key(id, id_len, name, key, sizeof(key));
    if (!file_of(key, path, sizeof(path)))
        return -2;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -2;
    struct cache_head h;
    int n = -2;
    if (read(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) && memcmp(h.magic, MAGIC, 8) == 0 &&
        h.inst_size == sizeof(struct race_instance) && h.n <= (uint32_t)max &&
        strncmp(h.key, key, sizeof(h.key)) == 0) {
        h.debug[sizeof(h.debug) - 1] = 0;
        h.why[sizeof(h.why) - 1] = 0;
        /* the debug file it came from is gone, or a debug file now exists where none did */
        char bid[128];
        snprintf(bid, sizeof(bid), "%s/.build-id/%02x/", RACE_DEBUG_ROOT, id[0]);
        size_t l = strlen(bid);
        for (size_t i = 1; i < id_len && l + 3 < sizeof(bid) - 7; i++, l += 2)
            snprintf(bid + l, 3, "%02x", id[i]);
        snprintf(bid + l, sizeof(bid) - l, ".debug");
        int stale = h.debug[0] ? !exists(h.debug) : exists(bid);
        struct cache_inst ci;
        uint64_t sum = 0xcbf29ce484222325ull;
        uint32_t i = 0;
        for (; !stale && i < h.n; i++) {
            if (read(fd, &ci, sizeof(ci)) != (ssize_t)sizeof(ci))
                break;
            sum = fnv(&ci, sizeof(ci), sum);
            out[i] = ci.in;
            for (int k = 0; k < RACE_MAX_PARAMS; k++) {
                ci.note[k][NOTE_LEN - 1] = 0;
                memcpy(notes[i][k], ci.note[k], NOTE_LEN);
                out[i].param[k].note = notes[i][k][0] ? notes[i][k] : NULL;
            }
        }
        if (!stale && i == h.n && sum == h.sum) {
            n = (int)h.n;
            race_strlcpy(why, h.why, why_cap);
        }
    }
    close(fd);
    return n;
}

static void mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++)
        if (*p == '/') {
            *p = 0;
            mkdir(path, 0700);
            *p = '/';
        }
}

void race_dwarf_cache_put(const uint8_t *id, size_t id_len, const char *name, const struct race_instance *in,
                          int n, const char *debug, const char *why)
{
    char path[640], tmp[700];
    struct cache_head h;
    if (!id_len || n < 0 || n > 32)
        return;
    memset(&h, 0, sizeof(h));
    make_key(id, id_len, name, h.key, sizeof(h.key));
    if (!file_of(h.key, path, sizeof(path)))
        return;
    memcpy(h.magic, MAGIC, 8);
    h.inst_size = sizeof(struct race_instance);
    h.n = (uint32_t)n;
    race_strlcpy(h.debug, debug ? debug : "", sizeof(h.debug));
    race_strlcpy(h.why, why ? why : "", sizeof(h.why));
    static struct cache_inst ci[32];
    memset(ci, 0, sizeof(ci));
    h.sum = 0xcbf29ce484222325ull;
    for (int i = 0; i < n; i++) {
        ci[i].in = in[i];
        for (int k = 0; k < RACE_MAX_PARAMS; k++) {
            ci[i].in.param[k].note = NULL;
            if (in[i].param[k].note)
                race_strlcpy(ci[i].note[k], in[i].param[k].note, NOTE_LEN);
        }
        h.sum = fnv(&ci[i], sizeof(ci[i]), h.sum);
    }
    mkdirs(path);
    snprintf(tmp, sizeof(tmp), "%s.%d.tmp", path, (int)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    int ok = fd >= 0;
    if (ok)
        ok = write(fd, &h, sizeof(h)) == (ssize_t)sizeof(h) &&
             write(fd, ci, sizeof(*ci) * (size_t)n) == (ssize_t)(sizeof(*ci) * (size_t)n);
    if (fd >= 0)
        close(fd);
    if (ok)
        ok = rename(tmp, path) == 0;
    if (!ok)
        unlink(tmp); /* a full disk or a read-only cache: the next process walks the DWARF again */
}
