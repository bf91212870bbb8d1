# Sourced by the `rms serve` benchmarks (scripts/bench-serve and scripts/bench/*): one demo server
# at a time on 127.0.0.1 and a free port, stopped when the script exits.
#   start_serve BIN DATABASE LOG [SERVE ARGS...]   starts it and waits for /admin/health; sets $url
#   health FIELD                                   that field of /admin/health
#   stop_serve                                     stops it (also done on exit, with $work removed)
# The load generator, for every benchmark that sources this (a Debian package).
if ! command -v wrk >/dev/null 2>&1; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "no wrk (the load generator); install Debian's package: sudo apt-get install wrk" >&2
    exit 1
  fi
  echo "installing wrk (Debian package)" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi
work=$(mktemp -d)
server=
url=
stop_serve() {
  if [ -n "$server" ]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=
  fi
}
trap 'stop_serve; rm -rf "$work"' EXIT

start_serve() {
  local bin=$1 database=$2 log=$3 port
  shift 3
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$bin" serve --demo "$@" --listen "127.0.0.1:$port" --database "$database" >/dev/null 2>"$log" &
  server=$!
  url="http://127.0.0.1:$port"
  for _ in $(seq 100); do
    curl -sf "$url/admin/health" >/dev/null && return 0
    kill -0 "$server" 2>/dev/null || break
    sleep 0.1
  done
  echo "rms serve ($bin) did not answer on $url (exited, or not within 10 s); its log, $log:" >&2
  cat "$log" >&2
  return 1
}

health() {
  curl -sf "$url/admin/health" | python3 -c "import json,sys; print(json.load(sys.stdin).get('$1', 'not reported'))"
}
