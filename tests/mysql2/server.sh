# server.sh - sourced by tests/t_mysql2.sh and bench/mysql2.sh: a private MariaDB
# server for the mysql2 close/ping race. Its own datadir, unix socket, pid file and
# log in a fresh temporary directory, TCP on 127.0.0.1 only, on a port found free;
# it never reads /etc/mysql (--no-defaults) and never touches a system server.
#
#   mysql2_have_deps        0 when mariadbd, mariadb-install-db, mariadb-admin and
#                           Debian's ruby with mysql2 are there; else says why in
#                           MYSQL2_MISSING
#   mysql2_server_start     0 once it accepts connections; MYSQL2_PORT, MYSQL2_DIR
#                           set; else 1 with the reason in MYSQL2_ERROR (stopped)
#   mysql2_server_stop      shuts it down (SIGKILL if it will not go), removes the
#                           directory; safe to call twice or when never started
# The caller must arrange for mysql2_server_stop to run at exit (trap).

MYSQL2_RUBY=${MYSQL2_RUBY:-/usr/bin/ruby}
MYSQL2_MARIADBD=${MYSQL2_MARIADBD:-/usr/sbin/mariadbd}
MYSQL2_DIR=""
MYSQL2_PID=""
MYSQL2_PORT=""
MYSQL2_ERROR=""
MYSQL2_MISSING=""

mysql2_have_deps() {
    MYSQL2_MISSING=""
    [ -x "$MYSQL2_MARIADBD" ] || MYSQL2_MISSING="$MYSQL2_MARIADBD not installed (mariadb-server)"
    if [ -z "$MYSQL2_MISSING" ]; then
        command -v mariadb-install-db > /dev/null && command -v mariadb-admin > /dev/null ||
            MYSQL2_MISSING="mariadb-install-db or mariadb-admin not on PATH (mariadb-server)"
    fi
    if [ -z "$MYSQL2_MISSING" ]; then
        [ -x "$MYSQL2_RUBY" ] && "$MYSQL2_RUBY" -e 'require "mysql2"' > /dev/null 2>&1 ||
            MYSQL2_MISSING="$MYSQL2_RUBY cannot require mysql2 (ruby-mysql2)"
    fi
    [ -z "$MYSQL2_MISSING" ]
}

# A TCP port on 127.0.0.1 that nobody listens on right now (the kernel picks it).
mysql2_free_port() {
    "$MYSQL2_RUBY" -rsocket -e 's = TCPServer.new("127.0.0.1", 0); puts s.addr[1]; s.close'
}

mysql2_server_start() {
    local opts try i
    MYSQL2_DIR=$(mktemp -d "${TMPDIR:-/tmp}/race-mysql2.XXXXXX") || {
        MYSQL2_ERROR="mktemp -d failed"; return 1; }
    mkdir -p "$MYSQL2_DIR/tmp"
    # small InnoDB files: the server holds no data worth the default 100 MB redo log
    opts="--innodb-buffer-pool-size=16M --innodb-log-file-size=4M"
    [ "$(id -u)" = 0 ] && opts="$opts --user=root"
    if ! mariadb-install-db --no-defaults --datadir="$MYSQL2_DIR/data" $opts \
            --auth-root-authentication-method=normal --skip-test-db \
            > "$MYSQL2_DIR/install.log" 2>&1; then
        MYSQL2_ERROR="mariadb-install-db failed: $(tail -3 "$MYSQL2_DIR/install.log" | tr '\n' ' ')"
        mysql2_server_stop
        return 1
    fi
    # the port is free when asked; another process may take it before the server
    # binds it, so a failed bind is tried again on a new port
    for try in 1 2 3; do
        MYSQL2_PORT=$(mysql2_free_port) || { MYSQL2_ERROR="no free port"; break; }
        : > "$MYSQL2_DIR/err.log"
        "$MYSQL2_MARIADBD" --no-defaults --datadir="$MYSQL2_DIR/data" $opts \
            --socket="$MYSQL2_DIR/sock" --pid-file="$MYSQL2_DIR/pid" \
            --bind-address=127.0.0.1 --port="$MYSQL2_PORT" --skip-name-resolve \
            --tmpdir="$MYSQL2_DIR/tmp" --log-error="$MYSQL2_DIR/err.log" \
            > "$MYSQL2_DIR/mariadbd.out" 2>&1 < /dev/null &
        MYSQL2_PID=$!
        # bounded wait: 30 s (it takes about 1 s)
        for i in $(seq 150); do
            if ! kill -0 "$MYSQL2_PID" 2>/dev/null; then
                MYSQL2_ERROR="mariadbd exited: $(grep -i error "$MYSQL2_DIR/err.log" | tail -2 | tr '\n' ' ')"
                MYSQL2_PID=""
                break
            fi
            if timeout 5 mariadb-admin --no-defaults --protocol=tcp -h 127.0.0.1 -P "$MYSQL2_PORT" \
                    -u root --connect-timeout=2 status > /dev/null 2>&1; then
                MYSQL2_ERROR=""
                return 0
            fi
            sleep 0.2
        done
        if [ -n "$MYSQL2_PID" ]; then
            MYSQL2_ERROR="mariadbd did not accept connections on 127.0.0.1:$MYSQL2_PORT within 30 s: $(tail -2 "$MYSQL2_DIR/err.log" | tr '\n' ' ')"
            break
        fi
        grep -q -i "bind on tcp/ip port\|address already in use" "$MYSQL2_DIR/err.log" || break
    done
    mysql2_server_stop
    return 1
}

mysql2_server_stop() {
    local i
    if [ -n "$MYSQL2_PID" ] && kill -0 "$MYSQL2_PID" 2>/dev/null; then
        timeout 10 mariadb-admin --no-defaults --protocol=socket --socket="$MYSQL2_DIR/sock" \
            -u root shutdown > /dev/null 2>&1 || kill -TERM "$MYSQL2_PID" 2>/dev/null
        for i in $(seq 100); do
            kill -0 "$MYSQL2_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$MYSQL2_PID" 2>/dev/null
        wait "$MYSQL2_PID" 2>/dev/null
    fi
    MYSQL2_PID=""
    [ -n "$MYSQL2_DIR" ] && rm -rf "$MYSQL2_DIR"
    MYSQL2_DIR=""
}

# For a test script (tests/lib.sh sourced): starts the private server for the rest of
# the script, stopped (and $T removed) at exit; without its packages the script ends
# here with a skip, and a server that does not start is one failure that ends it.
mysql2_test_server() {
    if ! mysql2_have_deps; then
        echo "# skip mysql2: $MYSQL2_MISSING"
        finish
    fi
    trap 'mysql2_server_stop; rm -rf "$T"' EXIT
    if ! mysql2_server_start; then
        not_ok "mysql2: private mariadbd accepts connections" "$MYSQL2_ERROR"
        finish
    fi
    export MYSQL2_TEST_PORT=$MYSQL2_PORT
}
