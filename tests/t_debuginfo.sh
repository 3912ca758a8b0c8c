# t_debuginfo.sh - the debug-info readers of shim/probe/ (debug-file search, symbols,
# function instances, parameter locations, the references++ finder) on a miniature of Ruby's call-info table built four
# ways, on garbage files, and on the real Rubies when present. Its answers are checked
# against nm, readelf, objdump, addr2line, gdb's breakpoint locations, and registers
# read by gdb in the running program. Needs gcc, binutils, gdb, libdw/libelf, Zydis.
source tests/lib.sh
DI=shim/probe DT=tests
# The readers' sources, as tests/debuginfo_tool.c names them for the Makefile.
DI_SRC=$(sed -n 's/^ *\* *link: *\([^*]*\).*/\1/p' $DT/debuginfo_tool.c)
SRC=$DT/debuginfo
CF="-std=gnu11 -Wall -Wextra -Werror -D_GNU_SOURCE"
TOOL=$T/debuginfo_tool
LIBS="-ldw -lelf -lZydis"
if ! gcc $CF -O2 -g -I$DI -o "$TOOL" $DT/debuginfo_tool.c $DI_SRC; then
    not_ok "build debuginfo_tool" "gcc failed"
    finish
fi
ok "build debuginfo_tool"

# helpers over the tool's output (mawk has no strtonum: hex goes through the shell) ------
hx() { while read -r v; do [ -n "$v" ] && printf '0x%x\n' "$((16#${v#0x}))"; done; }   # normalise hex
field() { sed -n "s/.* $1=\([^ ]*\).*/\1/p" | head -1; }            # field NAME < line
nm_addr() { nm "$1" | awk -v s="$2" '$3 == s { print $1; exit }' | hx; }
sym_addr() { readelf -W "$2" "$1" | awk -v s="$3" '$8 == s { print $2; exit }' | hx; }  # OBJ -s|--dyn-syms NAME
sym_bind() { readelf -W "$2" "$1" | awk -v s="$3" '$8 == s { print $5; exit }'; }
inst_line() { grep "^instance $2 " "$1"; }                             # FILE N
param_of() { grep "^param $2 [0-9]* $3 " "$1"; }                       # FILE N NAME
entries() { sed -n 's/^instance [0-9]* entry=\([^ ]*\).*/\1/p' "$1" | sort; }
gdb_locations() {                                                      # gdb's breakpoint addresses
    gdb -nx -batch -ex "break $2" -ex 'info breakpoints' "$1" 2>/dev/null |
        awk '$1 ~ /^[0-9]+\.[0-9]+$/ && $2 == "y" { print $3 } $2 == "breakpoint" && $5 ~ /^0x/ { print $5 }' | hx | sort
}
a2l_chain() {                                                          # addr2line's inline chain
    addr2line -i -f -e "$1" "$2" | awk 'NR % 2 == 1 { s = s (s ? " <- " : "") $0 } END { print s }'
}
objdump_at() { objdump -d --no-show-raw-insn --start-address="$2" --stop-address=$(($2 + 16)) "$1" | grep -m1 "^ *${2#0x}:"; }

# (a) exported from a shared library the program links (-O0) ---------------------------
A=$T/a; mkdir -p "$A"
gcc $CF -O0 -g -fPIC -shared -DCI_EXPORT -o "$A/libci.so" $SRC/ci_table.c &&
    gcc $CF -O0 -g -DCI_EXPORT -o "$A/prog" $SRC/ci_main.c -L"$A" -lci -Wl,-rpath,"$A"
eq "a: program runs" "$("$A/prog" | tail -1)" "ok refs 2 2"
"$TOOL" sym "$A/libci.so" rb_vm_ci_lookup > "$A/sym"
eq "a: rb_vm_ci_lookup exported: .dynsym GLOBAL FUNC" "$(field table < "$A/sym") $(field bind < "$A/sym") $(field type < "$A/sym")" ".dynsym GLOBAL FUNC"
eq "a: its value is nm -D's" "$(field value < "$A/sym")" "$(nm -D "$A/libci.so" | awk '$3 == "rb_vm_ci_lookup" { print $1 }' | hx)"
"$TOOL" sym "$A/libci.so" ruby_current_ec > "$A/tls"
eq "a: ruby_current_ec: TLS in .dynsym at readelf's offset" "$(field type < "$A/tls") $(field table < "$A/tls") $(field value < "$A/tls")" \
    "TLS .dynsym $(sym_addr "$A/libci.so" --dyn-syms ruby_current_ec)"
