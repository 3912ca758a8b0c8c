require "mkmf"
create_makefile("rbframes_ext")
