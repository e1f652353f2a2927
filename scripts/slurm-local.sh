#!/usr/bin/env bash
# A real single-node SLURM cluster with accounting on this machine, for tests and laptop studies.
#
# Why: `ablate sweep --launcher slurm` talks to SLURM through submitit, which polls `sacct`; a cluster without
# slurmdbd never reports a job's end.  This script installs Debian's packages (service auto-start blocked),
# writes a config for one node on 127.0.0.1, and starts the daemons in order:
#   munged -> mariadbd (own datadir, private port) -> slurmdbd -> slurmctld -> slurmd, then waits for `idle`.
# Everything but the config files the clients read (/etc/slurm/*.conf) lives under one state dir.
#
# usage: scripts/slurm-local.sh up|down|status        (as root; idempotent)
# env:   ABLATE_SLURM_DIR   state dir            (default /var/tmp/ablate-slurm; must not be under /root)
#        ABLATE_SLURM_CPUS  CPUs the node claims (default 8: overcommits small CPUs for throughput)
#        ABLATE_SLURM_DB_PORT private MariaDB port (default 33061)
set -euo pipefail

STATE=${ABLATE_SLURM_DIR:-/var/tmp/ablate-slurm}
CPUS=${ABLATE_SLURM_CPUS:-8}
DB_PORT=${ABLATE_SLURM_DB_PORT:-33061}
DBD_PORT=6819
DB_PASS=ablate-slurm-local
NODE=$(hostname -s)
PACKAGES=(munge mariadb-server slurmdbd slurmctld slurmd slurm-client)
SLURM_ETC=/etc/slurm
COMMON_CONF="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/slurm-common.conf"  # shared with the two-node test

log() { echo "slurm-local: $*"; }
die() { echo "slurm-local: error: $*" >&2; exit 1; }

alive() {  # alive PIDFILE -> 0 when the process named in PIDFILE runs
  [[ -s $1 ]] && kill -0 "$(cat "$1")" 2>/dev/null
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local limit=$1 what=$2; shift 2
  local deadline=$((SECONDS + limit))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "timed out after ${limit}s waiting for $what (logs: $STATE/log)"
    sleep 0.2
  done
}

