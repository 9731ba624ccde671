#!/usr/bin/env bash
# Runs the whole flash-sale system on this machine (what `make run` calls after
# `make build`): the embedded RocketMQ-compatible broker (or the real RocketMQ
# named by ROCKETMQ_NAMESRV) and the four services against the local MariaDB and
# Redis. Same env names and config files (deploy/config) as docker-compose.yml.
# Ctrl-C (or SIGTERM) stops the services first, then the broker.
#
# Settings (environment): ROCKETMQ_NAMESRV (use a real RocketMQ, ip:port[;ip:port]),
# ADMIN_TOKEN (generated if unset), CONSUME_RATE (200), PAY_TIMEOUT_LEVEL (5 = 1m),
# ORDER_SEND_MODE (outbox), MYSQL_ADDR (127.0.0.1:3306, user root, no password),
# REDIS_ADDR (127.0.0.1:6379), DELAY_SCALE (embedded broker only; 1 = real time).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$(pwd)
bin="$root/bin"
run_dir="$root/.run"
log_dir="$run_dir/logs"

services=(order payment inventory logistics) # start order; ports 8080..8083
declare -A port=([order]=8080 [payment]=8081 [inventory]=8082 [logistics]=8083)

mysql_addr="${MYSQL_ADDR:-127.0.0.1:3306}"
redis_addr="${REDIS_ADDR:-127.0.0.1:6379}"
embedded_namesrv=127.0.0.1:9876
embedded_broker=127.0.0.1:10911

say() { printf '%s\n' "$*"; }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

