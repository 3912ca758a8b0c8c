/* debug_file.c - finds the file holding a loaded object's symbols and DWARF the way gdb
 * does: the object itself, files named by hand (by build-id), .gnu_debuglink (next to the
 * object, in .debug/, under the debug roots, checked by CRC) and the build-id path.
 * Start-up and after-dlopen only: opens files. Never crashes on a corrupt file. */
#include <dwarf.h>
#include <elf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <gelf.h>
#include <libelf.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "elf_file.h"

/* The CRC .gnu_debuglink carries: CRC-32 (IEEE 802.3, reflected) of the whole file. */
static int file_crc32(int fd, uint32_t *out)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        table[i] = c;
    }
    uint8_t buf[65536];
    uint32_t crc = 0xffffffffu;
    off_t pos = 0;
    for (;;) {
        ssize_t n = pread(fd, buf, sizeof(buf), pos);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            break;
        for (ssize_t i = 0; i < n; i++)
            crc = table[(crc ^ buf[i]) & 0xff] ^ (crc >> 8);
        pos += n;
    }
    *out = crc ^ 0xffffffffu;
    return 0;
}

static void hex(char *out, const uint8_t *p, size_t n)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = 0;
}

/* ---- Public interface: the debug file ---- */

const char *race_debug_how_name(int how)
{
    switch (how) {
    case RACE_DEBUG_SELF: return "self";
    case RACE_DEBUG_HAND: return "hand";
    case RACE_DEBUG_LINK: return "debuglink";
    case RACE_DEBUG_BUILD_ID: return "build-id";
    case RACE_DEBUG_SYMTAB_ONLY: return "symtab-only";
    }
    return "none";
}

/* What a candidate debug file must match. */
struct want {
    const struct stat *obj;   /* never the object itself */
    const uint8_t *build_id;  /* NULL: not checked */
    size_t build_id_len;
    int check_crc;
    uint32_t crc;
};

static int candidate_ok(const char *path, const struct want *w, char *why, size_t cap)
{
    struct stat st;
    if (stat(path, &st) < 0)
        return 0; /* absent: the common case, not worth a word each */
    if (st.st_dev == w->obj->st_dev && st.st_ino == w->obj->st_ino)
        return 0;
    struct efile f;
    if (efile_open(path, &f, why, cap) < 0)
        return 0;
    int ok = 1;
    if (!has_dwarf(f.elf) && !has_symtab(f.elf)) {
        say(why, cap, "%s: has neither .debug_info nor .symtab", path);
        ok = 0;
    }
    if (ok && w->build_id) {
        const void *id;
        ssize_t n = dwelf_elf_gnu_build_id(f.elf, &id);
        if (n <= 0 || (size_t)n != w->build_id_len || memcmp(id, w->build_id, (size_t)n) != 0) {
            say(why, cap, "%s: build-id does not match", path);
            ok = 0;
        }
    }
    if (ok && w->check_crc) {
        uint32_t crc;
        if (file_crc32(f.fd, &crc) < 0 || crc != w->crc) {
            say(why, cap, "%s: CRC32 %08x, .gnu_debuglink wants %08x", path, crc, w->crc);
            ok = 0;
        }
    }
    efile_close(&f);
    return ok;
}

