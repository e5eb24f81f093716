# Sourced by scripts/rolling-restart.sh and scripts/replicas.sh: what running replicas behind
# HAProxy on loopback takes. Needs $work (the script's scratch folder) and $script (its name, for
# messages) set before it is sourced.

# FANOUT_ variables of the caller's environment, unset for every replica (`env "${unset_fanout[@]}"`).
unset_fanout=()
while IFS= read -r name; do unset_fanout+=(-u "$name"); done < <(env | sed -n 's/^\(FANOUT_[A-Za-z0-9_]*\)=.*/\1/p')

# GET /readyz on 127.0.0.1:PORT answered 200, through bash's /dev/tcp (no curl needed).
ready() {
    local answer
    # (The braces keep 2>/dev/null from becoming the shell's own stderr through exec.)
    { exec 3<>"/dev/tcp/127.0.0.1/$1"; } 2>/dev/null || return 1
    printf 'GET /readyz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n' >&3
    IFS= read -r -t 2 answer <&3 || { exec 3<&-; return 1; }
    exec 3<&-
    [[ $answer == "HTTP/1."?" 200"* ]]
}

wait_until() {  # wait_until SECONDS DESCRIPTION COMMAND...
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$(( $(date +%s) + limit ))
    until "$@"; do
        if [ "$(date +%s)" -ge "$deadline" ]; then echo "$script: timed out waiting for $what" >&2; return 1; fi
        sleep 0.1
    done
}

haproxy_state() {
    python3 scripts/rolling_load.py haproxy-state --socket "$work/haproxy.sock" --backend fanoutd --server "$1" 2>/dev/null || true
}
haproxy_up() { [ "$(haproxy_state "$1")" = UP ]; }
haproxy_down() { [ "$(haproxy_state "$1")" != UP ]; }

# write_haproxy_cfg FILE FRONTEND_PORT NAME=PORT... — HAProxy for a streaming API:
#   - health checks on /readyz, so a draining replica leaves the rotation within one check
#     (every second, as a Kubernetes readiness probe would: jobs that reach a draining replica
#     before that get 503, which HAProxy retries on the other one);
#   - http-server-close: no idle keep-alive connection to a replica is reused once it drains;
#   - the response is forwarded as it arrives (no compression filter, http-no-delay);
#   - `timeout server` above the heartbeat interval, so idle streams are not cut;
#   - a refused connection or a 503 (draining or saturated; the job never started) is retried
#     on another replica;
#   - no on-marked-down shutdown-sessions: a replica marked down keeps its running streams;
#   - X-Served-By names the replica that answered.
write_haproxy_cfg() {
    local file=$1 frontend=$2 server
    shift 2
    cat >"$file" <<CFG
global
    maxconn 4096
    stats socket $work/haproxy.sock mode 600 level admin
    pidfile $work/haproxy.pid

defaults
    mode http
    option http-server-close
    option http-no-delay
    option redispatch 1
    retries 3
    retry-on conn-failure 503
    timeout connect 2s
    timeout client 60s
    timeout server 60s
    timeout http-request 10s
    timeout queue 10s
    timeout check 2s

frontend fanoutd_in
    bind 127.0.0.1:$frontend
    default_backend fanoutd

backend fanoutd
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    http-response set-header X-Served-By %[srv_name]
    default-server check inter 1s fastinter 250ms downinter 250ms fall 1 rise 2
CFG
    for server in "$@"; do
        echo "    server ${server%%=*} 127.0.0.1:${server#*=}" >>"$file"
    done
    haproxy -c -q -f "$file"
}

# report_and_exit STATUS — for the scripts' EXIT trap: on failure the last lines of every log in
# $work, else $work removed; then exits with STATUS.
report_and_exit() {
    local status=$1 f
    if [ "$status" -ne 0 ]; then
        echo "$script: failed; logs in $work" >&2
        for f in "$work"/*.log; do
            [ -f "$f" ] || continue
            echo "--- last lines of $f" >&2
            tail -n 15 "$f" >&2
        done
    else
        rm -rf "$work"
    fi
    exit "$status"
}
