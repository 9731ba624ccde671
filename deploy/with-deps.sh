#!/usr/bin/env bash
# with-deps.sh CMD [ARGS...]: runs CMD (make test: go test) with MariaDB and
# Redis answering at MYSQL_ADDR and REDIS_ADDR, starting private instances
# there when none answer (deploy/deps.sh), and stops what it started when CMD
# ends or on Ctrl-C/SIGTERM/SIGHUP. Exits with CMD's status.
#
# The tests read MYSQL_DSN and REDIS_ADDR (pkg/testenv, e2e/internal/stack):
# both are exported. MYSQL_ADDR defaults to the address of MYSQL_DSN when
# that is set, else 127.0.0.1:3306; REDIS_ADDR to 127.0.0.1:6379. Private
# instances keep their data, config and pid files in $RUN_DIR/test (.run/test),
# apart from make run's: an interrupted make test's are stopped by the next
# make test or by make stop.
set -euo pipefail

[[ $# -gt 0 ]] || { echo "usage: with-deps.sh CMD [ARGS...]" >&2; exit 2; }
root=$(cd "$(dirname "$0")/.." && pwd)
prog=with-deps.sh
run_dir=${RUN_DIR:-$root/.run}/test
pid_dir=$run_dir/pids
dep_dir=$run_dir

source "$root/deploy/procs.sh"
source "$root/deploy/deps.sh"

dsn_addr=""
if [[ ${MYSQL_DSN:-} =~ @tcp\(([^\)]+)\) ]]; then dsn_addr=${BASH_REMATCH[1]}; fi
mysql_addr=${MYSQL_ADDR:-${dsn_addr:-127.0.0.1:3306}}
redis_addr=${REDIS_ADDR:-127.0.0.1:6379}

left=$(running)
if [[ -n $left ]]; then
  say "stopping what an interrupted make test left running:"
  stop_all
fi

cleanup() {
  local code=$1
  trap '' INT TERM HUP PIPE
  trap - EXIT
  set +e
  if [[ -n $(running) ]]; then
    say "stopping the private MariaDB/Redis of this run:"
    stop_all
  fi
  exit "$code"
}
trap 'cleanup 130' INT
trap 'cleanup 143' TERM
trap 'cleanup 129' HUP
trap 'cleanup $?' EXIT

ensure_mariadb "$mysql_addr"
ensure_redis "$redis_addr"
export MYSQL_DSN=${MYSQL_DSN:-"root@tcp($mysql_addr)/?parseTime=true&loc=UTC"}
export REDIS_ADDR=$redis_addr

# In the foreground, so Ctrl-C and a SIGTERM to the process group reach CMD
# (and its test binaries) directly; the trap runs once it has ended.
set +e
"$@"
code=$?
set -e
exit "$code"
