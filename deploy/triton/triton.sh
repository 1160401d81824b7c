#!/usr/bin/env bash
# Local Triton Inference Server (CPU, loopback only) for streamwarden dev and tests.
# No Docker: the tritonserver 2.51 binary and its Python backend come from the nvidia-pytriton wheel,
# installed in a venv of its own (it needs numpy<2; the project's .venv keeps numpy 2). The ONNX
# models are served by a Python-backend model running onnxruntime (python -m inference.repository).
#
#   deploy/triton/triton.sh up       start (idempotent) and wait until /v2/health/ready answers 200
#   deploy/triton/triton.sh down     SIGTERM, wait up to 30 s, then SIGKILL
#   deploy/triton/triton.sh status   one line; exit 0 if up, 1 otherwise
#   deploy/triton/triton.sh logs [-f] [N]   last N (default 50) lines of the server log
#
# Env: TRITON_HTTP_PORT (8000), TRITON_GRPC_PORT (8001), TRITON_METRICS_PORT (8002),
#      TRITON_DATA_DIR ($ROOT/.data/triton), TRITON_VENV_DIR ($ROOT/.data/triton/venv),
#      TRITON_MODELS (built-in frame models to serve, space-separated; default: all),
#      TRITON_START_TIMEOUT_S (60), TRITON_PYTHON (python3: makes the venv; its minor version picks
#      the backend stub), SW_PYTHON ($ROOT/.venv/bin/python: exports the model repository).
# Layout of TRITON_DATA_DIR: models/ (exported on every start), backends/python/ (links into the
# venv), triton.pid, triton.ports, logs/server.log. The venv is shared by every data dir.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
HTTP="${TRITON_HTTP_PORT:-8000}" GRPC="${TRITON_GRPC_PORT:-8001}" METRICS="${TRITON_METRICS_PORT:-8002}"
DATA="${TRITON_DATA_DIR:-$ROOT/.data/triton}"
VENV="${TRITON_VENV_DIR:-$ROOT/.data/triton/venv}"
TIMEOUT="${TRITON_START_TIMEOUT_S:-60}" PY="${TRITON_PYTHON:-python3}"
SW_PYTHON="${SW_PYTHON:-$ROOT/.venv/bin/python}"
PIDFILE="$DATA/triton.pid" PORTS="$DATA/triton.ports" LOGDIR="$DATA/logs" LOG="$DATA/logs/server.log"
MODELS="$DATA/models" BACKENDS="$DATA/backends"
# Fully pinned and installed with --no-deps: only the wheel's server binary is used, not the
# pytriton Python package, so its own dependencies (tritonclient, grpcio, pyzmq...) are left out.
# Keep onnxruntime equal to pyproject's pin: the same scores on both backends.
REQUIREMENTS="nvidia-pytriton==0.7.0 numpy==1.26.4 onnxruntime==1.32.0 flatbuffers==25.12.19 packaging==26.4 protobuf==7.36.2"

say() { echo "triton: $*"; }
die() { echo "triton: ERROR: $*" >&2; exit 1; }
port_open() { timeout 1 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null; }
ready() { curl -sf -o /dev/null --max-time 1 "http://127.0.0.1:$HTTP/v2/health/ready"; }

# Pid of the server that owns $DATA, if alive (checks the cmdline to survive pid reuse).
server_pid() {
  local pid
  pid="$(cat "$PIDFILE" 2>/dev/null)" || return 1
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$pid/cmdline")" == *" --model-repository=$MODELS "* ]] || return 1
  echo "$pid"
}

ensure_venv() {  # (re)create when the pins changed; serialized across data dirs
  [[ "$(cat "$VENV/.requirements" 2>/dev/null)" == "$REQUIREMENTS" ]] && return 0
  mkdir -p "$(dirname "$VENV")"
  (
    flock 8
    [[ "$(cat "$VENV/.requirements" 2>/dev/null)" == "$REQUIREMENTS" ]] && exit 0
    say "creating $VENV ($REQUIREMENTS)"
    rm -rf "$VENV"
    "$PY" -m venv "$VENV" || die "'$PY -m venv' failed (set TRITON_PYTHON)"
    # shellcheck disable=SC2086  # word splitting of the pins is intended
    "$VENV/bin/pip" install -q --disable-pip-version-check --no-deps $REQUIREMENTS \
      >"$VENV.pip.out" 2>&1 || { cat "$VENV.pip.out" >&2; rm -rf "$VENV"; die "pip install failed"; }
    echo "$REQUIREMENTS" >"$VENV/.requirements"
  ) 8>"$(dirname "$VENV")/.venv.lock"
}

