# Sourced by deploy/run.sh and deploy/with-deps.sh, after deploy/procs.sh:
# MariaDB and Redis at the configured addresses.
#
# What already answers at an address is used as it is. Otherwise a private
# instance is started on that address (it must be on this machine), with
# its config file, data and log under <dep_dir>/mariadb or <dep_dir>/redis,
# tracked as layer "dep" (stopped last). No system service is touched: the
# packages installed for a missing binary are the ones without a service
# (mariadb-server-core instead of mariadb-server, redis-tools instead of
# redis-server), and only when the user is root or can sudo; otherwise the
# one command to run is printed and the script stops.
#
# The caller sets dep_dir (and what procs.sh needs).

# loopback HOST: HOST is this machine (a private instance can listen there).
loopback() { [[ $1 == localhost || $1 == 127.* ]]; }

# find_bin NAME: the path of NAME, also in the sbin directories a non-root
# PATH leaves out (mariadbd is in /usr/sbin).
find_bin() {
  local d
  command -v "$1" 2>/dev/null && return 0
  for d in /usr/sbin /usr/local/sbin /sbin; do
    [[ -x $d/$1 ]] && { printf '%s\n' "$d/$1"; return 0; }
  done
  return 1
}

# install_pkgs WHAT PKG...: apt-get install as root, or through sudo when
# it is allowed without a password or can ask on this terminal; otherwise
# print the command and stop.
install_pkgs() {
  local what=$1
  shift
  local cmd="apt-get install -y --no-install-recommends $*"
  command -v apt-get >/dev/null 2>&1 ||
    die "$what is not installed, and this is not a Debian/Ubuntu machine: install $* with its package manager, then run this again."
  local sudo=()
  if [[ $(id -u) != 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && { sudo -n true 2>/dev/null || [[ -t 0 ]]; }; then
      sudo=(sudo)
    else
      die "$what is not installed. Install it, then run this again:
  sudo apt-get update && sudo $cmd"
    fi
  fi
  say "$what is not installed: ${sudo[*]:+sudo }apt-get update && ${sudo[*]:+sudo }$cmd"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q ||
    die "apt-get update failed"
  # shellcheck disable=SC2086
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive $cmd || die "apt-get install $* failed"
}

# wait_up NAME CHECK LOG: wait up to 60 s until CHECK (a command) succeeds,
# while the process NAME runs; show the end of LOG and stop if it exits.
wait_up() {
  local name=$1 check=$2 log=$3 _
  for _ in $(seq 300); do
    $check && return 0
    proc_pid "$name" >/dev/null || {
      tail -n 20 "$log" >&2
      die "$name exited during its start; log: $log"
    }
    sleep 0.2
  done
  die "$name did not answer within 60 s; log: $log"
}

# ensure_mariadb ADDR: MariaDB answers at ADDR as root without a password.
ensure_mariadb() {
  local addr=$1 host=${1%:*} port=${1##*:}
  if reachable "$addr"; then
    if command -v mariadb >/dev/null 2>&1 && ! mariadb -uroot -h"$host" -P"$port" -e 'select 1' >/dev/null 2>&1; then
      die "something answers at $addr but MariaDB does not let root in without a password there.
  Set MYSQL_ADDR to a free port (a private MariaDB is started there), or give root a password-less login."
    fi
    say "MariaDB: using the one at $addr"
    return 0
  fi
  loopback "$host" || die "MariaDB is not reachable at $addr (not this machine: start it there, or point MYSQL_ADDR at 127.0.0.1:<port>)."
  local mariadbd install_db
  say "MariaDB: nothing answers at $addr"
  if ! mariadbd=$(find_bin mariadbd) || ! install_db=$(find_bin mariadb-install-db) || ! find_bin my_print_defaults >/dev/null; then
    install_pkgs MariaDB mariadb-server-core mariadb-client-core
    mariadbd=$(find_bin mariadbd) && install_db=$(find_bin mariadb-install-db) ||
      die "no mariadbd/mariadb-install-db after installing mariadb-server-core"
  fi
  local dir=$dep_dir/mariadb
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  local sock=$dir/mariadbd.sock
  ((${#sock} <= 100)) || sock=${TMPDIR:-/tmp}/seckill-mariadbd-$port.sock # sun_path holds 108 bytes
  [[ $host == localhost ]] && host=127.0.0.1
  {
    echo "# Private MariaDB of make run / make test; deploy/deps.sh writes it at each start."
    echo "[mariadbd]"
    [[ $(id -u) == 0 ]] && echo "user=root" # mariadbd refuses to run as root without it
    echo "datadir=$dir/data"
    echo "bind-address=$host"
    echo "port=$port"
    echo "socket=$sock"
    echo "pid-file=$dir/mariadbd.pid"
    echo "log-error=$dir/mariadbd.err"
    echo "innodb_buffer_pool_size=128M"
    echo "max_connections=300"
  } >"$dir/my.cnf"
  if [[ ! -d $dir/data/mysql ]]; then
    say "MariaDB: creating a private data directory: $install_db --defaults-file=$dir/my.cnf"
    # normal: root logs in without a password (also over TCP), as the services' DSNs expect.
    "$install_db" --defaults-file="$dir/my.cnf" --auth-root-authentication-method=normal \
      --skip-test-db >"$dir/install.log" 2>&1 || {
      tail -n 20 "$dir/install.log" >&2
      die "mariadb-install-db failed; log: $dir/install.log"
    }
  fi
  say "MariaDB: starting a private one (config $dir/my.cnf, log $dir/mariadbd.err)"
  start_proc dep mariadb "$dir/mariadbd.out" "$mariadbd" --defaults-file="$dir/my.cnf"
  wait_up mariadb "reachable $addr" "$dir/mariadbd.err"
  say "MariaDB: up at $addr (pid $(proc_pid mariadb))"
}

# redis_pong ADDR: Redis answers PING at ADDR.
redis_pong() {
  local host=${1%:*} p=${1##*:}
  timeout 2 bash -c "exec 3<>/dev/tcp/$host/$p && printf 'PING\r\n' >&3 && read -r line <&3 && [[ \$line == +PONG* ]]" 2>/dev/null
}

# ensure_redis ADDR: Redis answers at ADDR.
ensure_redis() {
  local addr=$1 host=${1%:*} port=${1##*:}
  if reachable "$addr"; then
    redis_pong "$addr" || die "something answers at $addr but not Redis PING (a password?). Set REDIS_ADDR to a free port: a private Redis is started there."
    say "Redis: using the one at $addr"
    return 0
  fi
  loopback "$host" || die "Redis is not reachable at $addr (not this machine: start it there, or point REDIS_ADDR at 127.0.0.1:<port>)."
  # redis-tools ships the server binary as redis-check-rdb (redis-server is
  # a link to it in the redis-server package, which also starts a system
  # service); the binary runs as the server when its name is redis-server.
  local server
  if ! server=$(find_bin redis-server) && ! server=$(find_bin redis-check-rdb); then
    install_pkgs Redis redis-tools
    server=$(find_bin redis-check-rdb) || die "no redis-check-rdb after installing redis-tools"
  fi
  local dir=$dep_dir/redis
  mkdir -p "$dir"
  dir=$(cd "$dir" && pwd)
  ln -sfn "$server" "$dir/redis-server"
  [[ $host == localhost ]] && host=127.0.0.1
  # appendonly: the order outbox must survive a restart (docs/design.md).
  cat >"$dir/redis.conf" <<EOF
# Private Redis of make run / make test; deploy/deps.sh writes it at each start.
bind $host
port $port
dir $dir
appendonly yes
appendfsync everysec
save ""
daemonize no
EOF
  say "Redis: nothing answers at $addr; starting a private one (config $dir/redis.conf, log $dir/redis.log)"
  start_proc dep redis "$dir/redis.log" "$dir/redis-server" "$dir/redis.conf"
  wait_up redis "redis_pong $addr" "$dir/redis.log"
  say "Redis: up at $addr (pid $(proc_pid redis), appendonly)"
}
