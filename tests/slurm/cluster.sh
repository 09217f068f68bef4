#!/usr/bin/env bash
# A one-node SLURM cluster with accounting on localhost, for testing the workflow's
# SLURM path with real sbatch / sacct / scancel (tests/test_slurm.py).
#
#   bash tests/slurm/cluster.sh start    # install (apt) if needed, configure, start, wait for an idle node
#   bash tests/slurm/cluster.sh stop     # stop the daemons this script started, and only those
#
# What it does, in the way the SLURM executor plugin's own CI does it (no systemd needed):
# installs Debian's slurm-wlm, slurmdbd, munge and mariadb-server; writes /etc/slurm/slurm.conf
# and slurmdbd.conf (the default path: the executor plugin's job step drops SLURM_CONF from
# the environment of its inner srun, so a private path does not reach it); starts munged
# (unless one already answers), a private mariadbd (own data folder, TCP port on 127.0.0.1),
# slurmdbd, slurmctld and slurmd, each in the foreground under setsid with its PID recorded;
# registers the cluster, an account and the current user; waits until `sinfo` shows the node
# idle. Every daemon runs as root: this is a throwaway test cluster, not a site setup.
#
# Exit status: 0 ready (or stopped), 77 cannot run here (not root, the packages are missing
# and apt-get is not available, or /etc/slurm/slurm.conf belongs to another cluster): a test
# treats 77 as a skip (outside CI; under CI=true as a failure). Anything else: a failure,
# with the daemon logs under $TR_SLURM_DIR/log named in the message. A start that fails
# partway (or is interrupted) tears down what it has set up, as `stop` does: every daemon
# whose PID it recorded and its own config files; nothing of its own is left running.
#
# Settings (environment): TR_SLURM_DIR (default /tmp/transient-ridge-slurm), TR_SLURM_CPUS
# (CPUs the node offers, default nproc), TR_SLURM_DB_PORT (default 3366), TR_SLURM_PORTS
# (slurmctld, slurmd, slurmdbd ports, default "6817 6818 6819"), TR_SLURM_FAIL_AFTER (one of
# munged, mariadbd, slurmdbd, slurmctld, slurmd: fail on purpose once that daemon is up, to
# test the teardown).
set -euo pipefail

DIR=${TR_SLURM_DIR:-/tmp/transient-ridge-slurm}
CLUSTER=trtest
ACCOUNT=transient
PARTITION=debug
NODE=trnode
CPUS=${TR_SLURM_CPUS:-$(nproc)}
DB_PORT=${TR_SLURM_DB_PORT:-3366}
read -r CTLD_PORT SLURMD_PORT DBD_PORT <<<"${TR_SLURM_PORTS:-6817 6818 6819}"
FAIL_AFTER=${TR_SLURM_FAIL_AFTER:-}
PACKAGES=(slurm-wlm slurmdbd munge mariadb-server)
PROGRAMS=(slurmctld slurmd slurmdbd munged mariadbd sbatch sacct sacctmgr)

CONF_DIR=/etc/slurm
MARKER="# written by tests/slurm/cluster.sh"
unset SLURM_CONF

skip() { echo "skip: $*" >&2; exit 77; }
fail() { echo "error: $* (daemon logs: $DIR/log/)" >&2; exit 1; }
say() { echo "[slurm-cluster] $*" >&2; }

have_programs() {
  local program
  for program in "${PROGRAMS[@]}"; do
    command -v "$program" >/dev/null 2>&1 || [[ -x /usr/sbin/$program ]] || return 1
  done
}

install_packages() {
  have_programs && return 0
  command -v apt-get >/dev/null 2>&1 || skip "SLURM is not installed and apt-get is not available (needs: ${PACKAGES[*]})"
  say "installing ${PACKAGES[*]} with apt-get"
  export DEBIAN_FRONTEND=noninteractive
  # postinst scripts must not start services (there is no init system to hand them to)
  local policy=/usr/sbin/policy-rc.d created_policy=0
  if [[ ! -e $policy ]]; then printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod +x "$policy"; created_policy=1; fi
  apt-get install -y --no-install-recommends "${PACKAGES[@]}" >"$DIR/log/apt.log" 2>&1 \
    || { apt-get update >>"$DIR/log/apt.log" 2>&1 && apt-get install -y --no-install-recommends "${PACKAGES[@]}" >>"$DIR/log/apt.log" 2>&1; } \
    || { [[ $created_policy == 1 ]] && rm -f "$policy"; fail "apt-get install ${PACKAGES[*]} failed; see $DIR/log/apt.log"; }
  [[ $created_policy == 1 ]] && rm -f "$policy"
  have_programs || fail "after apt-get install, one of ${PROGRAMS[*]} is still missing"
}

