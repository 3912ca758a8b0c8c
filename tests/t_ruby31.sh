# Debian's ruby 3.1 (stripped, ruby_current_ec exported as TLS in .dynsym).
source tests/lib.sh
ruby_checks ruby3.1 /usr/bin/ruby no-ci-table
finish
