#!/usr/bin/env bash
# Starts the name server or the broker of the apache/rocketmq image (services
# namesrv and broker of docker-compose.yml) so that the JVM gets the
# container's SIGTERM (docker compose stop/down/restart) and shuts down
# cleanly: the broker flushes its store and writes its consumer and delay
# offsets.
#
# The image's mqnamesrv/mqbroker run runserver.sh/runbroker.sh in a child
# shell, which runs java as its own child. The container's SIGTERM reaches
# only the first shell: as PID 1 it ignores it and Docker SIGKILLs everything
# after the grace period; under an init it dies, the init exits, and java is
# SIGKILLed all the same. Here the image's own start script runs with `exec` in
# front of its java command, so java replaces the shell and is the only child
# of the container's init (compose `init: true`), which passes SIGTERM on.
#
# usage: start.sh namesrv|broker [args of NamesrvStartup/BrokerStartup...]
set -euo pipefail

case "${1:-}" in
  namesrv) script=runserver.sh main=org.apache.rocketmq.namesrv.NamesrvStartup ;;
  broker) script=runbroker.sh main=org.apache.rocketmq.broker.BrokerStartup ;;
  *) echo "usage: $0 namesrv|broker [args...]" >&2; exit 2 ;;
esac
shift
path="${ROCKETMQ_HOME:?ROCKETMQ_HOME is not set}/bin/$script"
export ROCKETMQ_HOME

# The launch lines are `$JAVA ${JAVA_OPT} $@`, behind numactl where the script
# uses it (not `numactl ... pwd`, its probe).
launch='((numactl[^$]*)?\$JAVA \$\{JAVA_OPT\} "?\$@"?)[[:space:]]*$'
text=$(sed -E "s/^([[:space:]]*)$launch/\\1exec \\2/" "$path")
if ! grep -Eq "^[[:space:]]*exec $launch" <<<"$text"; then
  echo "start.sh: no java launch line in $path; running it as the image does (java will not get SIGTERM)" >&2
  exec bash "$path" "$main" "$@"
fi
# $0 of the script stays its own path: it finds conf/ and lib/ from there.
exec bash -c "$text" "$path" "$main" "$@"
