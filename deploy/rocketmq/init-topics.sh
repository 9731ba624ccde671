#!/usr/bin/env bash
# One-shot topic creation for docker-compose.yml (service topic-init), run in the
# apache/rocketmq image. Waits until the broker has registered with the name
# server, then creates every topic with its queue count (docs/design.md).
set -euo pipefail
ns="${NAMESRV_ADDR:?NAMESRV_ADDR not set}"
cluster="${CLUSTER:-DefaultCluster}"
mqadmin="${ROCKETMQ_HOME:-/home/rocketmq/rocketmq-4.9.4}/bin/mqadmin"

for i in $(seq 60); do
  if sh "$mqadmin" clusterList -n "$ns" 2>/dev/null | grep -q "$cluster"; then
    break
  fi
  if [ "$i" = 60 ]; then
    echo "topic-init: no broker of $cluster registered at $ns after 120 s" >&2
    exit 1
  fi
  sleep 2
done

# topic:queues. ORDER is partially ordered by order_id (4 queues); STOCK_LEDGER
# has one queue so the ledger is globally ordered; SOLDOUT is broadcast.
for spec in ORDER:4 SOLDOUT:1 STOCK_LEDGER:1 ORDER_STATS:4; do
  topic="${spec%%:*}" queues="${spec##*:}"
  sh "$mqadmin" updateTopic -n "$ns" -c "$cluster" -t "$topic" -r "$queues" -w "$queues"
  echo "topic-init: $topic with $queues queues"
done
