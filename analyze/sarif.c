/* sarif.c - `race report --sarif`: the findings as one SARIF 2.1.0 log for code scanning:
 * one result per finding group (report.c's grouping), a rule per finding kind, the use
 * and free stacks as thread flows, free and allocation sites as related locations, and
 * fingerprints that re-runs reproduce. Kept within code scanning's documented limits.
 * Must never: put an address, a time or a pid into a fingerprint (re-runs must
 * deduplicate), or write a URI that is not percent-encoded. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "race.h"

/* Code scanning accepts 25,000 results per run but keeps only the first 5,000 (by
 * severity; all of ours are errors): more would be dropped at random. Locations per
 * result: 1,000 accepted, 100 shown; thread flow locations: 10,000 accepted, 1,000 shown
 * (two stacks of at most RACE_MAX_FRAMES stay far below). */
#define MAX_RESULTS 5000
#define FINGERPRINT_FRAMES 3 /* innermost frames of each stack that identify a finding */
#define URI_BASE "SRCROOT"

static const struct {
    const char *name;  /* PascalCase, SARIF's reportingDescriptor.name */
    const char *brief; /* shortDescription */
    const char *help;  /* fullDescription and help */
} rules[RACE_FIND_MAX + 1] = {
    [RACE_FIND_USE_AFTER_FREE] = {"HeapUseAfterFree", "Use of heap memory after it was freed",
        "A thread read or wrote a guarded heap block after another part of the program "
        "(often another thread or Ractor) had freed it. The result's stacks show the access, "
        "the free and the allocation; fix the lifetime so the block outlives every user."},
    [RACE_FIND_OVERFLOW] = {"HeapBufferOverflow", "Access past the end of a heap block",
        "An access landed on the guard page just after a guarded heap block: the program "
        "read or wrote past the end of the block it allocated."},
    [RACE_FIND_UNDERFLOW] = {"HeapBufferUnderflow", "Access before the start of a heap block",
        "An access landed on the guard page just before a guarded heap block."},
    [RACE_FIND_DOUBLE_FREE] = {"DoubleFree", "A heap block freed twice",
        "A guarded heap block was freed a second time; the result names both frees."},
    [RACE_FIND_INVALID_FREE] = {"InvalidFree", "Free of a pointer that is not a block's start",
        "free (or realloc) was handed a pointer inside a guarded heap block, not the "
        "pointer the allocator returned."},
    [RACE_FIND_OVERFLOW_AT_FREE] = {"HeapBufferOverflowAtFree",
        "A heap block's trailing bytes were overwritten",
        "When a guarded heap block was freed, the bytes between its end and the guard page "
        "had changed: the program wrote past the end of the block."},
    [RACE_FIND_WRITE_AFTER_FREE] = {"WriteAfterFree", "A write to heap memory after it was freed",
        "A quarantined heap block's poison had changed by the time it left the quarantine: "
        "something wrote to it after it was freed."},
    [RACE_FIND_WILD_ACCESS] = {"WildAccess", "Access to guard-pool memory no block used",
        "An access landed in the guarded pool on a page that no allocation ever used."},
    [RACE_FIND_STALE_CI] = {"StaleCallInfo", "A Ruby call-info used after the GC freed it",
        "A watched Ruby VM function was handed a call-info (or its keyword block) that a GC "
        "sweep, often run by another Ractor, had already freed."},
};

struct out {
    FILE *f;
    const char *root; /* the source root, resolved, no trailing '/'; NULL if none */
    size_t rootlen;
};

/* A path as a URI reference: RFC 3986 unreserved characters and '/' as they are, every
 * other byte percent-encoded (so a space or a '#' in a path cannot change its meaning). */
static void uri_path(FILE *f, const char *p)
{
    for (const unsigned char *s = (const unsigned char *)p; *s; s++) {
        unsigned c = *s;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '.' || c == '_' || c == '~' || c == '/')
            fputc((int)c, f);
        else
            fprintf(f, "%%%02X", c);
    }
}

