require "mkmf"
have_func("rb_ext_ractor_safe", "ruby.h")
create_makefile("uafext")