"$TOOL" sym "$A/libci.so" ruby_xfree > "$A/xfree"
eq "a: ruby_xfree exported" "$(field table < "$A/xfree") $(field type < "$A/xfree")" ".dynsym FUNC"
"$TOOL" --inc 4 inst "$A/libci.so" rb_vm_ci_lookup > "$A/inst"
eq "a: one instance, out of line" "$(head -1 "$A/inst") $(inst_line "$A/inst" 0 | field inlined)" "instances 1 0"
eq "a: its entry is the symbol" "$(inst_line "$A/inst" 0 | field entry)" "$(field value < "$A/sym")"
kw=$(param_of "$A/inst" 0 kwarg)
eq "a: -O0 kwarg is DW_OP_fbreg at gdb's offset, rcx at the entry" "$(echo "$kw" | field kind) $(echo "$kw" | field off) $(echo "$kw" | field abi)" \
    "fbreg $(gdb -nx -batch -ex 'info scope rb_vm_ci_lookup' "$A/libci.so" 2>/dev/null | sed -n '/Symbol kwarg/{n;s/.*DW_OP_fbreg //p}') rcx"
eq "a: frame base at the entry is the CFA, rsp+8" "$(echo "$kw" | field base)" "rsp+8"
eq "a: params in order" "$(grep '^param 0 ' "$A/inst" | awk '{ print $4 }' | tr '\n' ' ')" "mid flag argc kwarg "
eq "a: -O0 has no add-to-memory references++ to find" "$(grep '^inc 0 ' "$A/inst")" "inc 0 none"

# (b) hidden in the executable, out of line ---------------------------------------------
B=$T/b; mkdir -p "$B"
gcc $CF -O2 -g -DCI_NOINLINE -o "$B/prog" $SRC/ci_table.c $SRC/ci_main.c
eq "b: program runs" "$("$B/prog" | tail -1)" "ok refs 2 2"
eq "b: debug file is the program itself" "$("$TOOL" debug "$B/prog" | head -1)" "debug how=self file=$B/prog"
"$TOOL" sym "$B/prog" rb_vm_ci_lookup > "$B/sym"
eq "b: rb_vm_ci_lookup hidden: .symtab LOCAL FUNC, at nm's address" \
    "$(field table < "$B/sym") $(field bind < "$B/sym") $(field type < "$B/sym") $(field value < "$B/sym")" \
    ".symtab LOCAL FUNC $(nm_addr "$B/prog" rb_vm_ci_lookup)"
"$TOOL" sym "$B/prog" ruby_current_ec > "$B/tls"
# (ld keeps a hidden TLS symbol GLOBAL HIDDEN in an executable; libruby.so has it LOCAL)
eq "b: ruby_current_ec: TLS in .symtab only, binding and offset as readelf's" "$(field bind < "$B/tls") $(field type < "$B/tls") $(field table < "$B/tls") $(field value < "$B/tls")" \
    "$(sym_bind "$B/prog" -s ruby_current_ec) TLS .symtab $(sym_addr "$B/prog" -s ruby_current_ec)"
"$TOOL" --inc 4 inst "$B/prog" rb_vm_ci_lookup > "$B/inst"
eq "b: one instance, out of line, at the symbol" "$(head -1 "$B/inst") $(inst_line "$B/inst" 0 | field inlined) $(inst_line "$B/inst" 0 | field entry)" \
    "instances 1 0 $(nm_addr "$B/prog" rb_vm_ci_lookup)"
eq "b: gdb's one location is that entry" "$(gdb_locations "$B/prog" rb_vm_ci_lookup | tr '\n' ' ')" "$(inst_line "$B/inst" 0 | field entry) "
eq "b: params at the entry are the ABI registers" \
    "$(grep '^param 0 ' "$B/inst" | awk '{ print $4, $5, $6, $7 }' | tr '\n' ';')" \
    "mid kind=reg reg=rdi abi=rdi;flag kind=reg reg=rsi abi=rsi;argc kind=reg reg=rdx abi=rdx;kwarg kind=reg reg=rcx abi=rcx;"
