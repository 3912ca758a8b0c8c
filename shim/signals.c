/* signals.c - keeps the shim's handlers first: SIGSEGV/SIGBUS (findings), SIGTRAP and
 * the probe handshake signal, and SIGILL/SIGFPE/SIGABRT (crash records, crash.c).
 * sigaction() and signal() are interposed: for these signals the program's handler is
 * stored, not installed, and a signal that is not ours is handed to it exactly as the
 * kernel would have (SA_SIGINFO or not, its mask, SA_RESETHAND, SIG_DFL dies with the
 * signal, SIG_IGN on a real fault dies too). Also gives every thread an alternate
 * signal stack (the pthread_create wrapper). The handler path is async-signal-safe:
 * no locks, no malloc. */
#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "probe.h"
#include "shim.h"

#define ALTSTACK_SIZE (64u * 1024u)
#define NSIG_OURS 65

static int (*real_sigaction)(int, const struct sigaction *, struct sigaction *);
static int (*real_pthread_create)(pthread_t *, const pthread_attr_t *, void *(*)(void *), void *);
static struct sigaction app[NSIG_OURS]; /* what the program believes is installed */
static int ours[NSIG_OURS];
static pthread_key_t altstack_key;
static __thread int in_handler __attribute__((tls_model("initial-exec"))); /* in the shim's own part */

int race_fault_handle(int sig, siginfo_t *si, void *uc);

/* The shim's own handler code faulted (not one of its fault-safe loads, not an unwind the
 * crash recorder can abandon): handing it on would run the same code again, forever.
 * Die of the signal as the kernel would have. */
static void die_of(int sig)
{
    struct sigaction d;
    memset(&d, 0, sizeof(d));
    d.sa_handler = SIG_DFL;
    real_sigaction(sig, &d, NULL);
    ours[sig] = 0;
}

static void on_signal(int sig, siginfo_t *si, void *uc)
{
    int e = errno;
    int fault = si && si->si_code > 0 && race_crash_is_fatal(sig) && sig != SIGABRT;
    if (in_handler && fault) {
        /* Opening a slot for a continue-mode access races with the slot's reuse on
         * another thread, which may close it again under this handler's poisoning:
         * open it again and go on; no finding, the shim made the access. */
        if ((sig == SIGSEGV || sig == SIGBUS) && race_pool_owns(si->si_addr) &&
            race_pool_reopen((uintptr_t)si->si_addr)) {
            errno = e;
            return;
        }
        if (!race_arch_fixup(uc)) {
            race_crash_unwind_fault(); /* returns only when no unwind was running */
            die_of(sig);
        }
        errno = e;
        return;
    }
    int nested = in_handler;
    in_handler = 1;
    int ours_ = (sig == SIGTRAP || sig == race_probe_sync_signal()) ? race_probe_trap(si, uc)
                                                                    : race_fault_handle(sig, si, uc);
    if (!ours_ && race_crash_is_fatal(sig) && !race_signal_ignored(sig, si)) {
        uint32_t c = race_crash_record(sig, si, uc);
        uint32_t prev = race_crash_open(c);
        in_handler = nested;
        race_signal_chain(sig, si, uc);
        race_crash_open(prev);
    } else {
        in_handler = nested;
        if (!ours_)
            race_signal_chain(sig, si, uc);
    }
    errno = e;
}

int race_signal_ignored(int sig, const void *siv)
{
    const siginfo_t *si = siv;
    return app[sig].sa_handler == SIG_IGN && !(si && si->si_code > 0);
}

void race_signal_chain(int sig, void *siv, void *uc)
{
    siginfo_t *si = siv;
    struct sigaction a = app[sig];
    int from_kernel = si && si->si_code > 0; /* a real fault, not kill() or sigqueue() */
    if (a.sa_handler == SIG_IGN && !from_kernel)
        return;
    if (a.sa_handler == SIG_DFL || a.sa_handler == SIG_IGN) {
        /* Die as the kernel would have made us die: a real fault re-executes and
         * faults again under SIG_DFL; a sent signal is sent again. */
        struct sigaction d;
        memset(&d, 0, sizeof(d));
        d.sa_handler = SIG_DFL;
        real_sigaction(sig, &d, NULL);
        ours[sig] = 0;
        if (!from_kernel)
            raise(sig);
        return;
    }
    sigset_t mask, old;
    mask = a.sa_mask;
    if (!(a.sa_flags & SA_NODEFER))
        sigaddset(&mask, sig);
    pthread_sigmask(SIG_BLOCK, &mask, &old);
    if (a.sa_flags & SA_NODEFER) {
        sigset_t un;
        sigemptyset(&un);
        sigaddset(&un, sig);
        pthread_sigmask(SIG_UNBLOCK, &un, NULL);
    }
    if (a.sa_flags & SA_RESETHAND) {
        memset(&app[sig], 0, sizeof(app[sig]));
        app[sig].sa_handler = SIG_DFL;
    }
    if (a.sa_flags & SA_SIGINFO)
        a.sa_sigaction(sig, si, uc);
    else
        a.sa_handler(sig);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}