/* The file under the source root, or NULL. */
static const char *under_root(const struct out *o, const char *file)
{
    if (!o->root || strncmp(file, o->root, o->rootlen) != 0 || file[o->rootlen] != '/')
        return NULL;
    return file + o->rootlen + 1;
}

static void artifact(const struct out *o, const char *file)
{
    const char *rel = under_root(o, file);
    fputs("\"artifactLocation\":{\"uri\":\"", o->f);
    if (rel) {
        uri_path(o->f, rel);
        fputs("\",\"uriBaseId\":\"" URI_BASE "\"}", o->f);
    } else if (file[0] == '/') {
        fputs("file://", o->f);
        uri_path(o->f, file);
        fputs("\"}", o->f);
    } else {
        uri_path(o->f, file);
        fputs(o->root ? "\",\"uriBaseId\":\"" URI_BASE "\"}" : "\"}", o->f);
    }
}

/* Code scanning can show a file of the repository only: with a source root, a file
 * under it; without one, an absolute path (a file:// URI). A relative name (a library's
 * build directory) has no place. */
static const char *placeable(const struct out *o, const struct race_frame *fr)
{
    if (!fr->file || fr->line <= 0)
        return NULL;
    return o->root ? under_root(o, fr->file) : fr->file[0] == '/' ? fr->file : NULL;
}

/* "use_victim tests/uaf_threads.c:42", else "libc.so.6+0x1234", else "0x..." */
static void frame_text(FILE *f, const struct out *o, const struct race_frame *fr)
{
    const char *rel = fr->file ? under_root(o, fr->file) : NULL;
    if (fr->func)
        fputs(fr->func, f);
    if (fr->file)
        fprintf(f, "%s%s:%d", fr->func ? " " : "", rel ? rel : fr->file, fr->line);
    else if (fr->module)
        fprintf(f, "%s%s+0x%llx", fr->func ? " in " : "", fr->module, (unsigned long long)fr->modoff);
    else if (!fr->func)
        fprintf(f, "0x%llx", (unsigned long long)fr->pc);
}

/* Writes a JSON string built with printf-like calls on a memory stream. */
struct msg {
    char *s;
    size_t len;
    FILE *f;
};

static FILE *msg_open(struct msg *m)
{
    m->s = NULL;
    m->len = 0;
    m->f = open_memstream(&m->s, &m->len);
    if (!m->f) {
        fputs("race: out of memory\n", stderr);
        exit(RACE_EXIT_BADINPUT);
    }
    return m->f;
}

static void msg_json(struct msg *m, FILE *out)
{
    fclose(m->f);
    json_str(out, m->s, m->len);
    free(m->s);
}

/* The innermost frame with a source line code scanning can place: its index, or -1. */
static int site_frame(const struct out *o, const struct race_frame *fr, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        if (placeable(o, &fr[i]))
            return (int)i;
    return -1;
}

static void physical(const struct out *o, const struct race_frame *fr)
{
    fputs("\"physicalLocation\":{", o->f);
    artifact(o, fr->file);
    fprintf(o->f, ",\"region\":{\"startLine\":%d}}", fr->line);
}

static void logical(const struct out *o, const struct race_frame *fr)
{
    if (!fr->func)
        return;
    fputs(",\"logicalLocations\":[{\"fullyQualifiedName\":", o->f);
    json_cstr(o->f, fr->func);
    fputs(",\"kind\":\"function\"}]", o->f);
}

/* One stack as a thread flow, outermost frame first (SARIF's order of execution). */
static void thread_flow(const struct out *o, const struct race_frame *fr, uint32_t n,
                        const char *id, struct msg *what)
{
    fputs("{\"id\":", o->f);
    json_cstr(o->f, id);
    fputs(",\"message\":{\"text\":", o->f);
    msg_json(what, o->f);
    fputs("},\"locations\":[", o->f);
    for (uint32_t k = 0; k < n; k++) {
        uint32_t i = n - 1 - k;
        fputs(k ? ",{\"location\":{" : "{\"location\":{", o->f);
        if (placeable(o, &fr[i])) {
            physical(o, &fr[i]);
            fputc(',', o->f);
        }
        struct msg m;
        FILE *t = msg_open(&m);
        fprintf(t, "#%u ", i);
        frame_text(t, o, &fr[i]);
        fputs("\"message\":{\"text\":", o->f);
        msg_json(&m, o->f);
        fputc('}', o->f);
        logical(o, &fr[i]);
        fprintf(o->f, "},\"nestingLevel\":%u}", k);
    }
    fputs("]}", o->f);
}

