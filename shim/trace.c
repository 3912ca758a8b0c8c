/* trace.c - the trace file's life: created at start-up (and again in a fork child)
 * with O_EXCL|O_NOFOLLOW, 0600, its whole size reserved so a full disk fails here and
 * not as SIGBUS later; mapped MAP_SHARED so it survives any death of the process;
 * marked closed by the exit handler. Owns the constructor, the destructor and the
 * atfork child handler. Uses syscalls and stack buffers only: it runs before the
 * allocator is settled and in the child of a multi-threaded fork. */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

__thread struct race_tls race_tls __attribute__((tls_model("initial-exec")));
struct race_global race_g;
static char trace_path[4200];

#define MODULES_SIZE (512u * 1024u)
#define FINDINGS_SIZE (64u + 1024u * sizeof(struct race_finding))
#define PROBES_SIZE (64u + 256u * sizeof(struct race_probe_rec))
#define CRASHES_SIZE (64u + 16u * sizeof(struct race_crash))

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
    struct race_layout lay = {nchunks, depot, MODULES_SIZE, FINDINGS_SIZE, PROBES_SIZE, CRASHES_SIZE};
    uint64_t size = race_layout_size(&lay);

    int fd = create_file(path, sizeof(path));
    if (fd < 0) {
        race_notice("cannot create a trace file in RACE_DIR=", race_opt.RACE_DIR, ": ",
                    strerrordesc_np(errno));
        return -1;
    }
    int rc = fallocate(fd, 0, 0, (off_t)size);
    if (rc != 0 && (errno == EOPNOTSUPP || errno == ENOSYS))
        rc = ftruncate(fd, (off_t)size);
    if (rc != 0) {
        int e = errno;
        unlink(path);
        close(fd);
        race_notice("cannot reserve space for ", path, ": ", strerrordesc_np(e));
        return -1;
    }
    void *map = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    int e = errno;
    close(fd);
    if (map == MAP_FAILED) {
        unlink(path);
        race_notice("cannot map ", path, ": ", strerrordesc_np(e));
        return -1;
    }

    /* Only the ring is written front to back; readahead around the header and the
     * other sections zero-fills pages nobody touches and costs start-up time. */
    madvise(map, RACE_HDR_SIZE, MADV_RANDOM);
    madvise((uint8_t *)map + RACE_HDR_SIZE + nchunks * RACE_CHUNK_SIZE, size - RACE_HDR_SIZE - nchunks * RACE_CHUNK_SIZE,
            MADV_RANDOM);
    struct race_hdr *h = map;
    race_hdr_layout(h, &lay);
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
    race_ring_attach(h);
    race_depot_init(h);
    race_modules_init(h);
    race_findings_init(h);
    race_strlcpy(trace_path, path, sizeof(trace_path));
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
    if (old)
        munmap(old, old_size);
    if (old && race_trace_open(1) != 0)
        race_notice("the forked child (pid ", "", "", ") records nothing");
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
    race_ruby_init();
    race_ruby_header(race_g.hdr);
    race_pool_init();
    race_quarantine_init();
    race_g.guard_sites = race_pool_base && race_opt.RACE_GUARD_SITES[0];
    race_signals_init();
    race_watch_init(race_g.hdr);
    pthread_atfork(NULL, NULL, atfork_child);
    race_g.started = 1;
}

__attribute__((destructor)) static void race_fini(void)
{
    if (race_opt.RACE_VERBOSE)
        race_ruby_ci_summary();
    race_trace_close();
}