inc=$(grep '^inc 0 ' "$B/inst")
eq "b: references++ found where objdump shows addl \$0x1,0x4(%reg)" \
    "$(objdump_at "$B/prog" "$(echo "$inc" | awk '{ print $3 }')" | awk '{ $1 = ""; print }' | tr -s ' ')" \
    " addl \$0x1,0x4(%$(echo "$inc" | field reg))"

# (c) stripped, with the debug file found by debuglink, build-id, or by hand -------------
C=$T/c; mkdir -p "$C/link/.debug" "$C/next" "$C/rootdir" "$C/bid" "$C/hand" "$C/crc/.debug" "$C/symlink"
strip --only-keep-debug -o "$C/prog.debug" "$B/prog"
strip --strip-all -o "$C/bare" "$B/prog"
(cd "$C" && objcopy --add-gnu-debuglink=prog.debug bare linked)
cp "$C/linked" "$C/link/prog"; cp "$C/prog.debug" "$C/link/.debug/"
cp "$C/linked" "$C/next/prog"; cp "$C/prog.debug" "$C/next/"
cp "$C/linked" "$C/rootdir/prog"; mkdir -p "$C/root$C/rootdir"; cp "$C/prog.debug" "$C/root$C/rootdir/"
cp "$C/bare" "$C/bid/prog"
id=$(readelf -n "$B/prog" | sed -n 's/.*Build ID: //p')
mkdir -p "$C/idroot/.build-id/${id:0:2}"; cp "$C/prog.debug" "$C/idroot/.build-id/${id:0:2}/${id:2}.debug"
cp "$C/bare" "$C/hand/prog"; cp "$C/prog.debug" "$C/hand/whatever.sym"
cp "$C/linked" "$C/crc/prog"
check "c: stripped program has no .symtab" sh -c "! readelf -S '$C/link/prog' | grep -q symtab"
eq "c: stripped program runs" "$("$C/link/prog" | tail -1)" "ok refs 2 2"
eq "c: debuglink found in .debug/" "$("$TOOL" debug "$C/link/prog" | head -1)" "debug how=debuglink file=$C/link/.debug/prog.debug"
eq "c: debuglink found next to the file" "$("$TOOL" debug "$C/next/prog" | head -1)" "debug how=debuglink file=$C/next/prog.debug"
eq "c: debuglink found under ROOT/<dir>/" "$("$TOOL" --root "$C/nothing:$C/root" debug "$C/rootdir/prog" | head -1)" \
    "debug how=debuglink file=$C/root$C/rootdir/prog.debug"
ln -s "$C/link/prog" "$C/symlink/prog"
eq "c: debuglink found next to the real file behind a symlink" "$("$TOOL" debug "$C/symlink/prog" | head -1)" \
    "debug how=debuglink file=$C/link/.debug/prog.debug"
eq "c: build-id found under a private root" "$("$TOOL" --root "$C/idroot" debug "$C/bid/prog" | head -1)" \
    "debug how=build-id file=$C/idroot/.build-id/${id:0:2}/${id:2}.debug"
"$TOOL" debug "$C/bid/prog" > "$C/bid.out"
eq "c: no build-id file under the default root: not found" "$(head -1 "$C/bid.out")" "debug how=none file=-"
check "c: ...and it says which build-id it looked for, and where" grep -q "build-id $id not under /usr/lib/debug/.build-id/" "$C/bid.out"
gcc $CF -O2 -g -o "$C/other" $SRC/ci_table.c $SRC/ci_main.c
strip --only-keep-debug -o "$C/other.debug" "$C/other"
"$TOOL" --hand "$C/missing.debug:$C/other.debug:$C/hand/whatever.sym" debug "$C/hand/prog" > "$C/hand.out"
eq "c: hand file matched by build-id" "$(head -1 "$C/hand.out")" "debug how=hand file=$C/hand/whatever.sym"
check "c: ...after rejecting one with another build-id" grep -q "$C/other.debug: build-id does not match" "$C/hand.out"
cp "$C/other.debug" "$C/crc/.debug/prog.debug"
"$TOOL" debug "$C/crc/prog" > "$C/crc.out"
eq "c: a debuglink file with the wrong CRC is refused" "$(head -1 "$C/crc.out")" "debug how=none file=-"
check "c: ...saying so" grep -q "$C/crc/.debug/prog.debug: CRC32 [0-9a-f]*, .gnu_debuglink wants" "$C/crc.out"
"$TOOL" sym "$C/link/prog" rb_vm_ci_lookup > "$C/sym"
eq "c: rb_vm_ci_lookup from the debug file's .symtab" "$(field value < "$C/sym") $(grep -o "table=debug file's .symtab" "$C/sym")" \
    "$(field value < "$B/sym") table=debug file's .symtab"