/* Calls FN on each root of the ':'-separated list ROOTS. */
static int each_root(const char *roots, int (*fn)(const char *root, size_t len, void *arg), void *arg)
{
    for (const char *p = roots; *p;) {
        const char *e = strchr(p, ':');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len && fn(p, len, arg))
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

struct search {
    const char *obj_dir, *link, *id_hex;
    struct want w;
    char *out;
    size_t cap;
    char *why;
    size_t why_cap;
    int found;
};

static int try_path(struct search *s, const char *path)
{
    if (!candidate_ok(path, &s->w, s->why, s->why_cap))
        return 0;
    if (strlen(path) >= s->cap) {
        say(s->why, s->why_cap, "%s: path longer than the caller's buffer", path);
        return 0;
    }
    copy_str(s->out, s->cap, path);
    return s->found = 1;
}

static int link_under_root(const char *root, size_t len, void *arg)
{
    struct search *s = arg;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%.*s%s/%s", (int)len, root, s->obj_dir, s->link) >= (int)sizeof(path))
        return 0;
    return try_path(s, path);
}

static int build_id_under_root(const char *root, size_t len, void *arg)
{
    struct search *s = arg;
    char path[PATH_MAX];
    if (snprintf(path, sizeof(path), "%.*s/.build-id/%.2s/%s.debug", (int)len, root, s->id_hex,
                 s->id_hex + 2) >= (int)sizeof(path))
        return 0;
    return try_path(s, path);
}

int race_debug_file(const char *obj, const char *root, const char *const *hand_files,
                    char *out, size_t cap, char *why, size_t why_cap)
{
    if (why && why_cap)
        why[0] = 0;
    if (out && cap)
        out[0] = 0;
    if (!obj || !out || !cap)
        return -1;
    if (!root)
        root = RACE_DEBUG_ROOT;
    struct efile o;
    if (efile_open(obj, &o, why, why_cap) < 0)
        return -1;
    int how = -1;
    if (has_dwarf(o.elf)) {
        if (strlen(obj) < cap) {
            copy_str(out, cap, obj);
            how = RACE_DEBUG_SELF;
        } else {
            say(why, why_cap, "%s: path longer than the caller's buffer", obj);
        }
        goto done;
    }

    const void *id = NULL;
    ssize_t id_len = dwelf_elf_gnu_build_id(o.elf, &id);
    GElf_Word crc = 0;
    const char *link = dwelf_elf_gnu_debuglink(o.elf, &crc);
    char id_hex[2 * 64 + 1] = "";
    if (id_len > 1 && id_len <= 64)
        hex(id_hex, id, (size_t)id_len);
    else
        id_len = 0;

    struct search s = {.link = link, .id_hex = id_hex, .out = out, .cap = cap, .why = why, .why_cap = why_cap};
    s.w.obj = &o.st;

    /* By hand: the build-id decides; without one, the debuglink's CRC. */
    for (size_t i = 0; hand_files && hand_files[i] && !s.found; i++) {
        struct want w = {.obj = &o.st};
        if (id_len) {
            w.build_id = id;
            w.build_id_len = (size_t)id_len;
        } else if (link) {
            w.check_crc = 1;
            w.crc = crc;
        } else {
            say(why, why_cap, "%s: %s has neither a build-id nor a .gnu_debuglink to match it by",
                hand_files[i], obj);
            continue;
        }
        s.w = w;
        struct stat st;
        if (stat(hand_files[i], &st) < 0)
            say(why, why_cap, "%s (by hand): %s", hand_files[i], strerror(errno));
        else if (try_path(&s, hand_files[i]))
            how = RACE_DEBUG_HAND;
        else
            say(why, why_cap, "%s (by hand): not %s's debug file", hand_files[i], obj);
    }

    /* gdb looks next to the real file, not next to a symlink to it. */
    char real[PATH_MAX];
    if (!realpath(obj, real))
        copy_str(real, sizeof(real), obj);
    char *slash = strrchr(real, '/');
    char dir[PATH_MAX] = ".";
    if (slash && slash != real) {
        *slash = 0;
        copy_str(dir, sizeof(dir), real);
    } else if (slash) {
        dir[0] = 0; /* the object is in "/" */
    }
    s.obj_dir = dir;

    if (!s.found && link && *link && !strchr(link, '/')) {
        s.w = (struct want){.obj = &o.st, .check_crc = 1, .crc = crc};
        char path[PATH_MAX];
        if (snprintf(path, sizeof(path), "%s/%s", dir, link) < (int)sizeof(path) && try_path(&s, path))
            how = RACE_DEBUG_LINK;
        else if (snprintf(path, sizeof(path), "%s/.debug/%s", dir, link) < (int)sizeof(path) && try_path(&s, path))
            how = RACE_DEBUG_LINK;
        else if (each_root(root, link_under_root, &s))
            how = RACE_DEBUG_LINK;
        else
            say(why, why_cap, ".gnu_debuglink '%s' (CRC %08x) not in %s, %s/.debug or under %s%s", link,
                crc, dir, dir, root, dir);
    } else if (!s.found && link) {
        say(why, why_cap, ".gnu_debuglink '%s' is not a plain file name", link);
    } else if (!s.found) {
        say(why, why_cap, "no .gnu_debuglink");
    }

    if (!s.found && id_len) {
        s.w = (struct want){.obj = &o.st, .build_id = id, .build_id_len = (size_t)id_len};
        if (each_root(root, build_id_under_root, &s))
            how = RACE_DEBUG_BUILD_ID;
        else
            say(why, why_cap, "build-id %s not under %s/.build-id/", id_hex, root);
    } else if (!s.found) {
        say(why, why_cap, "no build-id");
    }

    if (!s.found) {
        if (has_symtab(o.elf) && strlen(obj) < cap) {
            copy_str(out, cap, obj);
            how = RACE_DEBUG_SYMTAB_ONLY;
            say(why, why_cap, "%s has .symtab but no DWARF", obj);
        } else {
            say(why, why_cap, "%s has no .symtab and no .debug_info (stripped), and no debug file was found",
                obj);
        }
    }
done:
    efile_close(&o);
    return how;
}
