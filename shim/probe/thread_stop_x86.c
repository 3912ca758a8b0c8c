/* thread_stop_x86.c - moves every other thread out of bytes being patched (a real-time
 * signal handshake; a thread found inside the patched bytes is sent to the same
 * instruction in the relocated copy) and places an entry hook's jump int3-first.
 * Installing maps nothing here but reads /proc; the signal side (sync_answer) is
 * async-signal-safe, takes no lock and writes only the thread table. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "engine_x86.h"

/* ---------------------------------------------------------------- Other threads */

/* A thread may have executed the first instructions of a prologue and be stopped just
 * before one of the later ones when we overwrite them: the handshake signal runs on
 * every other thread, and one found at an instruction start inside the patched bytes
 * is moved to the same instruction in the relocated copy. New callers cannot come in
 * meanwhile: they hit the int3 at the first byte, and branches into the middle were
 * refused. The handshake is a real-time signal, not SIGTRAP: a second SIGTRAP pending
 * while an int3 trap is raised would be merged with it, and the trap lost. */
int sync_sig;
struct sync_thread {
    int32_t tid;
    uint32_t ack;
};
static struct sync_thread *sync_tab; /* THREADS_MAX, mapped at init */
static uint32_t sync_n, sync_gen;
static struct probe *sync_probe;
static int sync_bad;
int sync_cookie; /* its address tells our handshake from a sigqueue of the program's */

struct dirent64_k {
    uint64_t d_ino;
    int64_t d_off;
    unsigned short d_reclen;
    unsigned char d_type;
    char d_name[];
};

