#!/usr/bin/env bash
# Runs the whole flash-sale system on this machine (what `make run` calls after
# `make build`): MariaDB and Redis (private ones when none answer, see
# deploy/deps.sh), the embedded RocketMQ-compatible broker (or the real
# RocketMQ named by ROCKETMQ_NAMESRV) and the four services. Same env names and
# config files (deploy/config) as docker-compose.yml.
#
# Ctrl-C, SIGTERM and SIGHUP stop everything it started: the extra processes,
# then the services, the broker, and last the private MariaDB and Redis. Pid
# files are kept in $RUN_DIR/pids; after a crash (SIGKILL) the next run names
# what is still running, and `run.sh -stop` (make stop) stops it.
#
#   run.sh                    start everything, wait until every /readyz answers 200
#   run.sh -stop              stop what a run (or make test) left running
#   run.sh -print-env SVC     print the environment of service SVC and exit
#
# Settings (environment):
#   ROCKETMQ_NAMESRV      use a real RocketMQ (ip:port[;ip:port]) instead of the embedded broker
#   ADMIN_TOKEN           generated if unset
#   CONSUME_RATE (200), PAY_TIMEOUT_LEVEL (5 = 1m), ORDER_SEND_MODE (outbox)
#   DELAY_SCALE           embedded broker only; 1 = real time
# Addresses (all host:port; a second stack on other ports runs beside the first
# with its own RUN_DIR):
#   MYSQL_ADDR            127.0.0.1:3306, user root without a password
#   REDIS_ADDR            127.0.0.1:6379
#   ORDER_HTTP_ADDR       127.0.0.1:8080   PAYMENT_HTTP_ADDR   127.0.0.1:8081
#   INVENTORY_HTTP_ADDR   127.0.0.1:8082   LOGISTICS_HTTP_ADDR 127.0.0.1:8083
#   EMBEDDED_NAMESRV      127.0.0.1:9876   EMBEDDED_BROKER     127.0.0.1:10911
#   EMBEDDED_BROKER_METRICS 127.0.0.1:8084 (the embedded broker's Prometheus /metrics)
#   CONSOLE_HTTP_ADDR     127.0.0.1:8090   (the live sale console)
#   RUN_DIR               .run (logs, pid files, broker store, private MariaDB and Redis)
#   BIN_DIR               bin (what make build writes)
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
prog=run.sh
bin=${BIN_DIR:-$root/bin}
run_dir=${RUN_DIR:-$root/.run}
log_dir=$run_dir/logs
pid_dir=$run_dir/pids
dep_dir=$run_dir

services=(order payment inventory logistics) # start order
declare -A http_addr=(
  [order]=${ORDER_HTTP_ADDR:-127.0.0.1:8080}
  [payment]=${PAYMENT_HTTP_ADDR:-127.0.0.1:8081}
  [inventory]=${INVENTORY_HTTP_ADDR:-127.0.0.1:8082}
  [logistics]=${LOGISTICS_HTTP_ADDR:-127.0.0.1:8083}
)

mysql_addr=${MYSQL_ADDR:-127.0.0.1:3306}
redis_addr=${REDIS_ADDR:-127.0.0.1:6379}
embedded_namesrv=${EMBEDDED_NAMESRV:-127.0.0.1:9876}
embedded_broker=${EMBEDDED_BROKER:-127.0.0.1:10911}
embedded_broker_metrics=${EMBEDDED_BROKER_METRICS:-127.0.0.1:8084}
namesrv=${ROCKETMQ_NAMESRV:-$embedded_namesrv}
console_addr=${CONSOLE_HTTP_ADDR:-127.0.0.1:8090}

source "$root/deploy/procs.sh"
source "$root/deploy/deps.sh"

token_generated=""
if [[ -z "${ADMIN_TOKEN:-}" ]]; then
  ADMIN_TOKEN=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  token_generated=" (generated; set ADMIN_TOKEN to choose one)"
fi

# service_env SVC: the environment of one service, the same names as in
# docker-compose.yml. Values differ only in addresses (localhost vs containers).
service_env() {
  local s=$1
  printf '%s\n' \
    "CONFIG_FILE=$root/deploy/config/$s.yaml" \
    "HTTP_ADDR=${http_addr[$s]}" \
    "MYSQL_DSN=root@tcp($mysql_addr)/seckill_$s?parseTime=true&loc=UTC" \
    "ROCKETMQ_NAMESRV=$namesrv" \
    "CONSUME_RATE=${CONSUME_RATE:-200}"
  case $s in
    order)
      printf '%s\n' "REDIS_ADDR=$redis_addr" \
        "PAY_TIMEOUT_LEVEL=${PAY_TIMEOUT_LEVEL:-5}" \
        "ORDER_SEND_MODE=${ORDER_SEND_MODE:-outbox}" ;;
    payment)
      printf '%s\n' "REDIS_ADDR=$redis_addr" ;;
    inventory)
      printf '%s\n' "REDIS_ADDR=$redis_addr" "ADMIN_TOKEN=$ADMIN_TOKEN" ;;
  esac
}