install_packages() {
  local missing=()
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  ((${#missing[@]} == 0)) && return
  command -v apt-get >/dev/null || die "apt-get not found; install ${missing[*]} by hand"
  log "installing ${missing[*]}"
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy" && chmod +x "$policy" && created_policy=1
  fi
  local apt=(apt-get -o DPkg::Lock::Timeout=600 -q -y)
  DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${missing[@]}" >"$STATE/log/apt.log" 2>&1 \
    || { DEBIAN_FRONTEND=noninteractive "${apt[@]}" update >>"$STATE/log/apt.log" 2>&1 &&
         DEBIAN_FRONTEND=noninteractive "${apt[@]}" install --no-install-recommends "${missing[@]}" \
           >>"$STATE/log/apt.log" 2>&1; } \
    || { ((created_policy)) && rm -f "$policy"; die "apt-get install failed; see $STATE/log/apt.log"; }
  ((created_policy)) && rm -f "$policy"
  return 0
}

write_if_changed() {  # write_if_changed PATH MODE OWNER  (content on stdin) -> sets CHANGED=1 on change
  local tmp; tmp=$(mktemp)
  cat >"$tmp"
  if [[ -f $1 ]] && cmp -s "$tmp" "$1"; then rm -f "$tmp"; return; fi
  install -m "$2" -o "$3" -g "$3" "$tmp" "$1"; rm -f "$tmp"; CHANGED=1
}

write_configs() {
  local mem_mib; mem_mib=$(awk '/MemTotal/ {printf "%d", $2 / 1024 * 0.9}' /proc/meminfo)
  mkdir -p "$SLURM_ETC"
  CHANGED=0
  write_if_changed "$SLURM_ETC/slurm.conf" 0644 root <<EOF
# written by ablate scripts/slurm-local.sh; state in $STATE
ClusterName=localci
SlurmctldHost=$NODE(127.0.0.1)
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$CPUS Sockets=1 CoresPerSocket=$CPUS ThreadsPerCore=1 RealMemory=$mem_mib State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
SlurmUser=slurm
SlurmdUser=root
$(cat "$COMMON_CONF")
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/run/slurmctld.pid
SlurmdPidFile=$STATE/run/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
MaxArraySize=10001
MaxJobCount=20000
EOF
  write_if_changed "$SLURM_ETC/slurmdbd.conf" 0600 slurm <<EOF
# written by ablate scripts/slurm-local.sh
AuthType=auth/munge
DbdAddr=127.0.0.1
DbdHost=localhost
DbdPort=$DBD_PORT
SlurmUser=slurm
PidFile=$STATE/run/slurmdbd.pid
LogFile=$STATE/log/slurmdbd.log
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=$DB_PASS
StorageLoc=slurm_acct_db
EOF
  CONFIG_CHANGED=$CHANGED
}

start_munge() {
  alive "$STATE/run/munged.pid" && return
  mkdir -p /run/munge && chown munge:munge /run/munge && chmod 0755 /run/munge
  [[ -s /etc/munge/munge.key ]] || { mungekey --create --keyfile=/etc/munge/munge.key && chown munge:munge /etc/munge/munge.key; }
  runuser -u munge -- /usr/sbin/munged --pid-file="$STATE/run/munged.pid" --log-file="$STATE/munge/munged.log" \
    --seed-file="$STATE/munge/munged.seed"
  wait_for 20 munged munge -n
}

db() { mariadb --socket="$STATE/run/mariadb.sock" -u root "$@"; }

start_mariadb() {
  alive "$STATE/run/mariadb.pid" && return
  if [[ ! -d $STATE/mysql/mysql ]]; then
    mariadb-install-db --user=mysql --datadir="$STATE/mysql" --auth-root-authentication-method=socket \
      --skip-test-db >"$STATE/log/mariadb-install.log" 2>&1 || die "mariadb-install-db failed; see $STATE/log/mariadb-install.log"
  fi
  nohup /usr/sbin/mariadbd --no-defaults --user=mysql --datadir="$STATE/mysql" --bind-address=127.0.0.1 \
    --port="$DB_PORT" --socket="$STATE/run/mariadb.sock" --pid-file="$STATE/run/mariadb.pid" --skip-name-resolve \
    --log-error="$STATE/mysql/error.log" --innodb-buffer-pool-size=64M >/dev/null 2>&1 &
  wait_for 60 mariadbd db -e "SELECT 1"
  db -e "CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DB_PASS';
         CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY '$DB_PASS';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
         FLUSH PRIVILEGES;"
}

start_daemon() {  # start_daemon NAME [ARGS...]: a slurm daemon that forks and writes its own PID file
  local name=$1; shift
  alive "$STATE/run/$name.pid" && return
  "/usr/sbin/$name" "$@" || die "$name failed to start; see $STATE/log/$name.log"
  wait_for 30 "$name PID file" alive "$STATE/run/$name.pid"
}

node_idle() { sinfo -h -n "$NODE" -o '%t' | grep -qE '^(idle|mix|alloc)'; }

stop_pidfile() {  # stop_pidfile NAME: SIGTERM the PID in its file, wait, then SIGKILL
  local f=$STATE/run/$1.pid
  alive "$f" || { rm -f "$f"; return; }
  local pid; pid=$(cat "$f")
  kill "$pid"
  for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && { log "$1 ($pid) ignored SIGTERM; killing"; kill -9 "$pid"; }
  rm -f "$f"
  log "stopped $1"
}

cmd_up() {
  [[ $(id -u) == 0 ]] || die "must run as root (starts daemons and writes /etc/slurm)"
  [[ $STATE == /root* ]] && die "ABLATE_SLURM_DIR=$STATE is under /root; the slurm and mysql users cannot reach it"
  mkdir -p "$STATE"/{log,run,ctld,spool,munge} && chmod 0755 "$STATE" "$STATE/run" "$STATE/log"
  install_packages
  chown slurm:slurm "$STATE/ctld" "$STATE/log" && chown munge:munge "$STATE/munge"
  chmod 1777 "$STATE/run"  # munge, mysql and slurm each write their PID file here
  mkdir -p "$STATE/mysql" && chown mysql:mysql "$STATE/mysql"
  write_configs
  if ((CONFIG_CHANGED)) && { alive "$STATE/run/slurmctld.pid" || alive "$STATE/run/slurmdbd.pid"; }; then
    log "config changed; restarting slurm daemons"
    for d in slurmd slurmctld slurmdbd; do stop_pidfile "$d"; done
  fi
  start_munge
  start_mariadb
  start_daemon slurmdbd
  wait_for 30 "slurmdbd on port $DBD_PORT" bash -c "echo >/dev/tcp/127.0.0.1/$DBD_PORT"
  start_daemon slurmctld
  start_daemon slurmd
  wait_for 60 "node $NODE idle in sinfo" node_idle
  wait_for 30 "sacct (accounting)" sacct -n -X -S now
  log "up: node $NODE, $CPUS CPUs, state in $STATE"
}

cmd_down() {
  for d in slurmd slurmctld slurmdbd mariadb munged; do stop_pidfile "$d"; done
  log "down"
}

cmd_status() {
  local rc=0
  for d in munged mariadb slurmdbd slurmctld slurmd; do
    if alive "$STATE/run/$d.pid"; then echo "$d: running (pid $(cat "$STATE/run/$d.pid"))"
    else echo "$d: stopped"; rc=1; fi
  done
  ((rc == 0)) && sinfo
  return $rc
}

case ${1:-} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 2 ;;
esac