"$TOOL" sym "$C/link/prog" ruby_current_ec > "$C/tls"
eq "c: ruby_current_ec from the debug file: same binding, TLS, same offset" "$(field bind < "$C/tls") $(field type < "$C/tls") $(field value < "$C/tls")" \
    "$(field bind < "$B/tls") TLS $(field value < "$B/tls")"
for v in link bid hand; do
    case $v in bid) opt="--root $C/idroot" ;; hand) opt="--hand $C/hand/whatever.sym" ;; *) opt="" ;; esac
    "$TOOL" $opt --inc 4 inst "$C/$v/prog" rb_vm_ci_lookup > "$C/$v.inst"
    check "c/$v: instances, parameters and references++ identical to the unstripped program's" cmp -s "$B/inst" "$C/$v.inst"
done

# (d) -O2: the lookup inlined into its callers --------------------------------------------
D=$T/d; mkdir -p "$D"
gcc $CF -O2 -g -o "$D/prog" $SRC/ci_table.c $SRC/ci_main.c
eq "d: program runs" "$("$D/prog" | tail -1)" "ok refs 2 2"
"$TOOL" --inc 4 inst "$D/prog" rb_vm_ci_lookup > "$D/inst"
n_in=$(grep -c '^instance .* inlined=1 ' "$D/inst")
ge "d: at least 2 inlined instances" "$n_in" 2
eq "d: exactly one out-of-line, at the symbol, first" "$(grep -c '^instance .* inlined=0 ' "$D/inst") $(inst_line "$D/inst" 0 | field inlined) $(inst_line "$D/inst" 0 | field entry)" \
    "1 0 $(nm_addr "$D/prog" rb_vm_ci_lookup)"
