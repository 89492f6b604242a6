#!/usr/bin/env bash
# Make sure a local PostgreSQL from Debian's packages serves 127.0.0.1:5432 and
# has role crm (password crm, LOGIN CREATEDB) owning database crm_test.
#
# Idempotent: when the test database already accepts crm's password it only
# checks and exits. Otherwise it installs the server (as root, via apt-get),
# creates a cluster if there is none on the port, starts it (clearing lock
# files left by a killed server or a machine restart) and creates the role and
# database.
set -euo pipefail

readonly HOST=127.0.0.1 PORT=5432 ROLE=crm PASSWORD=crm DB=crm_test
readonly URL="postgresql://$ROLE:$PASSWORD@$HOST:$PORT/$DB"
readonly START_TIMEOUT_S=30
readonly SOCKET_DIR=/var/run/postgresql  # unix_socket_directories of Debian's clusters

# Every psql call below names its server explicitly; libpq variables from the
# caller's environment must not redirect it.
unset PGHOST PGHOSTADDR PGPORT PGUSER PGPASSWORD PGDATABASE PGSERVICE PGOPTIONS

log() { printf 'pg_ensure: %s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

# Prints the server version when crm can log into crm_test with its password.
crm_server_version() {
    command -v psql >/dev/null || return 1
    PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=5 psql -X -w -q -At \
        -h "$HOST" -p "$PORT" -U "$ROLE" -d "$DB" \
        -c "select split_part(current_setting('server_version'), ' ', 1)" 2>/dev/null
}

report_ready() { printf 'pg_ensure: PostgreSQL %s ready at %s\n' "$1" "$URL"; }

as_postgres() { (cd / && runuser -u postgres -- "$@"); }

server_installed() {
    command -v pg_ctlcluster >/dev/null && compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null
}

install_server() {
    log "installing PostgreSQL from Debian packages"
    apt-get update -q
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o DPkg::Lock::Timeout=120 postgresql
}

newest_installed_version() {
    local bin
    for bin in /usr/lib/postgresql/*/bin/postgres; do
        basename "$(dirname "$(dirname "$bin")")"
    done | sort -V | tail -n 1
}

# Sets CLUSTER_VERSION, CLUSTER_NAME, DATA_DIR, LOG_FILE for the cluster on PORT,
# creating "<newest version> main" when no cluster uses the port.
select_cluster() {
    local line
    # pg_lsclusters -h columns: version name port status owner datadir logfile
    line=$(pg_lsclusters -h | awk -v port="$PORT" '$3 == port { print; exit }')
    if [ -z "$line" ]; then
        CLUSTER_VERSION=$(newest_installed_version)
        CLUSTER_NAME=main
        if pg_lsclusters -h | awk -v v="$CLUSTER_VERSION" '$1 == v && $2 == "main" { found = 1 } END { exit !found }'; then
            die "cluster $CLUSTER_VERSION/main exists but does not use port $PORT (see pg_lsclusters)"
        fi
        log "creating cluster $CLUSTER_VERSION/$CLUSTER_NAME on port $PORT"
        pg_createcluster --port "$PORT" "$CLUSTER_VERSION" "$CLUSTER_NAME" >/dev/null
        line=$(pg_lsclusters -h | awk -v port="$PORT" '$3 == port { print; exit }')
    fi
    read -r CLUSTER_VERSION CLUSTER_NAME _ _ _ DATA_DIR LOG_FILE <<<"$line"
}

# A killed server or a machine restart leaves postmaster.pid in the data
# directory and a lock file beside the socket. Both name the postmaster's PID,
# and the server refuses to start while that PID is alive, even when it is now
# a zombie or an unrelated process (pg_ctlcluster only clears postmaster.pid,
# and keeps it when the process's command line mentions "postgres"). A lock is
# live only while its PID runs a postgres executable.
remove_stale_lock_files() {
    local lock_file pid
    for lock_file in "$DATA_DIR/postmaster.pid" "$SOCKET_DIR/.s.PGSQL.$PORT.lock"; do
        [ -f "$lock_file" ] || continue
        pid=$(head -n 1 "$lock_file")
        if [[ $pid =~ ^[0-9]+$ ]] && [[ $(readlink "/proc/$pid/exe" 2>/dev/null) == */bin/postgres ]]; then
            continue
        fi
        log "removing stale $lock_file (PID $pid is not a running postgres)"
        rm -f "$lock_file"
    done
}

start_cluster() {
    local rc=0
    pg_isready -q -h "$HOST" -p "$PORT" && return 0
    remove_stale_lock_files
    log "starting cluster $CLUSTER_VERSION/$CLUSTER_NAME"
    pg_ctlcluster --skip-systemctl-redirect "$CLUSTER_VERSION" "$CLUSTER_NAME" start || rc=$?
    # 2: a postmaster of this cluster is already up, perhaps still recovering.
    if [ "$rc" -ne 0 ] && [ "$rc" -ne 2 ]; then
        tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
        die "could not start cluster $CLUSTER_VERSION/$CLUSTER_NAME (log: $LOG_FILE)"
    fi
}

wait_until_ready() {
    local deadline=$((SECONDS + START_TIMEOUT_S))
    until pg_isready -q -h "$HOST" -p "$PORT"; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            tail -n 20 "$LOG_FILE" >&2 2>/dev/null || true
            die "PostgreSQL not accepting connections on $HOST:$PORT after ${START_TIMEOUT_S}s (log: $LOG_FILE)"
        fi
        sleep 0.5
    done
}

# Creates the role and database if missing; resets the password, LOGIN,
# CREATEDB and the ownership in case they drifted.
ensure_role_and_database() {
    as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres \
        -v role="$ROLE" -v password="$PASSWORD" -v db="$DB" <<'SQL'
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
ALTER ROLE :"role" WITH LOGIN CREATEDB PASSWORD :'password';
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
ALTER DATABASE :"db" OWNER TO :"role";
SQL
}

main() {
    local version
    if version=$(crm_server_version); then
        report_ready "$version"
        return
    fi
    [ "$(id -u)" -eq 0 ] || die "$URL is not usable and setting it up needs root"

    server_installed || install_server
    server_installed || die "PostgreSQL server binaries still missing after apt-get install"
    select_cluster
    start_cluster
    wait_until_ready
    ensure_role_and_database

    version=$(crm_server_version) \
        || die "cannot log in as $ROLE over TCP; check /etc/postgresql/$CLUSTER_VERSION/$CLUSTER_NAME/pg_hba.conf"
    report_ready "$version"
}

main "$@"
