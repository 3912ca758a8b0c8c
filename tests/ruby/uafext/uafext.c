/* uafext.c - a Ractor-safe C extension with a deliberate use-after-free, for the
 * detector tests: UafExt.alloc(n) returns a block's address (allocated in
 * race_victim_alloc), UafExt.free(addr) frees it (race_victim_free), UafExt.read(addr)
 * reads 8 bytes of it (race_victim_read). Freeing in one Ractor and reading in another
 * is the cross-Ractor bug race must report with both Ractor ids. UafExt.crash makes a
 * real NULL store, for the test that Ruby's own [BUG] report survives the shim. */
#include <ruby.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noinline)) static char *race_victim_alloc(long n)
{
    char *p = malloc((size_t)n);
    memset(p, 0x11, (size_t)n);
    __asm__ volatile("" ::: "memory");
    return p;
}

__attribute__((noinline)) static void race_victim_free(char *p)
{
    free(p);
    __asm__ volatile("" ::: "memory");
}

__attribute__((noinline)) static long race_victim_read(char *p)
{
    long v = ((volatile long *)p)[2];
    __asm__ volatile("" ::: "memory");
    return v;
}

static VALUE m_alloc(VALUE self, VALUE n)
{
    (void)self;
    return ULL2NUM((uintptr_t)race_victim_alloc(NUM2LONG(n)));
}

static VALUE m_free(VALUE self, VALUE a)
{
    (void)self;
    race_victim_free((char *)(uintptr_t)NUM2ULL(a));
    return Qnil;
}

static VALUE m_read(VALUE self, VALUE a)
{
    (void)self;
    return LONG2NUM(race_victim_read((char *)(uintptr_t)NUM2ULL(a)));
}

static VALUE m_crash(VALUE self)
{
    (void)self;
    volatile int *null = NULL;
    *null = 1;
    return Qnil;
}

void Init_uafext(void)
{
#ifdef HAVE_RB_EXT_RACTOR_SAFE
    rb_ext_ractor_safe(true);
#endif
    VALUE m = rb_define_module("UafExt");
    rb_define_module_function(m, "alloc", m_alloc, 1);
    rb_define_module_function(m, "free", m_free, 1);
    rb_define_module_function(m, "read", m_read, 1);
    rb_define_module_function(m, "crash", m_crash, 0);
}
