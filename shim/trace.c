/* trace.c - the trace file's life: created at start-up (and again in a fork child)
 * with O_EXCL|O_NOFOLLOW, 0600, at its full size but sparse; mapped MAP_SHARED so it
 * survives any death of the process; disk space reserved with fallocate before any
 * part is first written (the fixed sections at once, the ring and the depot step by
 * step as they fill), so a full disk costs dropped events and never a SIGBUS; at a
 * clean exit the reserved space nothing was written to is given back, and the file is
 * marked closed. Owns the constructor, the destructor and the atfork child handler.
 * Uses syscalls and stack buffers only: it runs before the allocator is settled, in
 * the child of a multi-threaded fork, and (reservations) in signal handlers. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "debuginfo.h"
#include "shim.h"
#include "trace.h"

__thread struct race_tls race_tls __attribute__((tls_model("initial-exec")));
struct race_global race_g;
static char trace_path[4200];

#define MODULES_SIZE (512u * 1024u)
#define FINDINGS_SIZE (64u + 1024u * sizeof(struct race_finding))
#define PROBES_SIZE (64u + 256u * sizeof(struct race_probe_rec))
#define CRASHES_SIZE (64u + 16u * sizeof(struct race_crash))
#define RBFRAMES_SIZE (256u * 1024u) /* Ruby backtraces: about 200 of 16 frames */
#define PAGE 4096u

/* The open trace file, kept for the reservations and the trim at exit; identified by
 * device and inode, because a program may close descriptors it did not open. */
static int trace_fd = -1;
static dev_t trace_dev;
static ino_t trace_ino;
static int reserve_failed;
static uint8_t *map_base;
/* In a fork child: the parent's mapping, which the child's trace replaces in place. */
static void *fork_at;
static uint64_t fork_at_size;

static uint64_t round_up(uint64_t x, uint64_t to)
{
    return (x + to - 1) / to * to;
}

/* trace_fd if it still names the trace, else the trace opened again by its path
 * (once), else -1. */
static int trace_file(void)
{
    struct stat st;
    if (trace_fd >= 0 && fstat(trace_fd, &st) == 0 && st.st_dev == trace_dev && st.st_ino == trace_ino)
        return trace_fd;
    int fd = open(trace_path, O_RDWR | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (fstat(fd, &st) != 0 || st.st_dev != trace_dev || st.st_ino != trace_ino) {
        close(fd);
        return -1;
    }
    trace_fd = fd; /* the old number is the program's now: never closed by us */
    return fd;
}

/* fallocate, where the file system has none: nothing can be reserved there, and the
 * file is used as before reservations existed (sparse). */
static int reserve_range(int fd, uint64_t off, uint64_t len)
{
    int rc = fallocate(fd, 0, (off_t)off, (off_t)len);
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        return 0;
    return rc;
}

int race_trace_reserve(uint64_t off, uint64_t len)
{
    if (__atomic_load_n(&reserve_failed, __ATOMIC_RELAXED))
        return -1;
    int fd = trace_file();
    int e = fd < 0 ? EBADF : reserve_range(fd, off, len) == 0 ? 0 : errno;
    if (e) {
        if (!__atomic_exchange_n(&reserve_failed, 1, __ATOMIC_RELAXED)) {
            char why[200];
            size_t k = race_strlcpy(why, strerrordesc_np(e), sizeof(why));
            race_strlcpy(why + k, "; recording goes on in the space it has: the oldest events are overwritten "
                                  "sooner, what does not fit is counted as dropped", sizeof(why) - k);
            race_notice("cannot reserve more space for ", trace_path, ": ", why);
        }
        return -1;
    }
    /* One prefault for the step instead of a page fault per 4 KiB: the ring's first
     * pass is the biggest share of a short process's start-up (kernels before 5.14
     * answer EINVAL, and the pages fault in one by one as before). */
    madvise(map_base + off, len, MADV_POPULATE_WRITE);
    return 0;
}

/* Gives back [off, end) (page-aligned inwards), which nothing was written to. */
static void give_back(int fd, uint64_t off, uint64_t end)
{
    off = round_up(off, PAGE);
    end = end / PAGE * PAGE;
    if (end > off)
        fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)off, (off_t)(end - off));
}

