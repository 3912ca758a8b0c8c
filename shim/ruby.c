/* ruby.c - the Ruby layout table (one row per version: every offset and tag race
 * reads in CRuby's memory), and the Ractor id of the running code, read at event time
 * from ruby_current_ec -> thread -> ractor -> id with offsets that are validated once
 * on the main thread before any id is trusted. The hot read (ruby.h) is four loads
 * and never caches thread -> Ractor (the M:N scheduler moves Ractors between native
 * threads). Validation reads through
 * process_vm_readv so that a wrong offset cannot fault. Never calls Ruby's API. */
#include <dlfcn.h>
#include <link.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

#include "debuginfo.h"
#include "shim.h"

/* The layouts race knows (struct race_ruby_layout in ruby.h says which header each
 * field comes from). The call-info and object-header numbers of 3.1 are listed though
 * 3.1 has no call-info table: nothing reads them there. */
static const struct race_ruby_layout layouts[] = {
    {.major = 3, .minor = 1,
     .verified = "3.1.7 (Debian): Ractor offsets at run time with a C extension (ids 1-4 matched "
                 "Ractor.current); the rest from 3.1.2's headers (Debian's ruby3.1 source); Ruby "
                 "frames: lines and paths matched caller_locations in tests/t_rubyframes.sh",
     .ec_thread = 48, .thread_ractor = 24, .ractor_id = 8, .thread_vm = 32, .vm_main_ractor = 32,
     .ci_table = 0, .ci_kwarg = 8, .ci_size = 40, .kwarg_refs = 0, .kwarg_keywords = 8,
     .t_mask = 0x1f, .t_imemo = 0x1a, .imemo_shift = 12, .imemo_mask = 0xf, .imemo_callinfo = 11,
     .special_bits = 8, .symbol_flag = 0x0c,
     .ec_vm_stack = 0, .ec_vm_stack_size = 8, .ec_cfp = 16, .cfp_pc = 0, .cfp_iseq = 16, .cfp_ep = 32,
     .iseq_body = 16, .body_iseq_size = 4, .body_encoded = 8, .body_pathobj = 64, .body_label = 80,
     .insn_entry_size = 12, .imemo_iseq = 7, .imemo_ment = 6,
     .frame_magic_mask = 0x7fff0001, .frame_magic_cfunc = 0x55550001, .ep_me_cref = -2,
     .me_def = 16, .def_cfunc_func = 8, .method_type_cfunc = 1,
     .t_string = 0x05, .t_array = 0x07, .str_noembed = 1u << 13, .str_ptr = 24,
     .ary_embed = 1u << 13, .ary_ary = 16, .ary_len = 16, .ary_ptr = 32,
     /* 3.1: __bp__ and jit_return make a control frame 64 bytes; location.first_lineno is
      * a VALUE, so insns_info starts at 120; RString keeps an embedded length in the
      * flags (RSTRING_EMBED_LEN_SHIFT 14) and its bytes at 16 */
     .cfp_size = 64, .body_insns = 120, .body_insns_size = 136, .body_succ = 144,
     .str_len = 16, .str_len_shift = 14, .str_ary = 16,
    },
    {.major = 3, .minor = 3,
     .verified = "3.3.8 (Debian's ruby3.3 3.3.8-2 source): every number by tests/ruby/layout.c against "
                 "its configured tree; run-time validation; tests/t_ruby33.sh",
     .ec_thread = 48, .thread_ractor = 24, .ractor_id = 8, .thread_vm = 32, .vm_main_ractor = 32,
     .ci_table = 1, .ci_kwarg = 8, .ci_size = 40, .kwarg_refs = 4, .kwarg_keywords = 8,
     .t_mask = 0x1f, .t_imemo = 0x1a, .imemo_shift = 12, .imemo_mask = 0xf, .imemo_callinfo = 11,
     .special_bits = 8, .symbol_flag = 0x0c,
     .ec_vm_stack = 0, .ec_vm_stack_size = 8, .ec_cfp = 16, .cfp_pc = 0, .cfp_iseq = 16, .cfp_ep = 32,
     .iseq_body = 16, .body_iseq_size = 4, .body_encoded = 8, .body_pathobj = 64, .body_label = 80,
     .insn_entry_size = 12, .imemo_iseq = 7, .imemo_ment = 6,
     .frame_magic_mask = 0x7fff0001, .frame_magic_cfunc = 0x55550001, .ep_me_cref = -2,
     .me_def = 16, .def_cfunc_func = 8, .method_type_cfunc = 1,
     .t_string = 0x05, .t_array = 0x07, .str_noembed = 1u << 13, .str_ptr = 24,
     .ary_embed = 1u << 13, .ary_ary = 16, .ary_len = 16, .ary_ptr = 32,
     /* 3.3 on: a control frame is 56 bytes (jit_return, no __bp__), insns_info at 112;
      * RString's len at 16 for both forms and an embedded string's bytes at 24 */
     .cfp_size = 56, .body_insns = 112, .body_insns_size = 128, .body_succ = 136,
     .str_len = 16, .str_len_shift = 0, .str_ary = 24,
    },
    {.major = 3, .minor = 4,
     .verified = "3.4.5 (Debian's ruby3.4 3.4.5-1~exp1 source): ptype /o on its debug info and every "
                 "number by tests/ruby/layout.c against its configured tree; run-time validation; "
                 "tests/t_ruby34.sh",
     .ec_thread = 48, .thread_ractor = 24, .ractor_id = 8, .thread_vm = 32, .vm_main_ractor = 32,
     .ci_table = 1, .ci_kwarg = 8, .ci_size = 40, .kwarg_refs = 4, .kwarg_keywords = 8,
     .t_mask = 0x1f, .t_imemo = 0x1a, .imemo_shift = 12, .imemo_mask = 0xf, .imemo_callinfo = 11,
     .special_bits = 8, .symbol_flag = 0x0c,
     .ec_vm_stack = 0, .ec_vm_stack_size = 8, .ec_cfp = 16, .cfp_pc = 0, .cfp_iseq = 16, .cfp_ep = 32,
     .iseq_body = 16, .body_iseq_size = 4, .body_encoded = 8, .body_pathobj = 64, .body_label = 80,
     .insn_entry_size = 12, .imemo_iseq = 7, .imemo_ment = 6,
     .frame_magic_mask = 0x7fff0001, .frame_magic_cfunc = 0x55550001, .ep_me_cref = -2,
     .me_def = 16, .def_cfunc_func = 8, .method_type_cfunc = 1,
     .t_string = 0x05, .t_array = 0x07, .str_noembed = 1u << 13, .str_ptr = 24,
     .ary_embed = 1u << 13, .ary_ary = 16, .ary_len = 16, .ary_ptr = 32,
     /* 3.3 on: a control frame is 56 bytes (jit_return, no __bp__), insns_info at 112;
      * RString's len at 16 for both forms and an embedded string's bytes at 24 */
     .cfp_size = 56, .body_insns = 112, .body_insns_size = 128, .body_succ = 136,
     .str_len = 16, .str_len_shift = 0, .str_ary = 24,
    },
    {.major = 4, .minor = 0,
     .verified = "4.0.0: field order from its DWARF (a WASI build), not run here; imemo_callinfo "
                 "not checked (no slot checks)",
     .ec_thread = 48, .thread_ractor = 24, .ractor_id = 8, .thread_vm = 32, .vm_main_ractor = 32,
     .ci_table = 1, .ci_kwarg = 8, .ci_size = 40, .kwarg_refs = 4, .kwarg_keywords = 8,
     .t_mask = 0x1f, .t_imemo = 0x1a, .imemo_shift = 12, .imemo_mask = 0xf, .imemo_callinfo = 0,
     .special_bits = 8, .symbol_flag = 0x0c,
     /* Ruby frames: not verified on 4.0 (cfp_size 0 turns them off) */
    },
};