# reachable HOST:PORT: a TCP connect within 2 s.
reachable() {
  local host=${1%:*} p=${1##*:}
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$p" 2>/dev/null
}

namesrv="${ROCKETMQ_NAMESRV:-$embedded_namesrv}"

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
    "HTTP_ADDR=127.0.0.1:${port[$s]}" \
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

# -print-env SVC: print the service's environment and exit (e2e/compose_test.go
# compares it with docker-compose.yml and runs the service's -check-config on it).
if [[ ${1:-} == -print-env ]]; then
  [[ -n ${2:-} && -n ${port[${2}]:-} ]] || die "usage: run.sh [-print-env order|payment|inventory|logistics]"
  service_env "$2"
  exit 0
fi

for b in testbroker "${services[@]}"; do
  [[ -x "$bin/$b" ]] || die "$bin/$b is missing: run \`make build\` first (or just \`make run\`)."
done

# --- dependencies -----------------------------------------------------------
if command -v mariadb >/dev/null 2>&1; then
  if ! mariadb -uroot -h"${mysql_addr%:*}" -P"${mysql_addr##*:}" -e 'select 1' >/dev/null 2>&1; then
    die "MariaDB is not reachable as root (no password) at $mysql_addr.
  Start it:   sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  Not installed?  sudo apt-get install -y mariadb-server mariadb-client"
  fi
elif ! reachable "$mysql_addr"; then
  die "MariaDB is not reachable at $mysql_addr.
  Install and start it:  sudo apt-get install -y mariadb-server mariadb-client && sudo start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd"
fi
if ! reachable "$redis_addr"; then
  die "Redis is not reachable at $redis_addr.
  Start it:   sudo redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --appendonly yes --dir /var/lib/redis
  Not installed?  sudo apt-get install -y redis-server"
fi

for s in "${services[@]}"; do
  if reachable "127.0.0.1:${port[$s]}"; then
    die "port ${port[$s]} ($s-service) is already in use: stop whatever listens there (another make run?)."
  fi
done

mkdir -p "$log_dir"
: >"$log_dir/testbroker.log"

pids=()         # service pids, in start order
declare -A pid_of=()
broker_pid=""

# --- shutdown: services first (they flush consumers/producers), then the broker
stop_pid() { # stop_pid PID NAME: SIGTERM, wait up to 20 s, then SIGKILL
  local pid=$1 name=$2
  kill -0 "$pid" 2>/dev/null || return 0
  kill -TERM "$pid" 2>/dev/null || true
  for _ in $(seq 200); do
    kill -0 "$pid" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$pid" 2>/dev/null; then
    say "  $name did not stop within 20 s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  wait "$pid" 2>/dev/null || true
}

cleanup() {
  local code=${1:-0}
  trap - INT TERM EXIT
  if [[ ${#pids[@]} == 0 && -z "$broker_pid" ]]; then exit "$code"; fi
  say ""
  say "stopping services..."
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for s in "${services[@]}"; do
    [[ -n "${pid_of[$s]:-}" ]] && stop_pid "${pid_of[$s]}" "$s"
  done
  if [[ -n "$broker_pid" ]]; then
    say "stopping the embedded broker..."
    stop_pid "$broker_pid" testbroker
  fi
  say "stopped."
  exit "$code"
}
trap 'cleanup 0' INT TERM
trap 'cleanup $?' EXIT

# --- broker -------------------------------------------------------------------
if [[ -n "${ROCKETMQ_NAMESRV:-}" ]]; then
  IFS=';' read -ra addrs <<<"$namesrv"
  for a in "${addrs[@]}"; do
    reachable "$a" || die "ROCKETMQ_NAMESRV=$namesrv: name server $a is not reachable (it must be ip:port; client-go rejects hostnames)."
  done
  say "using RocketMQ at $namesrv (ROCKETMQ_NAMESRV)"
else
  for a in "$embedded_namesrv" "$embedded_broker"; do
    reachable "$a" && die "$a is already in use: stop the other broker, or set ROCKETMQ_NAMESRV to use it."
  done
  # setsid: the children get no terminal signals; Ctrl-C reaches only this
  # script, which then stops them in order (services first, broker last).
  # -topics: the same topics and queue counts as deploy/rocketmq/init-topics.sh.
  # -data-dir: messages and offsets survive a restart, like a real broker's
  # store (a pending pay timeout still fires after the next make run).
  setsid "$bin/testbroker" -namesrv "$embedded_namesrv" -broker "$embedded_broker" \
    -topics ORDER:4,SOLDOUT:1,STOCK_LEDGER:1,ORDER_STATS:4 \
    -data-dir "$run_dir/broker" -delay-scale "${DELAY_SCALE:-1}" >>"$log_dir/testbroker.log" 2>&1 &
  broker_pid=$!
  for _ in $(seq 100); do
    reachable "$embedded_namesrv" && reachable "$embedded_broker" && break
    kill -0 "$broker_pid" 2>/dev/null || { tail -n 20 "$log_dir/testbroker.log" >&2; die "the embedded broker exited; log: $log_dir/testbroker.log"; }
    sleep 0.2
  done
  reachable "$embedded_namesrv" || die "the embedded broker did not listen on $embedded_namesrv within 20 s; log: $log_dir/testbroker.log"
  say "embedded broker: name server $embedded_namesrv, broker $embedded_broker (log $log_dir/testbroker.log)"
fi

# --- services -------------------------------------------------------------------
for s in "${services[@]}"; do
  : >"$log_dir/$s.log"
  mapfile -t envs < <(service_env "$s")
  setsid env "${envs[@]}" "$bin/$s" >>"$log_dir/$s.log" 2>&1 &
  pid_of[$s]=$!
  pids+=("$!")
done

for s in "${services[@]}"; do
  url="http://127.0.0.1:${port[$s]}/healthz"
  for i in $(seq 600); do
    curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null && break
    if ! kill -0 "${pid_of[$s]}" 2>/dev/null; then
      say "$s-service exited during start; last lines of $log_dir/$s.log:" >&2
      tail -n 20 "$log_dir/$s.log" >&2
      exit 1
    fi
    [[ $i == 600 ]] && { say "$s-service is not healthy after 60 s; see $log_dir/$s.log" >&2; exit 1; }
    sleep 0.1
  done
done

cat <<EOF

The flash-sale system is up.
  order-service      http://127.0.0.1:8080   log $log_dir/order.log
  payment-service    http://127.0.0.1:8081   log $log_dir/payment.log
  inventory-service  http://127.0.0.1:8082   log $log_dir/inventory.log
  logistics-service  http://127.0.0.1:8083   log $log_dir/logistics.log
  broker             ${namesrv}$([[ -n $broker_pid ]] && printf '   log %s' "$log_dir/testbroker.log")
  every service also serves /healthz and /metrics (Prometheus)

ADMIN_TOKEN=$ADMIN_TOKEN$token_generated

Try it (in another terminal):
  export ADMIN_TOKEN=$ADMIN_TOKEN
  # 1. create (or reset) a sale: 100 units, 1 per user
  curl -s -X PUT http://127.0.0.1:8082/api/v1/products/p1 -H "Authorization: Bearer \$ADMIN_TOKEN" \\
       -H 'Content-Type: application/json' -d '{"name":"phone","price_cents":99900,"stock":100,"per_user_limit":1}'
  # 2. order one (202 pending; the same Idempotency-Key returns the same order)
  ORDER_ID=\$(curl -s -X POST http://127.0.0.1:8080/api/v1/orders -H 'Idempotency-Key: try-1' \\
       -H 'Content-Type: application/json' -d '{"user_id":"u1","product_id":"p1","quantity":1}' | jq -r .order_id); echo \$ORDER_ID
  # 3. look at it (pending -> created once GID-order persisted it)
  curl -s http://127.0.0.1:8080/api/v1/orders/\$ORDER_ID
  # 4. pay it within the pay timeout (404 for a moment until the payment exists; unpaid orders close)
  curl -s -X POST http://127.0.0.1:8081/api/v1/payments/\$ORDER_ID
  # 5. the shipment, the order (shipped) and the stock
  curl -s http://127.0.0.1:8083/api/v1/shipments/\$ORDER_ID
  curl -s http://127.0.0.1:8080/api/v1/orders/\$ORDER_ID
  curl -s http://127.0.0.1:8082/api/v1/products/p1
  # everything that happened to it, in every service
  jq -c --arg id "\$ORDER_ID" 'select(.order_id==\$id or .keys==\$id) | {time,service,msg,group,tag,status}' $log_dir/*.log | sort

Ctrl-C stops everything.
EOF

# Wait until Ctrl-C/SIGTERM (trap) or until a service exits on its own.
while true; do
  wait -n || true
  for s in "${services[@]}"; do
    if ! kill -0 "${pid_of[$s]}" 2>/dev/null; then
      say "$s-service exited on its own; last lines of $log_dir/$s.log:" >&2
      tail -n 20 "$log_dir/$s.log" >&2
      exit 1
    fi
  done
  if [[ -n "$broker_pid" ]] && ! kill -0 "$broker_pid" 2>/dev/null; then
    say "the embedded broker exited on its own; see $log_dir/testbroker.log" >&2
    exit 1
  fi
done