# backends/python/ = the Python backend + the stub built for the venv's Python version.
link_backend() {
  local server ver
  # find_spec, not import: the pytriton package's own dependencies are not installed
  server="$("$VENV/bin/python" -c 'import importlib.util as u
print(u.find_spec("pytriton").submodule_search_locations[0])')/tritonserver" ||
    die "pytriton is missing from $VENV (remove it to rebuild)"
  ver="$("$VENV/bin/python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')"
  [[ -x "$server/python_backend_stubs/$ver/triton_python_backend_stub" ]] ||
    die "the wheel has no Python-backend stub for Python $ver (see $server/python_backend_stubs)"
  mkdir -p "$BACKENDS/python"
  ln -sfn "$server/backends/python/libtriton_python.so" "$BACKENDS/python/"
  ln -sfn "$server/backends/python/triton_python_backend_utils.py" "$BACKENDS/python/"
  ln -sfn "$server/python_backend_stubs/$ver/triton_python_backend_stub" "$BACKENDS/python/"
  echo "$server"
}

# Python-backend regions left in /dev/shm by a server that was SIGKILLed: no process maps them.
clean_stale_shm() {
  local f
  for f in /dev/shm/triton_python_backend_shm_region_*; do
    [[ -e "$f" ]] || continue
    grep -qsF "$f" /proc/[0-9]*/maps || rm -f "$f"
  done
}

# Python-backend stubs of this data dir whose server is gone: a SIGKILLed server can leave them.
kill_orphan_stubs() {
  local p parent killed=0
  for p in /proc/[0-9]*; do
    [[ "$(tr '\0' ' ' 2>/dev/null <"$p/cmdline")" == "$BACKENDS/python/triton_python_backend_stub "* ]] ||
      continue
    parent="$(awk '/^PPid:/ {print $2}' "$p/status" 2>/dev/null)" || continue
    [[ "$(tr '\0' ' ' 2>/dev/null <"/proc/$parent/cmdline")" == *"/bin/tritonserver "* ]] && continue
    kill -KILL "${p#/proc/}" 2>/dev/null && killed=1
  done
  if (( killed )); then sleep 0.2; fi
}

