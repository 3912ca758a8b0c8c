# The ring under contention (8 and 12 threads into rings far too small): intact
# survivors, consistent sequences, an exact overwrite count. See unit_ring.c.
source tests/lib.sh
"$BIN/unit_ring"
finish