int race_ruby_state = RACE_RACTOR_UNKNOWN;
intptr_t race_ec_tpoff;
const uint32_t *race_ractor_off;
void *const *race_vm_ptr;
static const struct race_ruby_layout *layout;
static uint32_t ractor_off[4]; /* the hot read's hops, in the header's order */
static char version[64];
int race_ruby_pending;       /* a known Ruby: validation still to do */
static uint32_t main_tid;
static uint64_t attempts;

/* A symbol's value from the object's .dynsym or .symtab (libelf: start-up only). */
static int symbol(const char *path, const char *name, uint64_t *value, int *tls)
{
    struct race_symbol sym;
    if (race_symbol_lookup(path, NULL, name, &sym, NULL, 0) != 1)
        return 0;
    *value = sym.value;
    *tls = sym.tls;
    return 1;
}

struct found {
    char path[512];
    uintptr_t base;
    int hit;
};

static int find_cb(struct dl_phdr_info *info, size_t size, void *arg)
{
    (void)size;
    struct found *f = arg;
    const char *name = info->dlpi_name;
    if (f->hit)
        return 1;
    if (name && name[0] && !strstr(name, "libruby"))
        return 0;
    char path[512];
    if (name && name[0]) {
        race_strlcpy(path, name, sizeof(path));
    } else {
        ssize_t n = readlink("/proc/self/exe", path, sizeof(path) - 1);
        if (n <= 0)
            return 0;
        path[n] = 0;
    }
    uint64_t v;
    int tls;
    if (symbol(path, "ruby_current_ec", &v, &tls) && tls) {
        race_strlcpy(f->path, path, sizeof(f->path));
        f->base = info->dlpi_addr;
        f->hit = (name && name[0]) ? 1 : 2;
    }
    return 0;
}