static uint64_t fnv(uint64_t h, const char *s)
{
    for (; s && *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001b3ull;
    }
    return h;
}

/* Function names and file basenames of the innermost frames: no addresses, lines or
 * times, so the same bug in another run (or build, after unrelated edits) matches. */
static uint64_t fp_stack(uint64_t h, const struct race_frame *fr, uint32_t n)
{
    for (uint32_t i = 0; i < n && i < FINGERPRINT_FRAMES; i++) {
        const char *file = fr[i].file ? strrchr(fr[i].file, '/') : NULL;
        h = fnv(h, fr[i].func ? fr[i].func : fr[i].module ? fr[i].module : "?");
        h = fnv(h, file ? file + 1 : fr[i].file ? fr[i].file : "");
        h = fnv(h, ";");
    }
    return fnv(h, "|");
}

static void who(FILE *f, uint32_t tid, uint32_t ractor)
{
    fprintf(f, "thread %u", tid);
    if (ractor)
        fprintf(f, " (Ractor %u)", ractor);
}

static double ms_of(const struct race_trace *t, uint64_t ts)
{
    return (double)clock_ns(&t->clock, ts) / 1e6;
}

static void related(const struct out *o, int id, const struct race_frame *fr, struct msg *what)
{
    fprintf(o->f, "%s{\"id\":%d,", id > 1 ? "," : "", id);
    physical(o, fr);
    fputs(",\"message\":{\"text\":", o->f);
    msg_json(what, o->f);
    fputc('}', o->f);
    logical(o, fr);
    fputc('}', o->f);
}

/* ---- Ruby-level frames ---------------------------------------------------------- */

/* A Ruby frame code scanning can place: a path with a line; relative paths (as Ruby
 * names a script run from the checkout) are taken from the source root, and Ruby's
 * own "<internal:...>" files have no place. */
static bool rb_placeable(const struct out *o, const struct race_rbframe *f)
{
    if (!f->path[0] || f->path[0] == '<' || f->line <= 0)
        return false;
    return o->root ? (under_root(o, f->path) || f->path[0] != '/') : f->path[0] == '/';
}

static void rb_frame_text(FILE *f, const struct out *o, struct race_sym *sym,
                          const struct race_rbframe *fr, uint64_t ts)
{
    char buf[96];
    const char *rel = under_root(o, fr->path);
    fprintf(f, "%s:%d:in '%s'%s", fr->path[0] ? rel ? rel : fr->path : "(unknown)", fr->line,
            rb_label(sym, fr, ts, buf, sizeof buf), fr->cfunc ? " (C)" : "");
}

static void rb_physical(const struct out *o, const struct race_rbframe *fr)
{
    fputs("\"physicalLocation\":{", o->f);
    artifact(o, fr->path);
    fprintf(o->f, ",\"region\":{\"startLine\":%d}}", fr->line);
}

/* The Ruby frames as a thread flow, outermost first. */
static void rb_thread_flow(const struct out *o, struct race_sym *sym, const struct race_rbtrace *rb,
                           uint64_t ts, const char *id, const char *what)
{
    fputs(",{\"id\":", o->f);
    json_cstr(o->f, id);
    fputs(",\"message\":{\"text\":", o->f);
    json_cstr(o->f, what);
    fputs("},\"locations\":[", o->f);
    for (uint32_t k = 0; k < rb->n; k++) {
        const struct race_rbframe *fr = &rb->f[rb->n - 1 - k];
        fputs(k ? ",{\"location\":{" : "{\"location\":{", o->f);
        if (rb_placeable(o, fr)) {
            rb_physical(o, fr);
            fputc(',', o->f);
        }
        struct msg m;
        rb_frame_text(msg_open(&m), o, sym, fr, ts);
        fputs("\"message\":{\"text\":", o->f);
        msg_json(&m, o->f);
        fprintf(o->f, "}},\"nestingLevel\":%u}", k);
    }
    fputs("]}", o->f);
}

