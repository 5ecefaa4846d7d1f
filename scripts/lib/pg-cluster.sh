# A throwaway PostgreSQL cluster for the benchmark scripts (sourced, not run).
#
#   pg_cluster_start DIR PORT [SETTING ...]   # initdb in DIR/pg, start on 127.0.0.1:PORT with
#                                             # `-c SETTING` each, create database syncml;
#                                             # sets PG_URL (and PGBIN, PG_CLUSTER_DIR)
#   pg_cluster_stop                           # stops it, if one was started
pg_cluster_start() {
    local dir=$1 port=$2
    shift 2
    PGBIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
    PG_CLUSTER_DIR=$dir/pg
    local opts="-p $port -k $dir -c listen_addresses=127.0.0.1"
    for setting in "$@"; do opts+=" -c $setting"; done
    chown postgres "$dir"
    runuser -u postgres -- "$PGBIN/initdb" -D "$PG_CLUSTER_DIR" -A trust -U postgres >/dev/null
    runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_CLUSTER_DIR" -l "$dir/pg.log" -o "$opts" \
        start >/dev/null
    runuser -u postgres -- "$PGBIN/createdb" -h 127.0.0.1 -p "$port" syncml
    PG_URL=postgres://postgres@127.0.0.1:$port/syncml
}

pg_cluster_stop() {
    if [[ -n ${PG_CLUSTER_DIR:-} && -d $PG_CLUSTER_DIR ]]; then
        runuser -u postgres -- "$PGBIN/pg_ctl" -D "$PG_CLUSTER_DIR" stop -m fast >/dev/null 2>&1 || true
    fi
}