/* A used-count section (findings, probes, crashes): header, then cap records. */
static void give_back_records(int fd, const struct race_hdr *h, const struct race_section *s, uint64_t rec)
{
    if (!s->size)
        return;
    const uint64_t *hdr = (const uint64_t *)((const uint8_t *)h + s->off); /* used, cap */
    uint64_t used = __atomic_load_n(&hdr[0], __ATOMIC_RELAXED);
    if (used > hdr[1])
        used = hdr[1];
    give_back(fd, s->off + 64 + used * rec, s->off + s->size);
}

/* At a clean exit: the depot's, the module log's and the record sections' space past
 * what was used goes back to the file system (the ring reserves only chunks it
 * claims). Threads still running keep the reservation rule: the depot's steps are
 * reserved again before they are written (race_depot_trim). */
static void trim(struct race_hdr *h)
{
    int fd = trace_file();
    if (fd < 0)
        return;
    uint64_t depot_used = race_depot_trim(h);
    give_back(fd, depot_used, h->depot.off + h->depot.size);
    const struct race_mod_hdr *mh = (const struct race_mod_hdr *)((uint8_t *)h + h->modules.off);
    give_back(fd, h->modules.off + sizeof(*mh) + __atomic_load_n(&mh->used, __ATOMIC_RELAXED),
              h->modules.off + h->modules.size);
    give_back_records(fd, h, &h->findings, sizeof(struct race_finding));
    give_back_records(fd, h, &h->probes, sizeof(struct race_probe_rec));
    give_back_records(fd, h, &h->crashes, sizeof(struct race_crash));
    give_back_records(fd, h, &h->rbframes, 1); /* its used and cap count bytes */
}

static void exe_name(char *out, size_t cap)
{
    const char *s = program_invocation_short_name;
    size_t k = 0;
    for (; s && *s && k + 1 < cap && k < 64; s++)
        out[k++] = ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
                    (*s >= '0' && *s <= '9') || *s == '.' || *s == '_' || *s == '-')
                       ? *s : '_';
    if (!k)
        out[k++] = 'x';
    out[k] = 0;
}

static size_t read_file(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    size_t k = 0;
    while (k < cap) {
        ssize_t n = read(fd, buf + k, cap - k);
        if (n <= 0)
            break;
        k += (size_t)n;
    }
    close(fd);
    return k;
}

/* The pages every process writes before main (the header, the depot's header and
 * buckets, the first module records, the record sections' headers): all reserved
 * above (the sections after the depot wholly), prefaulted in one call each. Each would otherwise take a write fault on the
 * shared file (ext4's page_mkwrite, a journal handle): 100-200 us apiece on the
 * machine of bench/README.md, some 50 of them; a bucket is written wherever its hash
 * falls, so with a few hundred stacks nearly every bucket page is. */
static void populate_fixed(const struct race_hdr *h, uint64_t depot_fixed)
{
    const struct race_section *rec[3] = {&h->findings, &h->probes, &h->crashes};
    madvise(map_base, RACE_HDR_SIZE, MADV_POPULATE_WRITE);
    madvise(map_base + h->depot.off, round_up(depot_fixed, PAGE), MADV_POPULATE_WRITE);
    madvise(map_base + h->modules.off, h->modules.size < 16384 ? h->modules.size : 16384, MADV_POPULATE_WRITE);
    for (int i = 0; i < 3; i++)
        if (rec[i]->size)
            madvise(map_base + rec[i]->off / PAGE * PAGE, PAGE, MADV_POPULATE_WRITE);
}

static int create_file(char *path, size_t cap)
{
    char name[80], num[24];
    exe_name(name, sizeof(name));
    race_fmt_u64(num, (uint64_t)getpid());
    for (int attempt = 0; attempt < 100; attempt++) {
        size_t k = race_strlcpy(path, race_opt.RACE_DIR, cap);
        k += race_strlcpy(path + k, "/race.", cap - k);
        k += race_strlcpy(path + k, name, cap - k);
        k += race_strlcpy(path + k, ".", cap - k);
        k += race_strlcpy(path + k, num, cap - k);
        if (attempt) {
            char a[24];
            race_fmt_u64(a, (uint64_t)attempt);
            k += race_strlcpy(path + k, ".", cap - k);
            k += race_strlcpy(path + k, a, cap - k);
        }
        race_strlcpy(path + k, ".trace", cap - k);
        int fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (fd >= 0 || errno != EEXIST)
            return fd;
    }
    return -1;
}