static void take(int sig, int extra)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO | SA_ONSTACK | extra;
    sigemptyset(&sa.sa_mask);
    if (real_sigaction(sig, NULL, &app[sig]) == 0 && real_sigaction(sig, &sa, NULL) == 0)
        ours[sig] = 1;
}

static void altstack_on(void)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && !(cur.ss_flags & SS_DISABLE))
        return; /* the thread has one already (Ruby gives its threads their own) */
    void *p = mmap(NULL, ALTSTACK_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
    if (p == MAP_FAILED)
        return;
    stack_t ss = {.ss_sp = p, .ss_flags = 0, .ss_size = ALTSTACK_SIZE};
    if (sigaltstack(&ss, NULL) != 0) {
        munmap(p, ALTSTACK_SIZE);
        return;
    }
    pthread_setspecific(altstack_key, p);
}

static void altstack_off(void *p)
{
    stack_t cur;
    if (sigaltstack(NULL, &cur) == 0 && cur.ss_sp == p && !(cur.ss_flags & SS_ONSTACK)) {
        stack_t off = {.ss_sp = NULL, .ss_flags = SS_DISABLE, .ss_size = 0};
        sigaltstack(&off, NULL);
    }
    if (!(cur.ss_sp == p && (cur.ss_flags & SS_ONSTACK)))
        munmap(p, ALTSTACK_SIZE);
}

void race_signals_init(void)
{
    real_sigaction = (__typeof__(real_sigaction))dlsym(RTLD_NEXT, "sigaction");
    real_pthread_create = (__typeof__(real_pthread_create))dlsym(RTLD_NEXT, "pthread_create");
    if (!real_sigaction)
        return;
    pthread_key_create(&altstack_key, altstack_off);
    altstack_on();
    /* SA_NODEFER: a load in the handler itself may fault and must reach the fixup */
    take(SIGSEGV, SA_NODEFER);
    take(SIGBUS, SA_NODEFER);
    /* Crash records only (crash.c); the program's handler sees these as before. */
    take(SIGILL, SA_NODEFER);
    take(SIGFPE, SA_NODEFER);
    take(SIGABRT, SA_NODEFER);
    /* A breakpoint hit while SIGTRAP is blocked would kill the process: never defer it. */
    take(SIGTRAP, SA_NODEFER);
    /* The probe engine's handshake signal must not make a blocked read() fail. */
    take(race_probe_sync_signal(), SA_RESTART);
}

RACE_EXPORT int sigaction(int sig, const struct sigaction *act, struct sigaction *old)
{
    if (!real_sigaction) {
        real_sigaction = (__typeof__(real_sigaction))dlsym(RTLD_NEXT, "sigaction");
        if (!real_sigaction) {
            errno = ENOSYS;
            return -1;
        }
    }
    if (sig <= 0 || sig >= NSIG_OURS || !ours[sig])
        return real_sigaction(sig, act, old);
    if (old)
        *old = app[sig];
    if (act)
        app[sig] = *act;
    return 0;
}

RACE_EXPORT sighandler_t signal(int sig, sighandler_t h)
{
    struct sigaction sa, old;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = h;
    sa.sa_flags = SA_RESTART; /* glibc's signal() has BSD semantics */
    sigemptyset(&sa.sa_mask);
    if (sigaction(sig, &sa, &old) != 0)
        return SIG_ERR;
    return (old.sa_flags & SA_SIGINFO) ? (sighandler_t)(void (*)(void))old.sa_sigaction : old.sa_handler;
}

struct start {
    void *(*fn)(void *);
    void *arg;
};

static void *thread_start(void *p)
{
    struct start s = *(struct start *)p;
    free(p);
    altstack_on();
    return s.fn(s.arg);
}

RACE_EXPORT int pthread_create(pthread_t *t, const pthread_attr_t *attr, void *(*fn)(void *), void *arg)
{
    if (!real_pthread_create)
        real_pthread_create = (__typeof__(real_pthread_create))dlsym(RTLD_NEXT, "pthread_create");
    struct start *s = ours[SIGSEGV] ? malloc(sizeof(*s)) : NULL;
    if (!s)
        return real_pthread_create(t, attr, fn, arg);
    s->fn = fn;
    s->arg = arg;
    int rc = real_pthread_create(t, attr, thread_start, s);
    if (rc != 0)
        free(s);
    return rc;
}