static void set_state(int s)
{
    __atomic_store_n(&race_ruby_state, s, __ATOMIC_RELEASE);
    if (race_g.hdr)
        race_g.hdr->ractor_state = (uint32_t)s;
}

void race_ruby_init(void)
{
    struct found f;
    memset(&f, 0, sizeof(f));
    /* The call-info check also watches a function of its name in programs that are no
     * Ruby (it applies no layout there): it registers whatever this process is. */
    race_ruby_ci_register();
    main_tid = (uint32_t)gettid();
    dl_iterate_phdr(find_cb, &f);
    if (!f.hit) {
        set_state(RACE_RACTOR_NOT_RUBY);
        /* Most processes are no Ruby (race run follows a shell and all it starts): the
         * header says so for `race stats`; stderr hears it only when asked. */
        if (race_opt.RACE_VERBOSE)
            race_notice("not a Ruby process (no ruby_current_ec): Ractor ids are 0", NULL, NULL, NULL);
        return;
    }
    uint64_t v = 0, ec_off = 0, vmp = 0;
    int tls;
    if (symbol(f.path, "ruby_version", &v, &tls) && !tls)
        race_strlcpy(version, (const char *)(f.base + v), sizeof(version));
    int major = 0, minor = 0;
    const char *s = version;
    while (*s >= '0' && *s <= '9')
        major = major * 10 + (*s++ - '0');
    if (*s == '.')
        s++;
    while (*s >= '0' && *s <= '9')
        minor = minor * 10 + (*s++ - '0');
    for (size_t i = 0; i < sizeof(layouts) / sizeof(layouts[0]); i++)
        if (layouts[i].major == major && layouts[i].minor == minor)
            layout = &layouts[i];
    if (layout) {
        ractor_off[0] = layout->ec_thread;
        ractor_off[1] = layout->thread_ractor;
        ractor_off[2] = layout->ractor_id;
    } else {
        set_state(RACE_RACTOR_UNSUPPORTED);
        race_notice("Ruby ", version[0] ? version : "(unknown version)",
                    " has no known layout in race: Ractor ids are 0", NULL);
        return;
    }
    symbol(f.path, "ruby_current_ec", &ec_off, &tls);
    void *h = dlopen(f.hit == 2 ? NULL : f.path, RTLD_NOLOAD | RTLD_LAZY);
    void *block = NULL;
    if (!h || dlinfo(h, RTLD_DI_TLS_DATA, &block) != 0 || !block) {
        if (h)
            dlclose(h);
        set_state(RACE_RACTOR_UNSUPPORTED);
        race_notice("Ruby ", version, ": libruby's TLS block cannot be located: Ractor ids are 0", NULL);
        return;
    }
    dlclose(h);
    uintptr_t tp;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    /* A library loaded with the program sits in static TLS: the same offset from the
     * thread pointer holds on every thread. */
    race_ec_tpoff = (intptr_t)((uintptr_t)block + ec_off - tp);
    if (symbol(f.path, "ruby_current_vm_ptr", &vmp, &tls) && !tls)
        race_vm_ptr = (void *const *)(f.base + vmp);
    race_ractor_off = ractor_off;
    race_ruby_pending = 1;
    if (race_opt.RACE_VERBOSE) {
        race_notice("Ruby ", version, ": layout of ", layout->verified);
        char n[24];
        race_fmt_u64(n, (uint64_t)(race_ec_tpoff < 0 ? -race_ec_tpoff : race_ec_tpoff));
        race_notice("Ruby ", version, ": ruby_current_ec at thread pointer -", n);
    }
}

