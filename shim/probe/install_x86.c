/* install_x86.c - the probe engine's installing side and its public interface: the
 * probe table, the install lock, entry hooks (a jump over the prologue into a trampoline)
 * and breakpoint probes (an int3), with their safety checks. Serialized by install_lock;
 * maps memory and is not async-signal-safe. Never calls malloc; a probe is never removed. */
#include <cpuid.h>
#include <linux/membarrier.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "engine_x86.h"

struct probe probes[PROBE_MAX];
uint32_t nprobes;
static pthread_mutex_t install_lock = PTHREAD_MUTEX_INITIALIZER;
static int inited, shstk_on;
int membarrier_ok, force_far;
ZydisDecoder probe_dec;
struct race_probe_stats probe_st;

static const char *init_locked(void)
{
    if (inited)
        return NULL;
    if (ZYAN_FAILED(ZydisDecoderInit(&probe_dec, ZYDIS_MACHINE_MODE_LONG_64, ZYDIS_STACK_WIDTH_64)))
        return "the decoder cannot be initialised";
    const char *why = sync_init();
    if (why)
        return why;
    xsave_init();
    membarrier_ok = syscall(SYS_membarrier, MEMBARRIER_CMD_REGISTER_PRIVATE_EXPEDITED_SYNC_CORE, 0, 0) == 0;
    /* With a CET shadow stack a replaced return address, an emulated call or ret and the
     * thunks' final ret all fault (#CP). */
    unsigned long feat = 0;
    shstk_on = syscall(SYS_arch_prctl, ARCH_SHSTK_STATUS, &feat) == 0 && (feat & 1);
    race_probe_sync_signal();
    inited = 1;
    return NULL;
}

/* The kernel's view, not sigaction()'s, which the shim interposes: an int3 or a sync
 * signal with no handler behind it would kill the process. */
static int handler_ok(int sig, unsigned long need)
{
    struct {
        void *handler;
        unsigned long flags;
        void *restorer;
        uint64_t mask;
    } k;
    if (syscall(SYS_rt_sigaction, sig, NULL, &k, sizeof(k.mask)))
        return 0;
    return k.handler != (void *)SIG_DFL && k.handler != (void *)SIG_IGN && (k.flags & need) == need;
}

static const char *check_handlers(int hook)
{
    if (!handler_ok(SIGTRAP, SA_SIGINFO))
        return "no SA_SIGINFO handler for SIGTRAP (it must call race_probe_trap)";
    /* SA_RESTART: the handshake interrupts threads blocked in system calls. */
    if (hook && !handler_ok(sync_sig, SA_SIGINFO | SA_RESTART))
        return "no SA_SIGINFO|SA_RESTART handler for race_probe_sync_signal() (it must call race_probe_trap)";
    return NULL;
}

static struct probe *probe_new(void)
{
    struct probe *pr = &probes[nprobes];
    memset(pr, 0, sizeof(*pr));
    return pr;
}

static void probe_publish(void)
{
    __atomic_store_n(&nprobes, nprobes + 1, __ATOMIC_RELEASE);
}

