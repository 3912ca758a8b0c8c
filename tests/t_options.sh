# Every RACE_* option: a bad value gives one line naming the variable, the value
# and the accepted range, and exit status 98 before main runs; an unusable RACE_DIR
# gives exit status 99; README's option table is the one in common/options.def.
source tests/lib.sh
prog=/bin/true

expect() { # expect NAME STATUS MESSAGE ENV...
    local name=$1 status=$2 msg=$3; shift 3
    local out rc
    out=$(env RACE_DIR="$T" "$@" LD_PRELOAD="$SHIM" $prog 2>&1)
    rc=$?
    if [ "$rc" = "$status" ] && [ "$out" = "$msg" ]; then ok "$name"
    else not_ok "$name" "status $rc, output '$out'; want $status, '$msg'"; fi
}

for spec in "RACE_RING_MB 1 65536 MiB" "RACE_STACK_SAMPLE 0 1000000000 frees" \
            "RACE_STACK_DEPTH 1 64 frames" "RACE_DEPOT_MB 1 4096 MiB" "RACE_VERBOSE 0 1 "; do
    set -- $spec
    var=$1 lo=$2 hi=$3 unit=${4:-}
    range="expected an integer in $lo..$hi${unit:+ ($unit)}"
    expect "$var: not a number" 98 "race: $var=abc: not an integer; $range" "$var=abc"
    expect "$var: empty" 98 "race: $var=: not an integer; $range" "$var="
    expect "$var: negative" 98 "race: $var=-1: not an integer; $range" "$var=-1"
    expect "$var: trailing junk" 98 "race: $var=12x: not an integer; $range" "$var=12x"
    expect "$var: overflow" 98 "race: $var=99999999999999999999999: not an integer; $range" "$var=99999999999999999999999"
    expect "$var: above range" 98 "race: $var=$((hi + 1)): out of range; $range" "$var=$((hi + 1))"
    if [ "$lo" -gt 0 ]; then
        expect "$var: below range" 98 "race: $var=$((lo - 1)): out of range; $range" "$var=$((lo - 1))"
    fi
done
expect "RACE_DIR: empty" 98 "race: RACE_DIR=: empty value; expected a non-empty path" "RACE_DIR="
expect "unknown RACE_ variable" 98 "race: RACE_RINGMB=4: unknown option" "RACE_RINGMB=4"
expect "RACE_DIR: missing directory" 99 \
    "race: cannot create a trace file in RACE_DIR=$T/nope: No such file or directory" "RACE_DIR=$T/nope"
touch "$T/file"
expect "RACE_DIR: not a directory" 99 \
    "race: cannot create a trace file in RACE_DIR=$T/file: Not a directory" "RACE_DIR=$T/file"
mkdir "$T/ro"; chmod 0555 "$T/ro"
if [ "$(id -u)" != 0 ]; then
    expect "RACE_DIR: unwritable" 99 \
        "race: cannot create a trace file in RACE_DIR=$T/ro: Permission denied" "RACE_DIR=$T/ro"
    ok "full disk: skipped, needs root to mount a small tmpfs # SKIP"
else
    # Root writes anywhere: a read-only mount refuses root too, and a 512 KiB tmpfs has
    # no room for what a trace reserves at creation (header, depot buckets, module log,
    # findings, probes, crashes: ~0.9 MiB; the ring is reserved as it fills, and a disk
    # that fills later is tests/t_trim.sh's). The file must fail at start-up, not with
    # SIGBUS later, and leave nothing behind.
    mkdir -p "$T/rofs" "$T/small"
    if mount -t tmpfs -o size=4m,ro tmpfs "$T/rofs" 2>/dev/null && mount -t tmpfs -o size=512k tmpfs "$T/small"; then
        trap 'umount "$T/rofs" "$T/small" 2>/dev/null; rm -rf "$T"' EXIT
        expect "RACE_DIR: read-only file system" 99 \
            "race: cannot create a trace file in RACE_DIR=$T/rofs: Read-only file system" "RACE_DIR=$T/rofs"
        out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T/small" $prog 2>&1); rc=$?
        if [ "$rc" = 99 ] && [[ "$out" == "race: cannot reserve space for $T/small/race.true."*".trace: No space left on device" ]] \
           && [ -z "$(ls "$T/small")" ]; then ok "full disk: status 99, one message, no file left"
        else not_ok "full disk" "status $rc, output '$out', left: $(ls "$T/small")"; fi
    else
        ok "read-only and full disk: skipped, cannot mount tmpfs here # SKIP"
    fi
fi

# Good values are accepted, recorded in the header, and the program runs normally.
out=$(env LD_PRELOAD="$SHIM" RACE_DIR="$T" RACE_RING_MB=2 RACE_STACK_SAMPLE=1 /bin/echo hello 2>/dev/null)
eq "good options: program output unchanged" "$out" "hello"
f=$(ls "$T"/race.echo.*.trace | head -1)
check "good options: trace written" test -s "$f"
check "good options: recorded in the header" grep -qa "RACE_RING_MB=2" "$f"

# README reproduces the option table.
"$BIN/options_doc" > "$T/table.md"
check "README carries common/options.def's table" grep -qxFf "$T/table.md" README.md
missing=$(grep -vxFf README.md "$T/table.md" | head -3)
eq "README table has every row" "$missing" ""
finish
