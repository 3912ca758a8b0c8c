/* symbolize.c - turns a recorded pc into function and file:line, offline, with elfutils'
 * libdwfl, from the trace's module log (FORMAT.md, "Module log"); caches per pc.
 * Must never: symbolize a file whose build-id differs from the recorded one (its lines
 * would be wrong, not missing), open anything but a regular file (a FIFO would hang), or
 * print more than one note per module. */
#include <elfutils/libdw.h>
#include <elfutils/libdwelf.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "race.h"

#define NO_MAPPING UINT32_MAX
#define AMBIGUOUS (1ull << 63) /* in the pc cache: several mappings cover this pc over time */

/* One distinct mapping: the module log repeats every loaded object after each dlopen,
 * so records that agree on path, bias, range and build-id share one of these. */
struct mapping {
    const struct race_modrec *m; /* the first record naming it */
    const char *label;           /* basename, for module+0xoff */
    int state;                   /* 0 not tried, 1 loaded, -1 unusable */
    Dwfl *dwfl;                  /* one per mapping: mappings reused after dlclose overlap */
    Dwfl_Module *mod;
};

struct entry {
    uint32_t mapping;
    uint32_t next;               /* index + 1 of the next entry for the same pc, 0 = end */
    char *func, *file;           /* owned here */
    int line;
};

struct race_sym {
    struct race_trace *t;
    struct mapping *map;
    size_t nmap;
    uint32_t *rec_map;           /* module record index -> mapping index */
    struct race_map bypc;        /* pc -> (AMBIGUOUS |) index + 1 of its first entry */
    struct entry *ent;
    size_t nent, capent;
};

static char *debuginfo_path;
static const Dwfl_Callbacks offline_callbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = &debuginfo_path,
};

static bool same_mapping(const struct race_modrec *a, const struct race_modrec *b)
{
    return a->base == b->base && a->lo == b->lo && a->hi == b->hi &&
           a->build_id_len == b->build_id_len &&
           memcmp(a->build_id, b->build_id, a->build_id_len) == 0 && strcmp(a->path, b->path) == 0;
}

struct race_sym *sym_open(struct race_trace *t)
{
    struct race_sym *s = xcalloc(1, sizeof *s);
    s->t = t;
    s->map = xcalloc(t->nmod, sizeof *s->map);
    s->rec_map = xcalloc(t->nmod, sizeof *s->rec_map);
    map_init(&s->bypc);
    elf_version(EV_CURRENT);
    /* Quadratic in distinct mappings, which number in the hundreds at most. */
    for (size_t i = 0; i < t->nmod; i++) {
        size_t j = 0;
        while (j < s->nmap && !same_mapping(s->map[j].m, &t->mod[i]))
            j++;
        if (j == s->nmap) {
            const char *p = t->mod[i].path;
            if (!p[0]) /* the main program; see file_for() */
                p = trace_strlen(t->hdr.exe, sizeof t->hdr.exe) < sizeof t->hdr.exe &&
                    t->hdr.exe[0] ? t->hdr.exe : "[main]";
            const char *slash = strrchr(p, '/');
            s->map[j].m = &t->mod[i];
            s->map[j].label = slash ? slash + 1 : p;
            s->nmap++;
        }
        s->rec_map[i] = (uint32_t)j;
    }
    return s;
}

void sym_close(struct race_sym *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nmap; i++)
        if (s->map[i].dwfl)
            dwfl_end(s->map[i].dwfl);
    for (size_t i = 0; i < s->nent; i++) {
        free(s->ent[i].func);
        free(s->ent[i].file);
    }
    free(s->map);
    free(s->rec_map);
    free(s->ent);
    map_free(&s->bypc);
    free(s);
}