static const char *hook_locked(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, int *far_out,
                               int entry_only)
{
    static const uint8_t endbr64[4] = { 0xf3, 0x0f, 0x1e, 0xfa };
    const char *why;
    if (!fn || !cb)
        return "no function or no callback";
    if ((why = init_locked()))
        return why;
    if (shstk_on)
        return "CET shadow stacks are enabled: return addresses cannot be replaced";
    if ((why = check_handlers(1)))
        return why;
    if (nprobes == PROBE_MAX)
        return "the probe table is full";
    /* endbr64 stays where it is, first: indirect calls must still land on it under
     * IBT. The jump goes right after it. */
    uintptr_t p = fn;
    uint8_t head[4];
    if (!fn_size || fn_size >= 4) {
        read_orig(fn, head, 4);
        if (!memcmp(head, endbr64, 4))
            p += 4;
    }
    size_t limit = 0;
    if (fn_size) {
        if (fn_size <= p - fn)
            return "the function is shorter than the jump";
        limit = fn_size - (p - fn);
    }
    struct region r;
    uintptr_t slot = 0;
    size_t bound = 0;
    int far;
    for (far = 0; far < 2 && !slot; far++) {
        if ((why = decode_region(p, far ? FAR_JMP : NEAR_JMP, limit, &r)))
            return why;
        if ((why = check_free(fn, p + r.len)))
            return why;
        if (fn_size && (why = scan_function(fn, fn_size, p, r.len)))
            return why;
        uintptr_t need[MAX_INSNS + 1];
        int nneed = 0;
        if (!far)
            need[nneed++] = p + NEAR_JMP;
        for (int i = 0; i < r.n; i++)
            if (r.in[i].kind == R_RIPREL)
                need[nneed++] = r.in[i].target;
        if (far && r.riprel)
            return "no memory within +-2 GiB of the function, and its prologue has a RIP-relative operand";
        bound = 28 + region_bound(&r);
        slot = code_alloc(bound, need, nneed);
        if (!slot && far)
            return "cannot map memory for a trampoline";
    }
    far--;

    /* The slot: two literals (the probe, the enter thunk), the entry stub that pushes
     * the first and jumps through the second, then the relocated prologue. */
    struct probe *pr = probe_new();
    uint8_t code[1024];
    struct emit e = { code, sizeof(code), 0, slot, NULL };
    uint64_t lit[2] = { (uint64_t)(uintptr_t)pr, (uint64_t)(uintptr_t)race_probe_enter_thunk };
    put(&e, lit, sizeof(lit));
    ZydisEncoderRequest q;
    req_riprel(&q, ZYDIS_MNEMONIC_PUSH, slot);
    put_enc(&e, &q);
    req_riprel(&q, ZYDIS_MNEMONIC_JMP, slot + 8);
    put_enc(&e, &q);
    size_t reloc = e.len;
    uint8_t newoff[MAX_INSNS] = { 0 };
    for (int pass = 0; pass < 2; pass++) {
        e.len = reloc;
        if (emit_region(&r, &e, newoff))
            put_jmp(&e, p + r.len);
    }
    if (e.why)
        return e.why;
    if (reloc != 28)
        return "the entry stub has an unexpected length";

    uint8_t patch[sizeof(pr->orig)];
    memset(patch, 0xCC, sizeof(patch)); /* bytes past the jump: never run, trap if they are */
    struct emit pe = { patch, sizeof(patch), 0, p, NULL };
    if (far) {
        req_riprel(&q, ZYDIS_MNEMONIC_JMP, p + 6);
        put_enc(&pe, &q);
        uint64_t s = slot + 16;
        put(&pe, &s, 8);
    } else {
        req_rel32(&q, ZYDIS_MNEMONIC_JMP, slot + 16);
        put_enc(&pe, &q);
    }
    if (pe.why || pe.len != (far ? FAR_JMP : NEAR_JMP))
        return "the jump cannot be encoded";

    int fd = mem_open();
    if (fd < 0)
        return "cannot open /proc/self/mem for writing";
    if (code_write(fd, slot, code, e.len)) {
        close(fd);
        return "writing code through /proc/self/mem failed";
    }
    code_trim(slot, bound, e.len);
    pr->kind = K_HOOK;
    pr->entry_only = (uint8_t)entry_only;
    pr->addr = p;
    pr->fn = fn;
    pr->stub = slot + 16;
    pr->reloc = slot + reloc;
    pr->reloc_end = slot + e.len;
    pr->cb = cb;
    pr->arg = arg;
    pr->len = r.len;
    pr->n = r.n;
    pr->far = (uint8_t)far;
    for (int i = 0; i < r.n; i++) {
        pr->old_off[i] = r.in[i].off;
        pr->new_off[i] = newoff[i];
    }
    read_orig(p, pr->orig, r.len);
    probe_publish();
    why = place_jump(fd, pr, patch);
    close(fd);
    *far_out = far;
    return why;
}

