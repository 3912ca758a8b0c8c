# Ruby 3.4.5 built from Debian's source package with symbols (ruby_current_ec is a
# local TLS symbol in .symtab only). Built once into a cache outside the checkout.
source tests/lib.sh
ruby=$(scripts/build-ruby.sh)
if [ ! -x "$ruby" ]; then
    not_ok "ruby 3.4.5 build" "scripts/build-ruby.sh failed; see its log under ~/.cache/race"
    finish
fi
ruby_checks ruby3.4 "$ruby"
finish