/* Returns 0 when recording, -1 (with one notice) when not. */
int race_trace_open(int forked)
{
    char path[4200];
    uint64_t ring = (uint64_t)race_opt.RACE_RING_MB << 20;
    uint64_t nchunks = ring / RACE_CHUNK_SIZE;
    uint64_t depot = (uint64_t)race_opt.RACE_DEPOT_MB << 20;
    struct race_layout lay = {nchunks, depot, MODULES_SIZE, FINDINGS_SIZE, PROBES_SIZE, CRASHES_SIZE,
                              race_opt.RACE_RUBY_DEPTH ? RBFRAMES_SIZE : 0};
    uint64_t size = race_layout_size(&lay);

    int fd = create_file(path, sizeof(path));
    if (fd < 0) {
        race_notice("cannot create a trace file in RACE_DIR=", race_opt.RACE_DIR, ": ",
                    strerrordesc_np(errno));
        return -1;
    }
    /* Sparse at full size; reserved up front: the header, the depot's header and
     * buckets (written anywhere), the module log, and the findings, probes and crashes
     * sections (written from signal handlers, where nothing may be dropped). */
    uint64_t ring_end = RACE_HDR_SIZE + nchunks * RACE_CHUNK_SIZE;
    uint64_t depot_fixed = race_depot_fixed(depot);
    int rc = ftruncate(fd, (off_t)size);
    if (rc == 0)
        rc = reserve_range(fd, 0, RACE_HDR_SIZE);
    if (rc == 0)
        rc = reserve_range(fd, ring_end, round_up(depot_fixed, RACE_RESERVE_STEP));
    if (rc == 0)
        rc = reserve_range(fd, ring_end + depot, size - ring_end - depot);
    if (rc != 0) {
        int e = errno;
        unlink(path);
        close(fd);
        race_notice("cannot reserve space for ", path, ": ", strerrordesc_np(e));
        return -1;
    }
    /* A fork child maps its trace over its parent's, at the same address: the
     * probes' records (watch.c) and whatever else points into the trace stay valid,
     * and nothing of the child's can reach the parent's file. */
    void *at = fork_at;
    int fixed = at && size == fork_at_size;
    if (at && !fixed)
        munmap(at, fork_at_size);
    fork_at = NULL;
    void *map = mmap(fixed ? at : NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | (fixed ? MAP_FIXED : 0), fd, 0);
    int e = errno;
    struct stat st;
    if (map == MAP_FAILED || fstat(fd, &st) != 0) {
        e = errno;
        close(fd);
        unlink(path);
        race_notice("cannot map ", path, ": ", strerrordesc_np(e));
        return -1;
    }
    /* Out of the low numbers a program may expect to get from its own first open(). */
    int high = fcntl(fd, F_DUPFD_CLOEXEC, 512);
    if (high >= 0) {
        close(fd);
        fd = high;
    }
    map_base = map;
    trace_fd = fd;
    trace_dev = st.st_dev;
    trace_ino = st.st_ino;
    reserve_failed = 0;

    /* Only the ring is written front to back; readahead around the header and the
     * other sections zero-fills pages nobody touches and costs start-up time. */
    madvise(map, RACE_HDR_SIZE, MADV_RANDOM);
    madvise((uint8_t *)map + RACE_HDR_SIZE + nchunks * RACE_CHUNK_SIZE, size - RACE_HDR_SIZE - nchunks * RACE_CHUNK_SIZE,
            MADV_RANDOM);
    struct race_hdr *h = map;
    race_hdr_layout(h, &lay);
    populate_fixed(h, depot_fixed);
    h->flags = forked ? RACE_FLAG_FORKED : 0;
    h->pid = getpid();
    h->ppid = getppid();
    h->clock = (uint32_t)race_g.clock;
    struct timespec rt;
    clock_gettime(CLOCK_REALTIME, &rt);
    h->start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000ull + (uint64_t)rt.tv_nsec;
    h->clock_ts0 = race_now();
    h->clock_mono0 = race_g.clock == RACE_CLOCK_TSC ? race_mono_ns() : h->clock_ts0;
    h->early_frees = race_record_early();
    h->stack_sample = (uint32_t)race_opt.RACE_STACK_SAMPLE;
    h->stack_depth = (uint32_t)race_opt.RACE_STACK_DEPTH;
    race_ruby_header(h);
    ssize_t n = readlink("/proc/self/exe", h->exe, sizeof(h->exe) - 1);
    if (n > 0)
        h->exe[n] = 0;
    h->cmdline_len = (uint32_t)read_file("/proc/self/cmdline", h->cmdline, sizeof(h->cmdline));
    h->options_len = (uint32_t)race_options_format(h->options, sizeof(h->options));

    race_g.map_size = size;
    race_strlcpy(trace_path, path, sizeof(trace_path));
    race_ring_attach(h);
    race_depot_init(h);
    race_modules_init(h);
    race_findings_init(h);
    race_findings_path(trace_path);
    __atomic_store_n(&race_g.hdr, h, __ATOMIC_RELEASE);
    if (race_opt.RACE_VERBOSE)
        race_notice("recording to ", path, NULL, NULL);
    return 0;
}