# ---- processes: started in the foreground under setsid, PIDs recorded in $DIR/pids --------

alive() { [[ -n ${1:-} ]] && kill -0 "$1" 2>/dev/null; }

recorded_pid() { [[ -f $DIR/pids/$1 ]] && cat "$DIR/pids/$1" || true; }

launch() {  # launch NAME COMMAND...: start unless our recorded one still runs
  local name=$1; shift
  local pid; pid=$(recorded_pid "$name")
  if alive "$pid"; then say "$name already running (pid $pid)"; return 0; fi
  setsid "$@" >>"$DIR/log/$name.out" 2>&1 </dev/null &
  echo $! >"$DIR/pids/$name"
  say "started $name (pid $!)"
}

wait_for() {  # wait_for SECONDS DESCRIPTION COMMAND...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    ((SECONDS < deadline)) || fail "$what did not come up within ${seconds} s"
    sleep 0.5
  done
}

# ---- configuration ----------------------------------------------------------------------

write_configs() {
  local memory_mb; memory_mb=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  local host; host=$(hostname -s)
  local name
  for name in slurm.conf slurmdbd.conf; do
    if [[ -e $CONF_DIR/$name ]] && ! grep -qxF "$MARKER" "$CONF_DIR/$name"; then
      skip "$CONF_DIR/$name exists and was not written by this script: this machine belongs to another SLURM cluster"
    fi
  done
  mkdir -p "$CONF_DIR"
  cat >"$CONF_DIR/slurm.conf" <<EOF
$MARKER
# a one-node test cluster on localhost; state and logs under $DIR
ClusterName=$CLUSTER
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$CTLD_PORT
SlurmdPort=$SLURMD_PORT
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
SlurmdParameters=config_overrides
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool/%n
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=127.0.0.1
AccountingStoragePort=$DBD_PORT
AccountingStorageEnforce=associations
JobCompType=jobcomp/none
AccountingStoreFlags=job_comment
MinJobAge=300
KillWait=5
SchedulerParameters=sched_interval=2
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$memory_mb State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  cat >"$CONF_DIR/slurmdbd.conf" <<EOF
$MARKER
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=$DBD_PORT
SlurmUser=root
LogFile=$DIR/log/slurmdbd.log
PidFile=$DIR/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=$DB_PORT
StorageUser=slurm
StoragePass=slurm-test
StorageLoc=slurm_acct_db
EOF
  chmod 600 "$CONF_DIR/slurmdbd.conf"
}

# ---- daemons ------------------------------------------------------------------------------

munge_works() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>/dev/null; }

start_munge() {
  if munge_works && ! alive "$(recorded_pid munged)"; then say "using the munged that already runs"; return 0; fi
  install -d -o munge -g munge -m 0755 /run/munge
  install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
  [[ -s /etc/munge/munge.key ]] || fail "/etc/munge/munge.key is missing; create it with mungekey --create"
  launch munged runuser -u munge -- munged --foreground
  wait_for 20 munged munge_works
}

db() { mariadb --protocol=socket --socket="$DIR/run/mysqld.sock" -u root "$@"; }