/* -1: cannot read it; 0: no build-id note; else its length, the bytes in *out. */
static ssize_t file_build_id(const char *path, uint8_t *out, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return -1;
    ssize_t n = -1;
    struct stat st;
    if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
        Elf *elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
        if (elf) {
            const void *id = NULL;
            n = dwelf_elf_gnu_build_id(elf, &id);
            if (n <= 0 || !id)
                n = 0;
            if ((size_t)n > cap)
                n = (ssize_t)cap;
            if (n)
                memcpy(out, id, (size_t)n);
            elf_end(elf);
        }
    }
    close(fd);
    return n;
}

static bool build_id_matches(const struct race_modrec *m, const char *path)
{
    uint8_t id[64];
    ssize_t n = file_build_id(path, id, sizeof id);
    return n == m->build_id_len && memcmp(id, m->build_id, m->build_id_len) == 0;
}

/* dl_iterate_phdr names the main program "": the header's exe stands in for it when
 * its build-id agrees, or, lacking one, when it is the log's first record (the loader
 * always reports the main program first). */
static const char *file_for(const struct race_sym *s, const struct mapping *mp)
{
    const struct race_modrec *m = mp->m;
    if (m->path[0])
        return m->path;
    const struct race_hdr *h = &s->t->hdr;
    if (trace_strlen(h->exe, sizeof h->exe) == sizeof h->exe || !h->exe[0])
        return NULL;
    if (m->build_id_len ? build_id_matches(m, h->exe) : m == &s->t->mod[0])
        return h->exe;
    return NULL;
}

static void load(struct race_sym *s, struct mapping *mp)
{
    const struct race_modrec *m = mp->m;
    const char *path = file_for(s, mp);
    struct stat st;
    mp->state = -1;
    if (!path) {
        diag_note(s->t, "module at 0x%llx (record at offset %llu) has no path; its frames are "
                  "shown as addresses", (unsigned long long)m->base, (unsigned long long)m->off);
        return;
    }
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        diag_note(s->t, "%s: no longer exists; its frames are shown as module+offset", path);
        return;
    }
    if (m->build_id_len && !build_id_matches(m, path)) {
        diag_note(s->t, "%s: build-id differs from the recorded one (the file changed since the "
                  "trace was written); its frames are shown as module+offset", path);
        return;
    }
    mp->dwfl = dwfl_begin(&offline_callbacks);
    if (!mp->dwfl) {
        diag_note(s->t, "%s: %s", path, dwfl_errmsg(-1));
        return;
    }
    dwfl_report_begin(mp->dwfl);
    /* add_p_vaddr: base is the load bias (dlpi_addr), as the module log records it. */
    mp->mod = dwfl_report_elf(mp->dwfl, mp->label[0] ? mp->label : path, path, -1, m->base, true);
    if (dwfl_report_end(mp->dwfl, NULL, NULL) != 0 || !mp->mod) {
        diag_note(s->t, "%s: %s; its frames are shown as module+offset", path, dwfl_errmsg(-1));
        mp->mod = NULL;
        return;
    }
    mp->state = 1;
}

/* FORMAT.md: the newest record covering pc that was written no later than the event;
 * failing that (a damaged ts), the newest covering pc at all. */
static uint32_t choose(const struct race_sym *s, uint64_t pc, uint64_t ts)
{
    const struct race_trace *t = s->t;
    size_t best = SIZE_MAX, any = SIZE_MAX;
    for (size_t i = 0; i < t->nmod; i++) {
        const struct race_modrec *m = &t->mod[i];
        if (pc < m->lo || pc >= m->hi)
            continue;
        if (any == SIZE_MAX || m->ts >= t->mod[any].ts)
            any = i;
        if (m->ts <= ts && (best == SIZE_MAX || m->ts >= t->mod[best].ts))
            best = i;
    }
    if (best == SIZE_MAX)
        best = any;
    return best == SIZE_MAX ? NO_MAPPING : s->rec_map[best];
}

static bool ambiguous(const struct race_sym *s, uint64_t pc)
{
    uint32_t seen = NO_MAPPING;
    for (size_t i = 0; i < s->t->nmod; i++) {
        const struct race_modrec *m = &s->t->mod[i];
        if (pc < m->lo || pc >= m->hi)
            continue;
        if (seen != NO_MAPPING && seen != s->rec_map[i])
            return true;
        seen = s->rec_map[i];
    }
    return false;
}