/* "key":["path:line:in 'label'", ...] */
static void rb_property(const struct out *o, struct race_sym *sym, const struct race_rbtrace *rb,
                        uint64_t ts, const char *key)
{
    fprintf(o->f, ",\"%s\":[", key);
    for (uint32_t i = 0; i < rb->n; i++) {
        struct msg m;
        rb_frame_text(msg_open(&m), o, sym, &rb->f[i], ts);
        if (i)
            fputc(',', o->f);
        msg_json(&m, o->f);
    }
    fputc(']', o->f);
}

static int rb_site(const struct out *o, const struct race_rbtrace *rb)
{
    for (uint32_t i = 0; i < rb->n; i++)
        if (!rb->f[i].cfunc && rb_placeable(o, &rb->f[i]))
            return (int)i;
    return -1;
}

static bool is_access_type(unsigned type)
{
    return type != RACE_FIND_DOUBLE_FREE && type != RACE_FIND_INVALID_FREE &&
           type != RACE_FIND_OVERFLOW_AT_FREE && type != RACE_FIND_WRITE_AFTER_FREE;
}

static void result(const struct out *o, struct race_trace *t, struct race_sym *sym,
                   const struct race_finding *f, size_t count)
{
    static struct race_frame use[RACE_MAX_FRAMES], fre[RACE_MAX_FRAMES], alc[RACE_MAX_FRAMES];
    uint32_t nu = stack_frames(t, sym, f->stack, f->ts, f->pc, use);
    uint32_t nf = f->free_ts ? stack_frames(t, sym, f->free_stack, f->free_ts, free_pc_exact(f), fre) : 0;
    uint32_t na = f->alloc_ts ? stack_frames(t, sym, f->alloc_stack, f->alloc_ts, 0, alc) : 0;
    int su = site_frame(o, use, nu), sf = site_frame(o, fre, nf), sa = site_frame(o, alc, na);
    const char *name = race_find_name(f->type);
    FILE *out = o->f;
    static struct race_rbtrace rbu, rbf;
    const char *why;
    if (!f->rb_use || trace_rb(t, f->rb_use, &rbu, &why) != RACE_STACK_OK)
        rbu.n = 0;
    if (!f->rb_free || trace_rb(t, f->rb_free, &rbf, &why) != RACE_STACK_OK)
        rbf.n = 0;
    int rs = rb_site(o, &rbu);

    fprintf(out, "{\"ruleId\":\"%s\",\"ruleIndex\":%u,\"level\":\"error\",\"message\":{\"text\":",
            name, f->type - 1u);
    struct msg m;
    FILE *mt = msg_open(&m);
    finding_title(mt, f);
    fputs(" by ", mt);
    who(mt, f->tid, f->ractor);
    if (sf >= 0)
        fputs("; freed [here](1)", mt);
    else if (f->free_ts)
        fputs("; freed", mt);
    if (f->free_ts) {
        fputs(" by ", mt);
        who(mt, f->free_tid, f->free_ractor);
        if (f->ts >= f->free_ts)
            fprintf(mt, " %.3f ms before", ms_of(t, f->ts) - ms_of(t, f->free_ts));
    }
    if (sa >= 0)
        fprintf(mt, "; allocated [here](%d)", sf >= 0 ? 2 : 1);
    if (count > 1)
        fprintf(mt, " (seen %zu times)", count);
    msg_json(&m, out);
    fputs("},\"locations\":[{", out);
    if (su >= 0) {
        physical(o, &use[su]);
        logical(o, &use[su]);
    } else {
        /* No source line anywhere on the use stack: the module it happened in. */
        fputs("\"physicalLocation\":{", out);
        artifact(o, nu && use[0].module ? use[0].module : t->hdr.exe[0] ? t->hdr.exe : "unknown");
        fputc('}', out);
        if (nu)
            logical(o, &use[0]);
    }
    fputs("}]", out);
    if (sf >= 0 || sa >= 0 || rs >= 0) {
        fputs(",\"relatedLocations\":[", out);
        int id = 1;
        if (sf >= 0) {
            mt = msg_open(&m);
            fputs("freed by ", mt);
            who(mt, f->free_tid, f->free_ractor);
            fprintf(mt, " via %s in ", race_entry_name(f->free_entry));
            frame_text(mt, o, &fre[sf]);
            related(o, id++, &fre[sf], &m);
        }
        if (sa >= 0) {
            mt = msg_open(&m);
            fputs("allocated by ", mt);
            who(mt, f->alloc_tid, f->alloc_ractor);
            fputs(" in ", mt);
            frame_text(mt, o, &alc[sa]);
            related(o, id++, &alc[sa], &m);
        }
        if (rs >= 0) { /* the Ruby line that made the access */
            mt = msg_open(&m);
            fputs("Ruby code of the access: ", mt);
            rb_frame_text(mt, o, sym, &rbu.f[rs], f->ts);
            fprintf(out, "%s{\"id\":%d,", id > 1 ? "," : "", id);
            rb_physical(o, &rbu.f[rs]);
            fputs(",\"message\":{\"text\":", out);
            msg_json(&m, out);
            fputs("}}", out);
        }
        fputc(']', out);
    }
    if (nu) {
        fputs(",\"codeFlows\":[{\"threadFlows\":[", out);
        char id[48];
        snprintf(id, sizeof id, "use: thread %u", f->tid);
        mt = msg_open(&m);
        fputs(is_access_type(f->type) ? "the access, by " : "by ", mt);
        who(mt, f->tid, f->ractor);
        thread_flow(o, use, nu, id, &m);
        if (nf) {
            snprintf(id, sizeof id, "free: thread %u", f->free_tid);
            mt = msg_open(&m);
            fputs("the free, by ", mt);
            who(mt, f->free_tid, f->free_ractor);
            fputc(',', out);
            thread_flow(o, fre, nf, id, &m);
        }
        if (rbu.n) {
            snprintf(id, sizeof id, "use (Ruby): thread %u", f->tid);
            rb_thread_flow(o, sym, &rbu, f->ts, id, "the Ruby frames of the access");
        }
        if (rbf.n) {
            snprintf(id, sizeof id, "free (Ruby): thread %u", f->free_tid);
            rb_thread_flow(o, sym, &rbf, f->free_ts, id,
                           rb_free_by_gc(t, sym, f->free_stack, f->free_ts)
                               ? "the Ruby frames whose allocation ran the GC sweep that freed it"
                               : "the Ruby frames of the free");
        }
        fputs("]}]", out);
    }
    uint64_t h = fnv(0xcbf29ce484222325ull, name);
    h = fp_stack(fnv(h, "|"), use, nu);
    h = fp_stack(h, fre, nf);
    fprintf(out, ",\"partialFingerprints\":{\"raceStack/v1\":\"%016llx\"}", (unsigned long long)h);
    fprintf(out, ",\"properties\":{\"tid\":%u,\"ractor\":%u", f->tid, f->ractor);
    if (f->free_ts)
        fprintf(out, ",\"freeTid\":%u,\"freeRactor\":%u", f->free_tid, f->free_ractor);
    if (f->alloc_ts)
        fprintf(out, ",\"allocTid\":%u,\"allocRactor\":%u", f->alloc_tid, f->alloc_ractor);
    if (rbu.n)
        rb_property(o, sym, &rbu, f->ts, "rubyFrames");
    if (rbf.n) {
        rb_property(o, sym, &rbf, f->free_ts, "freeRubyFrames");
        fprintf(out, ",\"freeRubyIsGcTrigger\":%s",
                rb_free_by_gc(t, sym, f->free_stack, f->free_ts) ? "true" : "false");
    }
    fprintf(out, ",\"occurrences\":%zu,\"address\":", count);
    json_hex(out, f->addr);
    fputs(",\"trace\":", out);
    json_cstr(out, t->path);
    fputs("}}", out);
}