static const char *break_locked(uintptr_t addr, uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg,
                                int *emulated)
{
    const char *why;
    if (!addr || !cb)
        return "no address or no callback";
    if ((why = init_locked()))
        return why;
    if ((why = check_handlers(0)))
        return why;
    if (nprobes == PROBE_MAX)
        return "the probe table is full";
    size_t limit = 0;
    if (fn) {
        if (addr < fn || (fn_size && addr >= fn + fn_size))
            return "the address is outside the function";
        if ((why = check_boundary(fn, fn_size, addr)))
            return why;
        if (fn_size)
            limit = fn + fn_size - addr;
    }
    if ((why = check_free(addr, addr + 1)))
        return why;
    ZydisDecodedInstruction ins;
    ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
    if ((why = decode_one(addr, limit, &ins, ops)))
        return why;
    if (limit && ins.length > limit)
        return "the instruction runs past the function's end";
    if (ins.mnemonic == ZYDIS_MNEMONIC_INT3)
        return "an int3 is already there (a debugger's breakpoint?)";
    if (ins.mnemonic == ZYDIS_MNEMONIC_XBEGIN)
        return "xbegin cannot be moved";

    struct probe *pr = probe_new();
    uint64_t t = 0;
    int mem = 0;
    int rel = rel_target(&ins, ops, addr, &t, &mem);
    if (rel < 0)
        return "a relative operand cannot be resolved";
    int is_ret = ins.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && (ins.opcode == 0xC3 || ins.opcode == 0xC2);
    if ((rel && !mem) || is_ret) {
        if (shstk_on && (is_ret || ins.meta.category == ZYDIS_CATEGORY_CALL))
            return "CET shadow stacks are enabled: a call or ret cannot be emulated";
        if (!is_ret && ins.operand_width != 64)
            return "a branch with a 16-bit operand size cannot be emulated";
        pr->target = t;
        if (is_ret) {
            pr->emul = E_RET;
            pr->ret_pop = ins.opcode == 0xC2 ? (uint16_t)ins.raw.imm[0].value.u : 0;
        } else if (ins.meta.category == ZYDIS_CATEGORY_UNCOND_BR) {
            pr->emul = E_JMP;
        } else if (ins.meta.category == ZYDIS_CATEGORY_CALL) {
            pr->emul = E_CALL;
        } else if (ins.meta.category == ZYDIS_CATEGORY_COND_BR) {
            switch (ins.mnemonic) {
            case ZYDIS_MNEMONIC_LOOP: pr->emul = E_LOOP; break;
            case ZYDIS_MNEMONIC_LOOPE: pr->emul = E_LOOPE; break;
            case ZYDIS_MNEMONIC_LOOPNE: pr->emul = E_LOOPNE; break;
            case ZYDIS_MNEMONIC_JRCXZ: pr->emul = E_JRCXZ; break;
            case ZYDIS_MNEMONIC_JECXZ: pr->emul = E_JRCXZ; pr->ecx = 1; break;
            default: pr->emul = E_JCC; pr->cc = ins.opcode & 0x0f; break;
            }
            /* With 0x67 loop counts in ecx, and what that does to rcx's upper half is
             * not worth emulating. */
            if (pr->emul >= E_LOOP && pr->emul <= E_LOOPNE && ins.address_width != 64)
                return "a loop with a 32-bit counter cannot be emulated";
            if (pr->emul == E_JCC && !(ins.opcode_map == ZYDIS_OPCODE_MAP_DEFAULT && (ins.opcode & 0xf0) == 0x70) &&
                !(ins.opcode_map == ZYDIS_OPCODE_MAP_0F && (ins.opcode & 0xf0) == 0x80))
                return "a conditional branch of an unknown form";
        } else {
            return "a relative operand on an instruction that is not a branch";
        }
        *emulated = 1;
    } else {
        /* Out of line: the instruction in a trampoline, then a jump back. */
        struct region r;
        if ((why = decode_region(addr, 1, limit, &r)))
            return why;
        uintptr_t need[2];
        int nneed = 0;
        if (r.riprel)
            need[nneed++] = r.in[0].target;
        need[nneed++] = addr + r.len;
        size_t bound = region_bound(&r);
        uintptr_t slot = code_alloc(bound, need, nneed);
        if (!slot && r.riprel)
            return "no memory within +-2 GiB for the copy of a RIP-relative instruction";
        if (!slot)
            slot = code_alloc(bound, NULL, 0);
        if (!slot)
            return "cannot map memory for a trampoline";
        uint8_t code[128];
        struct emit e = { code, sizeof(code), 0, slot, NULL };
        uint8_t newoff[MAX_INSNS] = { 0 };
        if (emit_region(&r, &e, newoff))
            put_jmp(&e, addr + r.len);
        if (e.why)
            return e.why;
        int fd = mem_open();
        if (fd < 0)
            return "cannot open /proc/self/mem for writing";
        int bad = code_write(fd, slot, code, e.len);
        close(fd);
        if (bad)
            return "writing code through /proc/self/mem failed";
        code_trim(slot, bound, e.len);
        pr->stub = pr->reloc = slot;
        pr->reloc_end = slot + e.len;
        pr->n = 1;
    }
    pr->kind = K_BREAK;
    pr->addr = addr;
    pr->len = ins.length;
    pr->cb = cb;
    pr->arg = arg;
    read_orig(addr, pr->orig, ins.length);
    probe_publish();
    /* One byte: every thread runs either the old instruction or the int3, never a mix. */
    static const uint8_t int3 = 0xCC;
    int fd = mem_open();
    if (fd < 0 || code_write(fd, addr, &int3, 1)) {
        if (fd >= 0)
            close(fd);
        __atomic_store_n(&pr->retired, 1, __ATOMIC_RELEASE);
        return fd < 0 ? "cannot open /proc/self/mem for writing" : "writing code through /proc/self/mem failed";
    }
    close(fd);
    sync_core();
    return NULL;
}