cmd_up() {
  mkdir -p "$DATA" "$LOGDIR"
  exec 9>"$DATA/.lock"; flock 9  # one 'up'/'down' per data dir at a time
  local pid
  if pid="$(server_pid)"; then
    [[ "$(cat "$PORTS" 2>/dev/null)" == "$HTTP $GRPC $METRICS" ]] ||
      die "the server for $DATA (pid $pid) runs on ports $(cat "$PORTS" 2>/dev/null); run '$0 down' first"
    ready && { say "already running (pid $pid) on 127.0.0.1 http $HTTP grpc $GRPC"; return 0; }
    say "pid $pid is starting; waiting for it"
  else
    rm -f "$PIDFILE"
    kill_orphan_stubs  # they inherit the dead server's sockets
    for p in "$HTTP" "$GRPC" "$METRICS"; do
      for _ in 1 2 3 4 5 6 7 8 9 10; do port_open "$p" || break; sleep 0.5; done  # a kill settling
      port_open "$p" && die "port $p on 127.0.0.1 is taken by another process (not the server for" \
        "$DATA); set TRITON_HTTP_PORT / TRITON_GRPC_PORT / TRITON_METRICS_PORT or stop it:" \
        "$(ss -ltnpH "sport = :$p" 2>/dev/null)"
    done
    command -v curl >/dev/null || die "curl not found (the readiness check uses it)"
    [[ -x "$SW_PYTHON" ]] || die "$SW_PYTHON not found: run 'make install' (or set SW_PYTHON)"
    ensure_venv
    local server libdir
    server="$(link_backend)"
    local model_args=() m
    for m in ${TRITON_MODELS:-}; do model_args+=(--model "$m"); done
    rm -rf "$MODELS"
    (cd "$ROOT" && "$SW_PYTHON" -m inference.repository --target cpu --out "$MODELS" "${model_args[@]}") \
      >"$LOGDIR/export.out" 2>&1 || { cat "$LOGDIR/export.out" >&2; die "model export failed"; }
    kill_orphan_stubs
    clean_stale_shm
    # The stub embeds libpython: it needs the venv interpreter's LIBDIR, and imports numpy and
    # onnxruntime from the first python on PATH (the venv's).
    libdir="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')"
    [[ -f "$LOG" ]] && mv -f "$LOG" "$LOG.prev"
    echo "$HTTP $GRPC $METRICS" >"$PORTS"
    # own session (setsid), so killing the caller's process group does not take the server down;
    # the inner shell records its pid and then execs, so the pid file names tritonserver itself
    # shellcheck disable=SC2016  # $$ and $@ belong to the inner shell
    PATH="$VENV/bin:$PATH" \
      LD_LIBRARY_PATH="$libdir:$(dirname "$server")/../nvidia_pytriton.libs${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" \
      setsid bash -c 'echo $$ >"$0"; exec "$@"' "$PIDFILE" "$server/bin/tritonserver" \
      --model-repository="$MODELS" --backend-directory="$BACKENDS" --allow-gpu-metrics=false \
      --http-address=127.0.0.1 --http-port="$HTTP" --grpc-address=127.0.0.1 --grpc-port="$GRPC" \
      --metrics-address=127.0.0.1 --metrics-port="$METRICS" --exit-timeout-secs=10 \
      --backend-config=python,shm-default-byte-size=16777216 \
      --backend-config=python,shm-growth-byte-size=16777216 \
      >"$LOG" 2>&1 </dev/null 9>&- &
    for _ in $(seq 50); do [[ -s "$PIDFILE" ]] && break; sleep 0.1; done
    pid="$(cat "$PIDFILE" 2>/dev/null)" || die "could not launch tritonserver (see $LOG)"
    say "starting (pid $pid, 127.0.0.1 http $HTTP grpc $GRPC metrics $METRICS, data $DATA)"
  fi
  local t0=$SECONDS
  until ready; do
    if ! kill -0 "$pid" 2>/dev/null; then
      rm -f "$PIDFILE"
      tail -n 30 "$LOG" >&2 2>/dev/null || true
      die "server exited during startup (log: $LOG)"
    fi
    if (( SECONDS - t0 >= TIMEOUT )); then
      tail -n 30 "$LOG" >&2 2>/dev/null || true
      die "server (pid $pid) not ready after ${TIMEOUT}s; still running, see $LOG or run '$0 down'"
    fi
    sleep 0.1
  done
  say "up on 127.0.0.1 http $HTTP grpc $GRPC after $((SECONDS - t0))s (pid $pid)"
}

cmd_down() {
  [[ -d "$DATA" ]] || { say "not running (no $DATA)"; return 0; }
  exec 9>"$DATA/.lock"; flock 9
  local pid
  pid="$(server_pid)" || { kill_orphan_stubs; clean_stale_shm; rm -f "$PIDFILE"; say "not running"; return 0; }
  say "stopping pid $pid"
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  if kill -0 "$pid" 2>/dev/null; then say "still alive after 30 s; SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
  kill_orphan_stubs; clean_stale_shm
  rm -f "$PIDFILE"; say "stopped"
}

cmd_status() {
  local pid
  if pid="$(server_pid)"; then
    ready && { say "up (pid $pid, 127.0.0.1 http $HTTP grpc $GRPC, data $DATA)"; return 0; }
    say "starting or unhealthy (pid $pid, http $HTTP not ready)"; return 1
  fi
  say "down (data $DATA)"; return 1
}

cmd_logs() {
  local follow=() n=50
  for a in "$@"; do case "$a" in -f) follow=(-F) ;; *) n="$a" ;; esac; done
  [[ -f "$LOG" ]] || die "no log yet at $LOG"
  exec tail -n "$n" "${follow[@]}" "$LOG"
}

case "${1:-}" in
  up | down | status) "cmd_$1" ;;
  logs) shift; cmd_logs "$@" ;;
  *) echo "usage: $0 {up|down|status|logs [-f] [N]}" >&2; exit 2 ;;
esac
