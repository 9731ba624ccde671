# Sourced by deploy/run.sh and deploy/with-deps.sh: messages, and the
# processes they start, tracked in pid files so that whatever they started
# is stopped by them, by `make stop` after a crash, and named by the next
# `make run` if still running.
#
# The caller sets prog (for messages) and pid_dir. A pid file
# <pid_dir>/<name>.pid holds "PID STARTTIME LAYER": the start time (from
# /proc) tells a live process from a new one that got the same pid; the
# layer is when it stops: extra, then service, then broker, then dep
# (MariaDB and Redis last).

layers=(extra service broker dep) # stop order

say() { printf '%s\n' "$*" 2>/dev/null || true; } # never fails: the terminal may be gone (SIGHUP)
die() {
  printf '%s: %s\n' "$prog" "$*" >&2 2>/dev/null || true
  exit 1
}

# reachable HOST:PORT: a TCP connect within 2 s.
reachable() {
  local host=${1%:*} p=${1##*:}
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$p" 2>/dev/null
}

# start_time PID: the process's start time in clock ticks since boot;
# fails when there is no such process or it is a zombie (exited, not reaped).
start_time() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) } # fields after the command name, which may hold spaces
  # shellcheck disable=SC2086
  set -- $stat # $1 is field 3 (state), so field 22 (starttime) is $20
  [[ $1 != Z ]] || return 1
  printf '%s\n' "${20}"
}

# start_proc LAYER NAME LOG CMD...: starts CMD in a session of its own, its
# output appended to LOG, and records it. setsid: the children get no
# terminal signals, so Ctrl-C reaches only the script, which then stops
# them in order. (Without job control a background job is not a process
# group leader, so setsid execs CMD in the same process: $! is its pid.)
start_proc() {
  local layer=$1 name=$2 log=$3
  shift 3
  setsid "$@" >>"$log" 2>&1 </dev/null &
  local pid=$!
  mkdir -p "$pid_dir"
  printf '%s %s %s\n' "$pid" "$(start_time "$pid" || echo 0)" "$layer" >"$pid_dir/$name.pid"
}

# proc_pid NAME: the pid of NAME if its recorded process still runs.
proc_pid() {
  local f="$pid_dir/$1.pid" pid started layer now
  [[ -r $f ]] || return 1
  read -r pid started layer <"$f" || return 1
  now=$(start_time "$pid") || return 1
  [[ $now == "$started" ]] || return 1
  printf '%s\n' "$pid"
}

# procs [LAYER]: the names with a pid file (of LAYER).
procs() {
  local f pid started layer
  for f in "$pid_dir"/*.pid; do
    [[ -r $f ]] && read -r pid started layer <"$f" || continue
    [[ -z ${1:-} || $layer == "$1" ]] && basename "$f" .pid
  done
}

# running: "name (pid N)" for every recorded process still running; pid
# files of processes that are gone are removed.
running() {
  local name pid
  for name in $(procs); do
    if pid=$(proc_pid "$name"); then
      printf '%s (pid %s)\n' "$name" "$pid"
    else
      rm -f "$pid_dir/$name.pid"
    fi
  done
}

# stop_layer LAYER: SIGTERM to every running process of LAYER at once, then
# wait for each up to 20 s, then SIGKILL; their pid files go.
stop_layer() {
  local name pid names=() pids=()
  for name in $(procs "$1"); do
    if pid=$(proc_pid "$name"); then
      kill -TERM "$pid" 2>/dev/null || true
      names+=("$name")
      pids+=("$pid")
    else
      rm -f "$pid_dir/$name.pid"
    fi
  done
  local i
  for i in "${!pids[@]}"; do
    say "  stopping ${names[$i]} (pid ${pids[$i]})"
    wait_gone "${pids[$i]}" 200 || {
      say "  ${names[$i]} did not stop within 20 s: SIGKILL"
      kill -KILL "${pids[$i]}" 2>/dev/null || true
      wait_gone "${pids[$i]}" 50 || true
    }
    wait "${pids[$i]}" 2>/dev/null || true # reap it if it is our child
    rm -f "$pid_dir/${names[$i]}.pid"
  done
}

# wait_gone PID TENTHS: wait up to TENTHS × 0.1 s for PID to exit.
wait_gone() {
  local _
  for _ in $(seq "$2"); do
    start_time "$1" >/dev/null || return 0
    sleep 0.1
  done
  ! start_time "$1" >/dev/null
}

# stop_all: every recorded process, layer by layer.
stop_all() {
  local layer
  for layer in "${layers[@]}"; do stop_layer "$layer"; done
}