start_mariadb() {
  if [[ ! -d $DIR/mysql/mysql ]]; then
    mariadb-install-db --user=root --datadir="$DIR/mysql" --auth-root-authentication-method=socket \
      --skip-test-db >"$DIR/log/mariadb-install.log" 2>&1 || fail "mariadb-install-db failed"
  fi
  launch mariadbd mariadbd --no-defaults --user=root --datadir="$DIR/mysql" --socket="$DIR/run/mysqld.sock" \
    --pid-file="$DIR/run/mariadbd.pid" --port="$DB_PORT" --bind-address=127.0.0.1 \
    --log-error="$DIR/log/mariadbd.log" --innodb-buffer-pool-size=64M --innodb-lock-wait-timeout=900
  wait_for 60 mariadbd db -e "SELECT 1"
  db -e "CREATE DATABASE IF NOT EXISTS slurm_acct_db;
         CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY 'slurm-test';
         CREATE USER IF NOT EXISTS 'slurm'@'localhost' IDENTIFIED BY 'slurm-test';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1';
         GRANT ALL ON slurm_acct_db.* TO 'slurm'@'localhost';
         FLUSH PRIVILEGES;"
}

associations() {
  sacctmgr -i add cluster "$CLUSTER" >/dev/null 2>&1 || true
  sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description="transient-ridge tests" Organization=tests >/dev/null 2>&1 || true
  sacctmgr -i add user "$(id -un)" Account="$ACCOUNT" DefaultAccount="$ACCOUNT" Cluster="$CLUSTER" >/dev/null 2>&1 || true
  sacctmgr -n -P show assoc cluster="$CLUSTER" account="$ACCOUNT" user="$(id -un)" format=user | grep -qx "$(id -un)"
}

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -n1; }

node_idle() { [[ $(node_state) == idle ]]; }

up() {  # up NAME: NAME is up; fail here if TR_SLURM_FAIL_AFTER names it
  [[ $FAIL_AFTER != "$1" ]] || fail "TR_SLURM_FAIL_AFTER=$1: failing on purpose once $1 is up (a test of the teardown)"
}

teardown_on_failure() {  # the EXIT trap of start: undo a start that did not finish
  local status=$?
  trap - EXIT INT TERM
  if [[ $status != 0 && $status != 77 ]]; then
    say "start failed (exit status $status): stopping what it started"
    set +e
    stop
  fi
  exit "$status"
}

start() {
  [[ $(id -u) == 0 ]] || skip "needs root to install packages and start the SLURM daemons (uid $(id -u))"
  case $FAIL_AFTER in "" | munged | mariadbd | slurmdbd | slurmctld | slurmd) ;;
    *) echo "error: TR_SLURM_FAIL_AFTER=$FAIL_AFTER; allowed: munged, mariadbd, slurmdbd, slurmctld, slurmd" >&2; exit 2 ;;
  esac
  trap teardown_on_failure EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  mkdir -p "$DIR"/{log,pids,run,state,spool,mysql}
  install_packages
  write_configs
  start_munge
  up munged
  start_mariadb
  up mariadbd
  launch slurmdbd slurmdbd -D
  wait_for 60 "slurmdbd (registering cluster $CLUSTER)" associations
  up slurmdbd
  launch slurmctld slurmctld -D -i
  wait_for 60 slurmctld scontrol ping
  up slurmctld
  launch slurmd slurmd -D -N "$NODE"
  local deadline=$((SECONDS + 90))
  until node_idle; do
    case $(node_state) in down* | drain* | unknown*) scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;; esac
    ((SECONDS < deadline)) || fail "node $NODE is '$(node_state)', not idle, after 90 s"
    sleep 1
  done
  up slurmd
  say "ready: partition $PARTITION, account $ACCOUNT, node $NODE with $CPUS CPU(s); $CONF_DIR/slurm.conf"
  sinfo >&2
  trap - EXIT INT TERM
}

stop() {
  local name pid
  for name in slurmd slurmctld slurmdbd mariadbd munged; do
    pid=$(recorded_pid "$name")
    [[ -n $pid ]] || continue
    if alive "$pid"; then
      kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
      for _ in $(seq 1 40); do alive "$pid" || break; sleep 0.25; done
      alive "$pid" && { kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true; }
      say "stopped $name (pid $pid)"
    fi
    rm -f "$DIR/pids/$name"
  done
  # each daemon leads its own session (setsid), so the group signal also reaches munged under runuser
  for name in slurm.conf slurmdbd.conf; do
    if [[ -e $CONF_DIR/$name ]] && grep -qxF "$MARKER" "$CONF_DIR/$name"; then rm -f "$CONF_DIR/$name"; fi
  done
}

case ${1:-} in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