const struct race_ruby_layout *race_ruby_layout(void)
{
    return layout;
}

void race_ruby_header(struct race_hdr *h)
{
    race_strlcpy(h->ruby_version, version, sizeof(h->ruby_version));
    h->ractor_state = (uint32_t)race_ruby_state;
    if (layout)
        memcpy(h->ractor_off, ractor_off, sizeof(h->ractor_off));
}

static int peek(uintptr_t addr, void *out, size_t n)
{
    struct iovec l = {out, n}, r = {(void *)addr, n};
    return process_vm_readv(getpid(), &l, 1, &r, 1, 0) == (ssize_t)n;
}

static uint32_t fail(const char *why)
{
    race_ruby_pending = 0;
    set_state(RACE_RACTOR_INVALID);
    race_notice("Ruby ", version, ": Ractor-id offsets failed validation on the main thread (", why);
    race_notice("Ractor ids are 0 for this process", NULL, NULL, NULL);
    return 0;
}

/* Until validated, only the main thread may try; everyone else gets 0. Pointers
 * still NULL mean the VM is not up yet: try again on a later event. */
uint32_t race_ractor_slow(void)
{
    if (!race_ruby_pending)
        return 0;
    uint32_t tid = race_tls.tid ? race_tls.tid : (uint32_t)gettid();
    if (tid != main_tid)
        return 0;
    if (++attempts > 10000000)
        return fail("the VM never came up)");
    uintptr_t tp, ec, th, r, vm, mr;
    uint32_t id;
    __asm__("mov %%fs:0, %0" : "=r"(tp));
    ec = *(const uintptr_t *)(tp + race_ec_tpoff);
    if (!ec)
        return 0;
    if (!peek(ec + layout->ec_thread, &th, 8))
        return fail("ec unreadable)");
    if (!th)
        return 0;
    if (!peek(th + layout->thread_ractor, &r, 8) || !peek(th + layout->thread_vm, &vm, 8))
        return fail("thread unreadable)");
    if (!r || !vm)
        return 0;
    if (race_vm_ptr && *race_vm_ptr && (uintptr_t)*race_vm_ptr != vm)
        return fail("thread->vm is not ruby_current_vm_ptr)");
    if (!peek(vm + layout->vm_main_ractor, &mr, 8))
        return fail("vm unreadable)");
    if (!mr)
        return 0;
    if (mr != r)
        return fail("main thread's ractor is not vm->ractor.main_ractor)");
    if (!peek(r + layout->ractor_id, &id, 4))
        return fail("ractor unreadable)");
    if (id != 1)
        return fail("main Ractor's id is not 1)");
    race_ruby_pending = 0;
    set_state(RACE_RACTOR_VALID);
    if (race_opt.RACE_VERBOSE)
        race_notice("Ruby ", version, ": Ractor-id offsets validated on the main thread", NULL);
    return 1;
}

/* The VM frees its threads and Ractors while it is destroyed, and the main thread's
 * ec keeps pointing into them (a quarantine fills them with poison): from here on no
 * Ractor id is read. The header keeps the state the run had. */
RACE_EXPORT int ruby_vm_destruct(void *vm)
{
    static int (*real)(void *);
    if (!real)
        real = (int (*)(void *))dlsym(RTLD_NEXT, "ruby_vm_destruct");
    race_ruby_pending = 0;
    __atomic_store_n(&race_ruby_state, RACE_RACTOR_INVALID, __ATOMIC_RELEASE);
    return real ? real(vm) : 0;
}