case ${1:-} in
  -print-env)
    # e2e/compose_test.go compares it with docker-compose.yml and runs the
    # service's -check-config on it.
    [[ -n ${2:-} && -n ${http_addr[${2}]:-} ]] || die "usage: run.sh -print-env order|payment|inventory|logistics"
    service_env "$2"
    exit 0 ;;
  -stop)
    # The processes of this run dir, and the private MariaDB/Redis of an
    # interrupted make test (deploy/with-deps.sh keeps them in $run_dir/test).
    stopped=""
    for pid_dir in "$run_dir/pids" "$run_dir/test/pids"; do
      [[ -n $(running) ]] || continue
      say "stopping what was started with pid files in $pid_dir:"
      stop_all
      stopped=1
    done
    if [[ -n $stopped ]]; then say "stopped."; else say "nothing was running (no live process in $run_dir/pids)."; fi
    exit 0 ;;
  "") ;;
  *) die "usage: run.sh [-stop | -print-env SVC]" ;;
esac

for b in testbroker "${services[@]}"; do
  [[ -x "$bin/$b" ]] || die "$bin/$b is missing: run \`make build\` first (or just \`make run\`)."
done

# What an earlier run left running (it was SIGKILLed, or its terminal and
# its cleanup died together) holds the ports: name it instead of failing on
# the first port.
left=$(running)
if [[ -n $left ]]; then
  die "still running from an earlier make run (pid files in $pid_dir):
