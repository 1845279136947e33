#!/usr/bin/env bash
# Several Switchboard instances sharing one PostgreSQL, behind nginx, on loopback (Docs/SCALING.md).
#
#   scripts/cluster.sh start [-n 3] [--port 8080] [--binary .build/debug/switchboard] [--dir /tmp/switchboard-cluster]
#   scripts/cluster.sh stop  [--dir /tmp/switchboard-cluster]
#
# start: PostgreSQL (scripts/test-postgres.sh, unless SWITCHBOARD_DATABASE names one), N instances on ports
# PORT+1..PORT+N with ids sb-1..sb-N and the database shared, then nginx on PORT in front of them, with the
# streaming settings of Docs/STREAMING.md. nginx spreads chats over the instances and sends a resume
# (GET/DELETE /mcp/chat/stream/INSTANCE.UUID) to the instance named in the session id; when that instance is
# gone it answers 404 session_not_found at once. The instances get this script's environment (ANTHROPIC_API_KEY,
# SWITCHBOARD_API_KEYS_FILE, ...). Prints one line per process: "sb-1 127.0.0.1:8081 PID", "nginx 127.0.0.1:8080 PID".
# Logs and PID files are in --dir. stop: every process of --dir, by PID (TERM, then KILL after 30 s).
set -euo pipefail
cd "$(dirname "$0")/.."

command=${1:-}
shift || true
count=3
port=8080
binary=.build/debug/switchboard
dir=/tmp/switchboard-cluster
while [ $# -gt 0 ]; do
  case "$1" in
    -n) count=$2; shift 2 ;;
    --port) port=$2; shift 2 ;;
    --binary) binary=$2; shift 2 ;;
    --dir) dir=$2; shift 2 ;;
    *) echo "unknown option $1" >&2; exit 2 ;;
  esac
done

nginx_bin=$(command -v nginx || ls /usr/sbin/nginx 2>/dev/null || true)

ready() {  # ready PORT: /ready answers 200 within 30 s
  for _ in $(seq 1 300); do
    if python3 -c "import urllib.request,sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:$1/ready', timeout=1).status == 200 else 1)" 2>/dev/null; then
      return 0
    fi
    sleep 0.1
  done
  return 1
}

stop_pid() {  # stop_pid FILE: TERM, wait up to 30 s, then KILL
  local pid
  pid=$(cat "$1" 2>/dev/null || true)
  [ -n "$pid" ] || return 0
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$1"
}

case "$command" in
  start)
    [ -x "$binary" ] || { echo "no switchboard binary at $binary (swift build first, or --binary)" >&2; exit 1; }
    [ -n "$nginx_bin" ] || { echo "nginx is not installed (apt-get install nginx)" >&2; exit 1; }
    mkdir -p "$dir"
    if [ -z "${SWITCHBOARD_DATABASE:-}" ]; then
      eval "$(scripts/test-postgres.sh start)"
      export SWITCHBOARD_DATABASE=${SWITCHBOARD_TEST_POSTGRES_URL/\/switchboard_test\?//switchboard_test_cluster?}
    fi
    upstreams=""
    owners=""
    for i in $(seq 1 "$count"); do
      id=sb-$i
      p=$((port + i))
      "$binary" serve --port "$p" --instance-id "$id" --database "$SWITCHBOARD_DATABASE" > "$dir/$id.log" 2>&1 &
      echo $! > "$dir/$id.pid"
      upstreams+="    server 127.0.0.1:$p max_fails=1 fail_timeout=2s;"$'\n'
      owners+="  upstream $id { server 127.0.0.1:$p; }"$'\n'
    done
    # One at a time: the first prepares the schema, the others find it ready.
    for i in $(seq 1 "$count"); do
      ready $((port + i)) || { echo "sb-$i did not become ready; its log:" >&2; tail -20 "$dir/sb-$i.log" >&2; exit 1; }
      echo "sb-$i 127.0.0.1:$((port + i)) $(cat "$dir/sb-$i.pid")"
    done
    mkdir -p "$dir/nginx"
    cat > "$dir/nginx.conf" <<EOF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_buffer_size 1m;   # chat bodies stay in memory (the temp path is not the workers' to write)
  client_body_temp_path $dir/nginx; proxy_temp_path $dir/nginx; fastcgi_temp_path $dir/nginx;
  uwsgi_temp_path $dir/nginx; scgi_temp_path $dir/nginx;
  # No upstream keepalive: each chat opens its own connection (a stream lasts seconds, a loopback or LAN
  # connect costs microseconds), so a stopping instance refuses new chats at connect time, which nginx then
  # safely sends to the next instance; a pooled connection the instance closes under a POST would be a 502.
  upstream switchboard {
$upstreams  }
$owners
  # A resume goes to the instance named in the session id (INSTANCE.UUID).
  map \$uri \$stream_owner {
    ~^/mcp/chat/stream/(?<owner>[A-Za-z0-9_-]+)\.[0-9a-f-]+\$ \$owner;
    default "";
  }
  server {
    listen 127.0.0.1:$port backlog=4096;
    # The streaming settings of Docs/STREAMING.md.
    proxy_http_version 1.1;
    proxy_set_header Host \$host;
    proxy_buffering off;
    proxy_cache off;
    gzip off;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    chunked_transfer_encoding on;
    location ~ ^/mcp/chat/stream/[^/]+\$ {
      if (\$stream_owner = "") { return 404 '{"error":{"code":"session_not_found","message":"no resumable stream has this id","field":"sessionId"}}'; }
      proxy_pass http://\$stream_owner;
      error_page 502 504 = @owner_gone;
    }
    location @owner_gone {
      default_type application/json;
      return 404 '{"error":{"code":"session_not_found","message":"the instance that held this stream is gone; send the chat again","field":"sessionId"}}';
    }
    location / {
      # A chat whose instance refused or dropped the connection before answering (it is stopping or gone) is sent
      # to the next one, POSTs included: Switchboard sends a stream's head and session_start before it calls the
      # model, so a chat that got no answer has spent nothing.
      proxy_next_upstream error timeout non_idempotent;
      proxy_next_upstream_tries 3;
      proxy_pass http://switchboard;
    }
  }
}
EOF
    "$nginx_bin" -p "$dir/nginx" -c "$dir/nginx.conf" -e "$dir/nginx-error.log"
    for _ in $(seq 1 100); do [ -s "$dir/nginx.pid" ] && break; sleep 0.05; done
    ready "$port" || { echo "nginx did not answer; its log:" >&2; cat "$dir/nginx-error.log" >&2; exit 1; }
    echo "nginx 127.0.0.1:$port $(cat "$dir/nginx.pid")"
    ;;
  stop)
    [ -f "$dir/nginx.pid" ] && stop_pid "$dir/nginx.pid"
    for file in "$dir"/sb-*.pid; do [ -e "$file" ] && stop_pid "$file"; done
    true
    ;;
  *)
    echo "usage: scripts/cluster.sh start|stop [-n N] [--port P] [--binary PATH] [--dir DIR]" >&2
    exit 2
    ;;
esac