/* Line tables name files relative to the compilation directory; people and editors
 * want a path they can open. */
static char *absolute(const char *file, const char *dir)
{
    if (file[0] == '/' || !dir || dir[0] != '/')
        return xstrndup(file, strlen(file));
    size_t nd = strlen(dir), nf = strlen(file);
    char *p = xcalloc(nd + nf + 2, 1);
    memcpy(p, dir, nd);
    p[nd] = '/';
    memcpy(p + nd + 1, file, nf);
    return p;
}

/* a is the address looked up: the pc itself, or the byte before a return address. */
static uint32_t resolve(struct race_sym *s, uint64_t a, uint32_t mi)
{
    if (s->nent == s->capent) {
        s->capent = s->capent ? s->capent * 2 : 256;
        s->ent = xreallocarray(s->ent, s->capent, sizeof *s->ent);
    }
    struct entry *e = &s->ent[s->nent];
    *e = (struct entry){.mapping = mi};
    if (mi != NO_MAPPING) {
        struct mapping *mp = &s->map[mi];
        if (mp->state == 0)
            load(s, mp);
        if (mp->state == 1) {
            const char *fn = dwfl_module_addrname(mp->mod, a);
            if (fn) /* "__libc_start_main@@GLIBC_2.34": the version is noise here */
                e->func = xstrndup(fn, strcspn(fn, "@"));
            Dwfl_Line *l = dwfl_module_getsrc(mp->mod, a);
            const char *file = l ? dwfl_lineinfo(l, NULL, &e->line, NULL, NULL, NULL) : NULL;
            if (file)
                e->file = absolute(file, dwfl_line_comp_dir(l));
            else
                e->line = 0;
        }
    }
    return (uint32_t)s->nent++;
}

void sym_frame(struct race_sym *s, uint64_t pc, uint64_t ts, bool exact, struct race_frame *out)
{
    /* A return address follows its call: the call is the byte before it. */
    uint64_t a = exact || pc == 0 ? pc : pc - 1;
    bool added;
    uint64_t *v = map_put(&s->bypc, a, &added);
    if (added && ambiguous(s, a))
        *v = AMBIGUOUS;
    uint32_t mi = choose(s, a, (*v & AMBIGUOUS) ? ts : UINT64_MAX);
    uint32_t ei = NO_MAPPING;
    for (uint64_t i = *v & ~AMBIGUOUS; i; i = s->ent[i - 1].next)
        if (s->ent[i - 1].mapping == mi) {
            ei = (uint32_t)(i - 1);
            break;
        }
    if (ei == NO_MAPPING) {
        ei = resolve(s, a, mi);
        v = map_get(&s->bypc, a);
        s->ent[ei].next = (uint32_t)(*v & ~AMBIGUOUS);
        *v = (*v & AMBIGUOUS) | (ei + 1);
    }
    const struct entry *e = &s->ent[ei];
    *out = (struct race_frame){.pc = pc, .func = e->func, .file = e->file, .line = e->line};
    if (mi != NO_MAPPING) {
        out->module = s->map[mi].label;
        out->modoff = pc - s->map[mi].m->base;
    }
}

/* The file on disk that holds the code at pc as it was mapped at ts, and its load bias;
 * NULL when no module covers pc or the file is gone or changed (the checks load() makes,
 * with its one note). For reading the instruction itself (crash.c). */
const char *sym_file(struct race_sym *s, uint64_t pc, uint64_t ts, uint64_t *bias)
{
    uint32_t mi = choose(s, pc, ts);
    if (mi == NO_MAPPING)
        return NULL;
    struct mapping *mp = &s->map[mi];
    if (mp->state == 0)
        load(s, mp);
    if (mp->state != 1)
        return NULL;
    *bias = mp->m->base;
    return file_for(s, mp);
}