const char *sync_init(void)
{
    void *t = mmap(NULL, THREADS_MAX * sizeof(*sync_tab), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (t == MAP_FAILED)
        return "cannot map the thread table";
    sync_tab = t;
    return NULL;
}

/* The other threads of the process, into sync_tab. -1 if they cannot be listed. */
static int list_threads(void)
{
    int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    pid_t self = gettid();
    uint32_t n = 0;
    char buf[4096] __attribute__((aligned(8)));
    for (;;) {
        long k = syscall(SYS_getdents64, fd, buf, sizeof(buf));
        if (k <= 0)
            break;
        for (long off = 0; off < k;) {
            const struct dirent64_k *d = (const struct dirent64_k *)(buf + off);
            off += d->d_reclen;
            int32_t tid = 0;
            const char *s = d->d_name;
            if (*s < '0' || *s > '9')
                continue;
            while (*s >= '0' && *s <= '9')
                tid = tid * 10 + (*s++ - '0');
            if (tid == self)
                continue;
            if (n == THREADS_MAX) {
                close(fd);
                return -1;
            }
            sync_tab[n].tid = tid;
            sync_tab[n].ack = 0;
            n++;
        }
    }
    close(fd);
    __atomic_store_n(&sync_n, n, __ATOMIC_RELEASE);
    return (int)n;
}

/* A thread that did not answer (the signal blocked) is harmless if the kernel shows it
 * blocked in a system call outside the patched bytes: it can come back into them only
 * through their first byte. */
static int blocked_outside(int32_t tid, const struct probe *pr)
{
    char path[64], buf[256];
    snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT; /* gone */
    ssize_t k = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (k <= 0)
        return 0;
    buf[k] = 0;
    if (!strncmp(buf, "running", 7))
        return 0;
    char *last = strrchr(buf, ' ');
    if (!last)
        return 0;
    uintptr_t pc = (uintptr_t)strtoull(last + 1, NULL, 16);
    return !pr || pc <= pr->addr || pc >= pr->addr + pr->len;
}

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

const char *sync_threads(struct probe *pr)
{
    int n = list_threads();
    if (n < 0)
        return "cannot list this process's threads";
    if (n == 0)
        return NULL;
    const char *why = NULL;
    __atomic_store_n(&sync_bad, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&sync_probe, pr, __ATOMIC_RELEASE);
    uint32_t gen = sync_gen + 1;
    __atomic_store_n(&sync_gen, gen, __ATOMIC_RELEASE);
    pid_t pid = getpid();
    for (int i = 0; i < n; i++) {
        siginfo_t si;
        memset(&si, 0, sizeof(si));
        si.si_signo = sync_sig;
        si.si_code = SI_QUEUE;
        si.si_pid = pid;
        si.si_uid = getuid();
        si.si_value.sival_ptr = &sync_cookie;
        for (int tries = 0;; tries++) {
            if (syscall(SYS_rt_tgsigqueueinfo, pid, sync_tab[i].tid, sync_sig, &si) == 0)
                break;
            if (errno == ESRCH) { /* exited since we listed it */
                __atomic_store_n(&sync_tab[i].ack, gen, __ATOMIC_RELAXED);
                break;
            }
            if (errno != EAGAIN || tries == 1000) {
                why = "the sync signal cannot be sent";
                goto out;
            }
            struct timespec ts = { 0, 100000 };
            nanosleep(&ts, NULL);
        }
    }
    int64_t deadline = now_ns() + SYNC_WAIT_NS;
    for (;;) {
        int all = 1;
        for (int i = 0; i < n && all; i++)
            all = __atomic_load_n(&sync_tab[i].ack, __ATOMIC_ACQUIRE) == gen;
        if (all || now_ns() > deadline)
            break;
        struct timespec ts = { 0, 50000 };
        nanosleep(&ts, NULL);
    }
    for (int i = 0; i < n && !why; i++)
        if (__atomic_load_n(&sync_tab[i].ack, __ATOMIC_ACQUIRE) != gen && !blocked_outside(sync_tab[i].tid, pr))
            why = "a thread neither answered the sync signal nor is blocked in a system call";
out:
    __atomic_store_n(&sync_probe, NULL, __ATOMIC_RELEASE);
    if (!why && __atomic_load_n(&sync_bad, __ATOMIC_RELAXED))
        why = "a thread stopped inside the patched bytes between instruction starts";
    return why;
}

void sync_answer(greg_t *g)
{
    uint32_t gen = __atomic_load_n(&sync_gen, __ATOMIC_ACQUIRE);
    const struct probe *pr = __atomic_load_n(&sync_probe, __ATOMIC_ACQUIRE);
    uintptr_t rip = (uintptr_t)g[REG_RIP];
    if (pr && rip > pr->addr && rip < pr->addr + pr->len) {
        int moved = 0;
        for (int i = 0; i < pr->n && !moved; i++)
            if (pr->addr + pr->old_off[i] == rip) {
                g[REG_RIP] = (greg_t)(pr->reloc + pr->new_off[i]);
                moved = 1;
                COUNT(threads_moved);
            }
        if (!moved)
            __atomic_store_n(&sync_bad, 1, __ATOMIC_RELAXED);
    }
    int32_t tid = gettid();
    uint32_t n = __atomic_load_n(&sync_n, __ATOMIC_ACQUIRE);
    for (uint32_t i = 0; i < n; i++)
        if (sync_tab[i].tid == tid) {
            __atomic_store_n(&sync_tab[i].ack, gen, __ATOMIC_RELEASE);
            break;
        }
}

/* The int3-first protocol: while the first byte is an int3, no thread starts the
 * patched bytes (each trap is sent to the entry stub); the others are moved out, the
 * tail is written, every CPU resynchronised, and the first byte completes the jump. */
const char *place_jump(int fd, struct probe *pr, const uint8_t *patch)
{
    static const uint8_t int3 = 0xCC;
    const char *why = "writing code through /proc/self/mem failed", *s;
    if (code_write(fd, pr->addr, &int3, 1))
        goto retire;
    sync_core();
    if ((s = sync_threads(pr))) {
        why = s;
        goto undo;
    }
    if (code_write(fd, pr->addr + 1, patch + 1, pr->len - 1u))
        goto undo;
    sync_core();
    if (code_write(fd, pr->addr, patch, 1))
        goto undo;
    sync_core();
    return NULL;
undo:
    /* Writing back the original tail is harmless even if a thread is still inside: it
     * is either unchanged or no thread is there (the handshake succeeded). */
    (void)code_write(fd, pr->addr + 1, pr->orig + 1, pr->len - 1u);
    sync_core();
    (void)code_write(fd, pr->addr, pr->orig, 1);
    sync_core();
retire:
    __atomic_store_n(&pr->retired, 1, __ATOMIC_RELEASE);
    return why;
}

int race_probe_sync_signal(void)
{
    int s = __atomic_load_n(&sync_sig, __ATOMIC_RELAXED);
    if (!s) {
        s = SIGRTMAX - 3;
        __atomic_store_n(&sync_sig, s, __ATOMIC_RELAXED);
    }
    return s;
}