eq "d: entries are gdb's breakpoint locations" "$(entries "$D/inst" | tr '\n' ' ')" "$(gdb_locations "$D/prog" rb_vm_ci_lookup | tr '\n' ' ')"
# every entry lies in its own ranges; where DWARF names no usable entry_pc, it is gdb's
in_ranges() {                                                          # FILE: instances whose entry is outside
    grep '^instance ' "$1" | while read -r line; do
        e=$(echo "$line" | field entry) inside=0
        for r in $(echo "$line" | field ranges | tr ',' ' '); do
            [ $((e)) -ge $((${r%-*})) ] && [ $((e)) -lt $((${r#*-})) ] && inside=1
        done
        [ $inside = 1 ] || echo "$line"
    done
}
"$TOOL" inst "$D/prog" vm_ci_new_ > "$D/new"
eq "d: every instance's entry lies inside its ranges (rb_vm_ci_lookup, vm_ci_new_)" "$(in_ranges "$D/inst")$(in_ranges "$D/new")" ""
gdb_locations "$D/prog" vm_ci_new_ > "$D/new.gdb"
bad=""
for e in $(grep '^instance .* from=\(first_range\|low_pc\) ' "$D/new" | field entry); do
    grep -qx "$e" "$D/new.gdb" || bad="$bad $e"
done
eq "d: vm_ci_new_ entries without an in-range entry_pc are gdb's locations" "$bad" ""
bad=""
for i in $(seq 1 "$n_in"); do
    e=$(inst_line "$D/inst" "$i" | field entry)
    got=$(grep "^chain $i " "$D/inst" | cut -d' ' -f3-)
    want=$(a2l_chain "$D/prog" "$e")
    [ "$got" = "$want" ] || bad="$bad [$e: '$got' vs addr2line '$want']"
    into=$(inst_line "$D/inst" "$i" | field into)
    [ "${want##* <- }" = "$into" ] || bad="$bad [$e: into $into]"
done
eq "d: inline chains and callers agree with addr2line -i" "$bad" ""
bad=""
for i in $(seq 0 "$n_in"); do
    kw=$(param_of "$D/inst" "$i" kwarg)
    case "$(echo "$kw" | field kind)" in reg|mem|fbreg|const|none|entry_value) ;; *) bad="$bad [$i: '$kw']" ;; esac
done
eq "d: every instance says where kwarg is at its entry" "$bad" ""
bad=""
for i in $(seq 0 "$n_in"); do
    inc=$(grep "^inc $i " "$D/inst")
    at=$(echo "$inc" | awk '{ print $3 }')
    [ "$at" != none ] || { bad="$bad [$i: none]"; continue; }
    line=$(objdump_at "$D/prog" "$at" | awk '{ $1 = ""; print }' | tr -s ' ')
    [ "$line" = " addl \$0x1,0x4(%$(echo "$inc" | field reg))" ] || bad="$bad [$i: $at '$line']"
done
eq "d: references++ found in every instance, as objdump shows it" "$bad" ""

# A static function of a header: one out-of-line copy per file, both found, neither a clone.
"$TOOL" inst "$D/prog" ci_flag_bits > "$D/copies"
eq "d: two same-named local copies: both found, at nm's addresses, not clones" \
    "$(grep '^instance ' "$D/copies" | while read -r l; do echo "$(echo "$l" | field entry)/$(echo "$l" | field clone)"; done | sort | tr '\n' ' ')" \
    "$(nm "$D/prog" | awk '$3 == "ci_flag_bits" { print $1 }' | hx | sort | sed 's|$|/0|' | tr '\n' ' ')"
eq "d: ...and the symbol lookup counts both" "$("$TOOL" sym "$D/prog" ci_flag_bits | field count)" 2
# A function GCC only emits as a .constprop clone: found, flagged, no ABI registers claimed.
"$TOOL" inst "$D/prog" ci_scale > "$D/clone"
clone_sym=$(nm "$D/prog" | awk '$3 ~ /^ci_scale\./ { print $3; exit }')
if [ -n "$clone_sym" ]; then
    eq "d: the $clone_sym clone is found as a clone, at its symbol, no abi registers" \
        "$(inst_line "$D/clone" 0 | field clone) $(inst_line "$D/clone" 0 | field symbol) $(inst_line "$D/clone" 0 | field entry) $(grep -c ' abi=[a-z]' "$D/clone")" \
        "1 $clone_sym $(nm_addr "$D/prog" "$clone_sym") 0"
else
    ok "d: clone # SKIP this compiler made no ci_scale clone"
fi

# Run it under gdb with a breakpoint on each references++: the register we name must hold
# one of the kwarg blocks the program made, and every copy must be reached.
main_off=$(nm_addr "$D/prog" main)
{
    echo "set pagination off"
    echo "set confirm off"
    echo "break main"
    echo "run > $D/run.out"
    echo "set \$base = (char *)&main - $main_off"
    for i in $(seq 0 "$n_in"); do
        inc=$(grep "^inc $i " "$D/inst")
        at=$(echo "$inc" | awk '{ print $3 }') reg=$(echo "$inc" | field reg)
        echo "break *(\$base + $at)"
        echo "commands"
        echo "silent"
        echo "printf \"HIT $i %#lx\\n\", (long)\$$reg"
        echo "continue"
        echo "end"
    done
    echo "continue"
} > "$D/gdb.cmd"
gdb -nx -batch -x "$D/gdb.cmd" "$D/prog" > "$D/gdb.out" 2>&1
kwargs=$(sed -n 's/^kwarg //p' "$D/run.out" | tr '\n' ' ')
bad=""
for i in $(seq 0 "$n_in"); do
    vals=$(awk -v i="$i" '$1 == "HIT" && $2 == i { print $3 }' "$D/gdb.out" | sort -u)
    [ -n "$vals" ] || bad="$bad [$i: never hit]"
    for v in $vals; do case " $kwargs" in *" $v "*) ;; *) bad="$bad [$i: $v not a kwarg]" ;; esac; done