static void driver(FILE *out)
{
    fputs("\"tool\":{\"driver\":{\"name\":\"race\",\"version\":\"" RACE_VERSION_STRING "\","
          "\"rules\":[", out);
    for (unsigned k = 1; k <= RACE_FIND_MAX; k++) {
        fprintf(out, "%s{\"id\":\"%s\",\"name\":\"%s\",\"shortDescription\":{\"text\":", k > 1 ? "," : "",
                race_find_name(k), rules[k].name);
        json_cstr(out, rules[k].brief);
        fputs("},\"fullDescription\":{\"text\":", out);
        json_cstr(out, rules[k].help);
        fputs("},\"help\":{\"text\":", out);
        json_cstr(out, rules[k].help);
        fputs("},\"defaultConfiguration\":{\"level\":\"error\"},\"properties\":{\"tags\":"
              "[\"memory\",\"concurrency\"],\"precision\":\"high\",\"problem.severity\":\"error\"}}",
              out);
    }
    fputs("]}}", out);
}

int sarif_write(const struct report_outputs *opt, struct race_trace **t, struct race_sym **sym,
                int n, const struct race_member *m, size_t total)
{
    struct out o = {0};
    char root[PATH_MAX];
    if (opt->source_root) {
        if (!realpath(opt->source_root, root)) {
            fprintf(stderr, "race report: --source-root %s: %m\n", opt->source_root);
            return -1;
        }
        o.rootlen = strlen(root);
        while (o.rootlen > 1 && root[o.rootlen - 1] == '/')
            root[--o.rootlen] = 0;
        o.root = root;
    }
    bool to_stdout = strcmp(opt->sarif, "-") == 0;
    o.f = to_stdout ? stdout : fopen(opt->sarif, "w");
    if (!o.f) {
        fprintf(stderr, "race report: cannot write %s: %m\n", opt->sarif);
        return -1;
    }
    size_t groups = 0;
    for (size_t i = 0; i < total; i++)
        groups += m[i].count != 0;
    FILE *out = o.f;
    fputs("{\"$schema\":\"https://json.schemastore.org/sarif-2.1.0.json\",\"version\":\"2.1.0\","
          "\"runs\":[{", out);
    driver(out);
    if (o.root) {
        fputs(",\"originalUriBaseIds\":{\"" URI_BASE "\":{\"uri\":\"file://", out);
        uri_path(out, o.root);
        fputs(o.rootlen > 1 ? "/\"}}" : "\"}}", out);
    }
    fputs(",\"invocations\":[{\"executionSuccessful\":true", out);
    if (groups > MAX_RESULTS)
        fprintf(out, ",\"toolExecutionNotifications\":[{\"level\":\"warning\",\"message\":{\"text\":"
                "\"%zu finding groups; only the first %d are results (code scanning keeps no more "
                "than %d per run): race report lists them all\"}}]", groups, MAX_RESULTS, MAX_RESULTS);
    fputs("}],\"results\":[", out);
    size_t written = 0;
    for (size_t i = 0; i < total && written < MAX_RESULTS; i++) {
        if (!m[i].count)
            continue;
        fputs(written++ ? ",\n" : "\n", out);
        result(&o, t[m[i].trace], sym[m[i].trace], &t[m[i].trace]->find[m[i].index].f, m[i].count);
    }
    fprintf(out, "\n],\"properties\":{\"findings\":%zu,\"groups\":%zu,\"traces\":%d}}]}\n", total,
            groups, n);
    if (to_stdout)
        return fflush(out) != 0 || ferror(out) ? -1 : 0;
    bool bad = ferror(out);
    if (fclose(out) != 0 || bad) {
        fprintf(stderr, "race report: error writing %s\n", opt->sarif);
        return -1;
    }
    return 0;
}