$(sed 's/^/  /' <<<"$left")
Stop them with \`make stop\` (./deploy/run.sh -stop), then run again."
fi

for s in "${services[@]}"; do
  if reachable "${http_addr[$s]}"; then
    die "${http_addr[$s]} ($s-service) is already in use: stop whatever listens there (another make run?), or set ${s^^}_HTTP_ADDR."
  fi
done
if [[ -z "${ROCKETMQ_NAMESRV:-}" ]]; then
  for a in "$embedded_namesrv" "$embedded_broker" "$embedded_broker_metrics"; do
    reachable "$a" && die "$a is already in use: stop the other broker, set EMBEDDED_NAMESRV/EMBEDDED_BROKER/EMBEDDED_BROKER_METRICS, or set ROCKETMQ_NAMESRV to use it."
  done
fi

mkdir -p "$log_dir"

# --- shutdown -------------------------------------------------------------------
# A second signal must not cut the stop short: make passes its SIGTERM on to
# this script, which has usually got the same signal from the process group
# already. So the handler ignores INT/TERM/HUP (not reset to default) and
# never stops on an error; what it writes may go to a closed terminal.
cleanup() {
  local code=$1
  trap '' INT TERM HUP PIPE
  trap - EXIT
  set +e
  if [[ -n $(running) ]]; then
    say ""
    say "stopping..."
    stop_all
    say "stopped."
  fi
  exit "$code"
}
trap 'cleanup 0' INT TERM HUP
trap 'cleanup $?' EXIT

# --- MariaDB and Redis ----------------------------------------------------------
ensure_mariadb "$mysql_addr"
ensure_redis "$redis_addr"

# --- broker -----------------------------------------------------------------------
if [[ -n "${ROCKETMQ_NAMESRV:-}" ]]; then
  IFS=';' read -ra addrs <<<"$namesrv"
  for a in "${addrs[@]}"; do
    reachable "$a" || die "ROCKETMQ_NAMESRV=$namesrv: name server $a is not reachable (it must be ip:port; client-go rejects hostnames)."
  done
  say "using RocketMQ at $namesrv (ROCKETMQ_NAMESRV)"
else
  # -topics: the same topics and queue counts as deploy/rocketmq/init-topics.sh.
  # -data-dir: messages and offsets survive a restart, like a real broker's
  # store (a pending pay timeout still fires after the next make run).
  start_proc broker testbroker "$log_dir/testbroker.log" "$bin/testbroker" \
    -namesrv "$embedded_namesrv" -broker "$embedded_broker" \
    -topics ORDER:4,SOLDOUT:1,STOCK_LEDGER:1,ORDER_STATS:4 \
    -data-dir "$run_dir/broker" -delay-scale "${DELAY_SCALE:-1}" \
    -metrics "$embedded_broker_metrics"
  wait_up testbroker "reachable $embedded_namesrv" "$log_dir/testbroker.log"
  wait_up testbroker "reachable $embedded_broker" "$log_dir/testbroker.log"
  say "embedded broker: name server $embedded_namesrv, broker $embedded_broker (log $log_dir/testbroker.log)"
fi

# --- services ---------------------------------------------------------------------
# start_bin LAYER NAME [ARGS...]: runs $bin/NAME ARGS with the environment of
# this script plus NAME's service_env lines (for services), its log in
# $log_dir/NAME.log; stopped with its layer.
start_bin() {
  local layer=$1 name=$2
  shift 2
  local envs=()
  [[ $layer == service ]] && mapfile -t envs < <(service_env "$name")
  : >"$log_dir/$name.log"
  start_proc "$layer" "$name" "$log_dir/$name.log" env "${envs[@]}" "$bin/$name" "$@"
}

for s in "${services[@]}"; do start_bin service "$s"; done

# ready SVC: the service's /readyz answers 200 (database, Redis, broker
# reachable, consumers started), asked through its own -readycheck so that
# no curl is needed.
ready() {
  local envs
  mapfile -t envs < <(service_env "$1")
  env "${envs[@]}" "$bin/$1" -readycheck >/dev/null 2>&1
}
for s in "${services[@]}"; do
  wait_up "$s" "ready $s" "$log_dir/$s.log"
done

# --- extra processes ------------------------------------------------------------
# Tools next to the services: `start_bin extra NAME ARGS...` runs bin/NAME ARGS,
# logs to $log_dir/NAME.log, and is stopped first on Ctrl-C/SIGTERM/SIGHUP and
# by make stop.
url() { printf 'http://%s' "${http_addr[$1]}"; }
# The live sale console: reads the services' /metrics and APIs and the broker.
start_bin extra console -http-addr "$console_addr" -order-url "$(url order)" -payment-url "$(url payment)" \
  -inventory-url "$(url inventory)" -logistics-url "$(url logistics)" -namesrv "$namesrv" \
  -consume-rate "${CONSUME_RATE:-200}"
wait_up console "reachable $console_addr" "$log_dir/console.log"

# --- up ---------------------------------------------------------------------------
cat <<EOF

The flash-sale system is up.
  sale console       http://$console_addr   (watch a sale live)   log $log_dir/console.log
  order-service      $(url order)   log $log_dir/order.log
  payment-service    $(url payment)   log $log_dir/payment.log
  inventory-service  $(url inventory)   log $log_dir/inventory.log
  logistics-service  $(url logistics)   log $log_dir/logistics.log
  broker             ${namesrv}$(proc_pid testbroker >/dev/null && printf '   log %s, metrics http://%s/metrics' "$log_dir/testbroker.log" "$embedded_broker_metrics")
  MariaDB            ${mysql_addr}$(proc_pid mariadb >/dev/null && printf '   private, %s' "$dep_dir/mariadb")
  Redis              ${redis_addr}$(proc_pid redis >/dev/null && printf '   private, %s' "$dep_dir/redis")
  every service also serves /healthz (alive), /readyz (ready) and /metrics (Prometheus)

ADMIN_TOKEN=$ADMIN_TOKEN$token_generated

Try it (in another terminal):
  export ADMIN_TOKEN=$ADMIN_TOKEN
  # 1. create (or reset) a sale: 100 units, 1 per user
  curl -s -X PUT $(url inventory)/api/v1/products/p1 -H "Authorization: Bearer \$ADMIN_TOKEN" \\
       -H 'Content-Type: application/json' -d '{"name":"phone","price_cents":99900,"stock":100,"per_user_limit":1}'
  # 2. order one (202 pending; the same Idempotency-Key returns the same order)
  ORDER_ID=\$(curl -s -X POST $(url order)/api/v1/orders -H 'Idempotency-Key: try-1' \\
       -H 'Content-Type: application/json' -d '{"user_id":"u1","product_id":"p1","quantity":1}' | jq -r .order_id); echo \$ORDER_ID
  # 3. look at it (pending -> created once GID-order persisted it; pay_deadline fixed at acceptance)
  curl -s $(url order)/api/v1/orders/\$ORDER_ID
  # 4. pay it before its pay_deadline: 200 paid at once (409 order_closed after the deadline)
  curl -s -X POST $(url payment)/api/v1/payments/\$ORDER_ID
  # 5. the shipment, the order (shipped) and the stock
  curl -s $(url logistics)/api/v1/shipments/\$ORDER_ID
  curl -s $(url order)/api/v1/orders/\$ORDER_ID
  curl -s $(url inventory)/api/v1/products/p1
  # everything that happened to it, in every service
  jq -c --arg id "\$ORDER_ID" 'select(.order_id==\$id or .keys==\$id) | {time,service,msg,group,tag,status}' $log_dir/*.log | sort

Ctrl-C stops everything.
EOF

# Wait until a signal (trap) or until something started here exits on its own.
while true; do
  wait -n 2>/dev/null || sleep 1 # sleep: nothing left to wait for (not our children)
  for name in $(procs); do
    if ! proc_pid "$name" >/dev/null; then
      say "$name exited on its own; last lines of its log:" >&2
      for f in "$log_dir/$name.log" "$dep_dir/$name/$name.log" "$dep_dir/$name/mariadbd.err"; do
        [[ -r $f ]] && tail -n 20 "$f" >&2
      done
      exit 1
    fi
  done
done