done
eq "d: at each references++ the named register holds a kwarg block ($kwargs)" "$bad" ""

# Garbage: truncated, overwritten and non-ELF files give answers or errors, never a crash
# (the tool is rebuilt with AddressSanitizer and UBSan for this).
G=$T/g; mkdir -p "$G"
FUZZ=$T/debuginfo_tool_asan
export ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=print_stacktrace=1:exitcode=99
if gcc $CF -O1 -g -fsanitize=address,undefined -fno-sanitize-recover=all -I$DI -o "$FUZZ" \
    $DT/debuginfo_tool.c $DI_SRC 2>/dev/null; then
    ok "g: sanitizer build"
    "$FUZZ" --inc 4 inst "$D/prog" rb_vm_ci_lookup > "$D/inst.asan" 2>&1
    check "g: sanitizer build: same answer on (d), no report, no leak" cmp -s "$D/inst.asan" "$D/inst"
else
    FUZZ=$TOOL
    ok "g: sanitizer build # SKIP no sanitizer runtime; fuzzing the plain build"
fi
: > "$G/empty"; echo "not an ELF file" > "$G/text"
for frac in 1 4 16 64 256 1024 4096 "$(($(stat -c %s "$D/prog") / 2))"; do
    head -c "$frac" "$D/prog" > "$G/trunc-$frac"
done
RANDOM=4242
n_mut=0
while read -r name off size; do
    for k in 1 2 3 4 5 6; do
        cp "$D/prog" "$G/mut-$name-$k"
        for j in $(seq $((k > 3 ? 64 : 8))); do
            pos=$((off + (RANDOM * 32768 + RANDOM) % size))
            printf "\\x$(printf %02x $((RANDOM % 256)))" | dd of="$G/mut-$name-$k" bs=1 seek="$pos" conv=notrunc 2>/dev/null
        done
        n_mut=$((n_mut + 1))
    done