void race_trace_close(void)
{
    struct race_hdr *h = race_g.hdr;
    if (!h)
        return;
    h->clock_ts1 = race_now();
    h->clock_mono1 = race_g.clock == RACE_CLOCK_TSC ? race_mono_ns() : h->clock_ts1;
    trim(h);
    __atomic_or_fetch(&h->flags, RACE_FLAG_CLOSED, __ATOMIC_RELEASE);
}

/* The child of fork() gets a trace of its own; the parent's mapping is dropped so the
 * child can never write into its parent's file. */
static void atfork_child(void)
{
    struct race_hdr *old = race_g.hdr;
    uint64_t old_size = race_g.map_size;
    race_g.hdr = NULL;
    race_g.epoch++;
    if (trace_fd >= 0 && trace_file() == trace_fd)
        close(trace_fd); /* the parent's */
    trace_fd = -1;
    if (!old)
        return;
    /* What is watched was decided before the fork, and the child's ENTER/EXIT/HIT
     * events name the same probe records: they are carried into its trace (with
     * their hit counts reset to the child's own). */
    uint64_t poff = old->probes.off, psize = old->probes.size;
    void *saved = psize ? mmap(NULL, psize, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0) : NULL;
    if (saved == MAP_FAILED)
        saved = NULL;
    if (saved)
        memcpy(saved, (uint8_t *)old + poff, psize);
    fork_at = old;
    fork_at_size = old_size;
    if (race_trace_open(1) != 0) {
        munmap(old, old_size); /* never write into the parent's file */
        race_notice("the forked child (pid ", "", "", ") records nothing");
    } else if (saved && race_g.hdr->probes.off == poff && race_g.hdr->probes.size == psize) {
        struct race_probe_hdr *ph = (struct race_probe_hdr *)((uint8_t *)race_g.hdr + poff);
        memcpy(ph, saved, psize);
        struct race_probe_rec *rec = (struct race_probe_rec *)(ph + 1);
        uint64_t n = ph->used < ph->cap ? ph->used : ph->cap;
        for (uint64_t i = 0; i < n; i++)
            __atomic_store_n(&rec[i].hits, 0, __ATOMIC_RELAXED);
    }
    if (saved)
        munmap(saved, psize);
}

__attribute__((constructor)) static void race_init(void)
{
    race_options_parse();
    race_interpose_resolve();
    race_clock_init();
    race_g.stack_sample = (int32_t)race_opt.RACE_STACK_SAMPLE;
    race_g.stack_depth = (int32_t)race_opt.RACE_STACK_DEPTH;
    race_g.epoch = 1;
    if (getauxval(AT_SECURE)) {
        race_notice("setuid/setgid program (AT_SECURE): no trace is written", NULL, NULL, NULL);
        race_g.started = 1;
        return;
    }
    race_stacks_init();
    race_ring_init();
    race_g.on_finding_abort = race_opt.RACE_ON_FINDING[0] == 'a';
    if (race_trace_open(0) != 0)
        _exit(RACE_EXIT_TRACE);
    /* The Ruby layout and the watch look many names up in the same few files:
     * each is read once (race_elf_hold) and closed before main. The frees and
     * allocations of that reading are the shim's own (libelf's): recorded, but never
     * given a sampled stack or a guarded slot (busy), which cost milliseconds of cold
     * unwinding through libelf and hold nothing for the program. */
    race_tls.busy++;
    race_elf_hold(1);
    race_ruby_init();
    race_ruby_header(race_g.hdr);
    race_pool_init();
    race_quarantine_init();
    race_g.guard_sites = race_pool_base && race_opt.RACE_GUARD_SITES[0];
    race_signals_init();
    race_watch_init(race_g.hdr);
    race_elf_hold(0);
    race_tls.busy--;
    pthread_atfork(NULL, NULL, atfork_child);
    race_g.started = 1;
}

__attribute__((destructor)) static void race_fini(void)
{
    if (race_opt.RACE_VERBOSE)
        race_ruby_ci_summary();
    race_trace_close();
}
