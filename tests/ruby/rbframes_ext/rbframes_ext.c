/* rbframes_ext.c - for tests/t_rubyframes.sh on Debian's Ruby 3.1: a VM whose control
 * frames are corrupt, as a memory bug leaves them. RbFramesExt.corrupt_and_crash points
 * its caller's control frame at a PROT_NONE page (the iseq a use-after-free left behind)
 * and then takes a SIGSEGV: the crash record's Ruby walk must end there with a note,
 * and the shim must not fault. The offsets are Ruby 3.1's (vm_core.h: ec->cfp at 16, a
 * 64-byte rb_control_frame_t with iseq at 16), as race's layout table has them. */
#include <signal.h>
#include <stdint.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ruby.h"

extern __thread void *ruby_current_ec; /* exported TLS in Debian's libruby 3.1 */

static VALUE m_corrupt_and_crash(VALUE self)
{
    (void)self;
    uint8_t *cfp = *(uint8_t **)((uint8_t *)ruby_current_ec + 16); /* this C method's frame */
    uint8_t *caller = cfp + 64;
    void *bad = mmap(NULL, 4096, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (bad == MAP_FAILED)
        rb_raise(rb_eRuntimeError, "mmap failed");
    *(void **)(caller + 16) = bad;
    kill(getpid(), SIGSEGV);
    return Qnil;
}

void Init_rbframes_ext(void)
{
    VALUE m = rb_define_module("RbFramesExt");
    rb_define_module_function(m, "corrupt_and_crash", m_corrupt_and_crash, 0);
}