done < <(readelf -SW "$D/prog" | sed 's/^ *\[ *[0-9]*\] //' |
         awk '$1 ~ /^\.(debug_info|debug_abbrev|debug_loclists|debug_rnglists|debug_line|debug_str|symtab|strtab|dynsym|dynstr|eh_frame|note.gnu.build-id|text)$/ { print $1, $4, $5 }' |
         while read -r n o z; do [ $((16#$z)) -gt 0 ] && echo "$n $((16#$o)) $((16#$z))"; done)
# section headers: ELF header fields e_shoff/e_shnum/e_shstrndx and the table itself
shoff=$(readelf -h "$D/prog" | awk '/Start of section headers/ { print $5 }')
for k in 1 2 3 4 5 6 7 8; do
    cp "$D/prog" "$G/mut-shdr-$k"
    for j in 1 2 3 4; do
        pos=$((shoff + (RANDOM % (64 * 36))))
        printf "\\x$(printf %02x $((RANDOM % 256)))" | dd of="$G/mut-shdr-$k" bs=1 seek="$pos" conv=notrunc 2>/dev/null
    done
done
cp "$D/prog" "$G/mut-ehdr"; printf '\xff\xff\xff\xff' | dd of="$G/mut-ehdr" bs=1 seek=40 conv=notrunc 2>/dev/null
bad="" runs=0
for f in "$G"/*; do
    for cmd in "debug" "sym" "inst"; do
        timeout 60 "$FUZZ" --inc 4 $cmd "$f" rb_vm_ci_lookup > "$f.$cmd.out" 2>&1
        rc=$?
        runs=$((runs + 1))
        [ "$rc" -le 2 ] || bad="$bad [$(basename "$f") $cmd: status $rc]"
    done
    # the same garbage as the debug file of a good program
    timeout 60 "$FUZZ" --hand "$f" --inc 4 inst "$C/hand/prog" rb_vm_ci_lookup > "$f.hand.out" 2>&1
    rc=$?
    runs=$((runs + 1))
    [ "$rc" -le 2 ] || bad="$bad [$(basename "$f") as hand file: status $rc]"
done
grep -l -E 'Sanitizer|runtime error' "$G"/*.out > "$G/reports" && bad="$bad [sanitizer reports in: $(xargs -n1 basename < "$G/reports" | tr '\n' ' ')]"
eq "g: $runs runs on $(ls "$G" | grep -vc '\.out$') garbage files ($n_mut with overwritten sections): no crash, hang or sanitizer report" "$bad" ""
unset ASAN_OPTIONS UBSAN_OPTIONS
eq "g: non-ELF file is reported as such" "$("$TOOL" debug "$G/text" | tail -1 | grep -o 'not an ELF file')" "not an ELF file"

# Real Rubies ---------------------------------------------------------------------------
R34=/root/.cache/race/ruby-3.4.5/lib/libruby.so.3.4.5
if [ -f "$R34" ]; then
    R=$T/r34; mkdir -p "$R"
    "$TOOL" --inc 4 inst "$R34" rb_vm_ci_lookup > "$R/inst"
    cat "$R/inst" | sed 's/^/# 3.4.5: /'
    eq "3.4.5: rb_vm_ci_lookup: 4 instances, 1 out of line + 3 inlined" \
        "$(head -1 "$R/inst") $(grep -c '^instance .* inlined=0 ' "$R/inst") $(grep -c '^instance .* inlined=1 ' "$R/inst")" "instances 4 1 3"
    eq "3.4.5: out-of-line entry is the .symtab value" "$(inst_line "$R/inst" 0 | field entry)" \
        "$(sym_addr "$R34" -s rb_vm_ci_lookup)"
    eq "3.4.5: every entry lies inside its instance's ranges" "$(in_ranges "$R/inst")" ""
    eq "3.4.5: entries are gdb's 4 breakpoint locations" "$(entries "$R/inst" | tr '\n' ' ')" "$(gdb_locations "$R34" rb_vm_ci_lookup | tr '\n' ' ')"
    bad=""
    for i in 1 2 3; do
        e=$(inst_line "$R/inst" "$i" | field entry)
        got=$(grep "^chain $i " "$R/inst" | cut -d' ' -f3-)
        want=$(a2l_chain "$R34" "$e")
        [ "$got" = "$want" ] || bad="$bad [$e: '$got' vs '$want']"
        case "$got" in "rb_vm_ci_lookup <- vm_ci_new_ <- vm_ci_new_runtime_ <- "*) ;; *) bad="$bad [$e: $got]" ;; esac
    done
    eq "3.4.5: chains rb_vm_ci_lookup <- vm_ci_new_ <- vm_ci_new_runtime_ <- caller, as addr2line -i" "$bad" ""
    eq "3.4.5: out-of-line kwarg in rcx at the entry" "$(param_of "$R/inst" 0 kwarg | field kind) $(param_of "$R/inst" 0 kwarg | field reg)" "reg rcx"
    bad=""
    for i in 0 1 2 3; do
        inc=$(grep "^inc $i " "$R/inst")
        at=$(echo "$inc" | awk '{ print $3 }')
        line=$(objdump_at "$R34" "$at" | awk '{ $1 = ""; print }' | tr -s ' ')
        [ "$line" = " addl \$0x1,0x4(%$(echo "$inc" | field reg))" ] || bad="$bad [$i: $at '$line']"
    done
    eq "3.4.5: references++ (addl \$0x1,0x4(%reg)) found in all 4" "$bad" ""
    # Under gdb, on Ruby itself: at each references++ the register we name must point at a
    # kwarg block (keyword_len 1..1000), and each of the four copies must be reached.
    RB=${R34%/lib/*}/bin/ruby
    if [ -x "$RB" ]; then
        {
            echo "set pagination off"; echo "set confirm off"; echo "break main"
            echo "run $SRC/kwargs.rb > $R/run.out"
            echo "set \$base = (char *)&ruby_init - $(nm_addr "$R34" ruby_init)"
            for i in 0 1 2 3; do
                inc=$(grep "^inc $i " "$R/inst")
                at=$(echo "$inc" | awk '{ print $3 }') reg=$(echo "$inc" | field reg)
                echo "break *(\$base + $at)"; echo "commands"; echo "silent"
                echo "printf \"HIT $i %#lx %d\\n\", (long)\$$reg, *(int *)\$$reg"
                echo "continue"; echo "end"
                echo "break *(\$base + $(inst_line "$R/inst" "$i" | field entry))"; echo "commands"; echo "silent"
                echo "printf \"ENTRY $i\\n\""; echo "continue"; echo "end"
            done
            echo "continue"
        } > "$R/gdb.cmd"
        timeout 300 gdb -nx -batch -x "$R/gdb.cmd" "$RB" > "$R/gdb.out" 2>&1
        eq "3.4.5 run: kwargs.rb runs under gdb" "$(cat "$R/run.out")" "done"
        bad=""
        for i in 0 1 2 3; do
            hits=$(awk -v i="$i" '$1 == "HIT" && $2 == i' "$R/gdb.out" | wc -l)
            wild=$(awk -v i="$i" '$1 == "HIT" && $2 == i && ($4 < 1 || $4 > 1000)' "$R/gdb.out" | wc -l)
            [ "$hits" -gt 0 ] && [ "$wild" -eq 0 ] || bad="$bad [$i: $hits hits, $wild not a kwarg block]"
            echo "# 3.4.5 run: instance $i: entry reached $(awk -v i="$i" '$1 == "ENTRY" && $2 == i' "$R/gdb.out" | wc -l) times, references++ $hits times"
        done
        eq "3.4.5 run: at each copy's references++ the named register points at a kwarg block" "$bad" ""
    else
        ok "3.4.5 run # SKIP no $RB"
    fi
    if [ "$FUZZ" != "$TOOL" ]; then
        ASAN_OPTIONS=detect_leaks=1:exitcode=99 UBSAN_OPTIONS=exitcode=99 "$FUZZ" --inc 4 inst "$R34" rb_vm_ci_lookup > "$R/inst.asan" 2>&1
        check "3.4.5: sanitizer build: same answer, no report, no leak" cmp -s "$R/inst.asan" "$R/inst"
    fi
    "$TOOL" sym "$R34" ruby_current_ec > "$R/tls"
    eq "3.4.5: ruby_current_ec is LOCAL TLS in .symtab at 0x30" "$(field bind < "$R/tls") $(field type < "$R/tls") $(field table < "$R/tls") $(field value < "$R/tls")" \
        "LOCAL TLS .symtab 0x30"
else
    ok "3.4.5 # SKIP $R34 not built"
fi
R31=/usr/lib/x86_64-linux-gnu/libruby-3.1.so.3.1
if [ -f "$R31" ]; then
    R=$T/r31; mkdir -p "$R"
    "$TOOL" --inc 4 inst "$R31" rb_vm_ci_lookup > "$R/inst"
    rc=$?
    sed 's/^/# 3.1: /' "$R/inst"
    eq "3.1: rb_vm_ci_lookup cannot be found (exit 1, no instances)" "$rc $(grep -m1 '^instances' "$R/inst")" "1 instances 0"
    check "3.1: ...and it says why: not in .dynsym, no .symtab, no debug file" \
        grep -q "not in $R31's .dynsym, and it has no .symtab (stripped)" "$R/inst"
    check "3.1: ...naming the debuglink and build-id it looked for" grep -q "gnu_debuglink '.*' (CRC [0-9a-f]*) not in .*build-id [0-9a-f]* not under" "$R/inst"
    "$TOOL" sym "$R31" ruby_current_ec > "$R/tls"
    eq "3.1: ruby_current_ec is exported TLS in .dynsym at readelf's offset" "$(field bind < "$R/tls") $(field type < "$R/tls") $(field table < "$R/tls") $(field value < "$R/tls")" \
        "GLOBAL TLS .dynsym $(sym_addr "$R31" --dyn-syms ruby_current_ec)"
    "$TOOL" inst "$R31" ruby_xfree > "$R/xfree"
    eq "3.1: ruby_xfree: one instance from .dynsym alone, no DWARF" "$(grep -m1 '^instances' "$R/xfree") $(inst_line "$R/xfree" 0 | field dwarf)" "instances 1 0"
else
    ok "3.1 # SKIP $R31 not installed"
fi
finish