/* ---------------------------------------------------------------- Public interface */

static int finish(const char *w, const char **why)
{
    if (w) {
        COUNT(refused);
        if (why)
            *why = w;
        return -1;
    }
    return 0;
}

static int hook(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why, int entry_only)
{
    int far = 0;
    pthread_mutex_lock(&install_lock);
    const char *w = hook_locked(fn, fn_size, cb, arg, &far, entry_only);
    pthread_mutex_unlock(&install_lock);
    if (!w) {
        COUNT(hooks);
        if (far)
            COUNT(hooks_far);
    }
    return finish(w, why);
}

int race_probe_hook(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why)
{
    return hook(fn, fn_size, cb, arg, why, 0);
}

int race_probe_hook_entry(uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why)
{
    return hook(fn, fn_size, cb, arg, why, 1);
}

int race_probe_break(uintptr_t addr, uintptr_t fn, size_t fn_size, race_probe_cb cb, void *arg, const char **why)
{
    int emulated = 0;
    pthread_mutex_lock(&install_lock);
    const char *w = break_locked(addr, fn, fn_size, cb, arg, &emulated);
    pthread_mutex_unlock(&install_lock);
    if (!w) {
        COUNT(breaks);
        if (emulated)
            COUNT(breaks_emulated);
    }
    return finish(w, why);
}

void race_probe_stats(struct race_probe_stats *out)
{
    const uint64_t *src = (const uint64_t *)&probe_st;
    uint64_t *dst = (uint64_t *)out;
    for (size_t i = 0; i < sizeof(probe_st) / sizeof(uint64_t); i++)
        dst[i] = __atomic_load_n(&src[i], __ATOMIC_RELAXED);
}

void race_probe_debug_far(int on)
{
    pthread_mutex_lock(&install_lock);
    force_far = on;
    pthread_mutex_unlock(&install_lock);
}
