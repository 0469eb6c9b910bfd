#!/usr/bin/env bash
# slurm-up.sh -- a throw-away, single-node SLURM cluster on loopback, for testing
# the workflow's SLURM profile against a real slurmctld/slurmd (not a mock).
#
#   tests/cluster/slurm-up.sh up       start munged, slurmctld, slurmd (installing them first
#                                      only when ZOOMIN_TEST_INSTALL_SLURM=1, see below)
#   tests/cluster/slurm-up.sh down     stop the daemons THIS script started (by recorded PID)
#   tests/cluster/slurm-up.sh status   show what is running and the node state
#   tests/cluster/slurm-up.sh check    are munge and SLURM installed? (no root needed; exit 0 or 6)
#
# Needs root. It never installs anything unless asked to: with ZOOMIN_TEST_INSTALL_SLURM=1
# and munge/SLURM missing, 'up' installs Debian's packages (munge slurmctld slurmd
# slurm-client, --no-install-recommends), which needs a reachable Debian/Ubuntu apt
# repository; without it, missing programs make 'up' exit 6 and change nothing.
#
# What it sets up (facts measured on SLURM 22.05 / munge 0.5.15):
#   * one node "zoomin-node" at 127.0.0.1 with this machine's CPUs and memory, no GRES
#     (GPU requests must be overridden to 0 -- see tests/cluster/profile/);
#   * one partition "debug" (the default partition);
#   * ProctrackType=proctrack/linuxproc and TaskPlugin=task/none (no cgroups needed,
#     works inside containers), select/cons_tres with CR_Core (CR_Core_Memory without a
#     default memory makes every job take the whole node, so jobs serialise);
#   * CommunicationParameters=NoInAddrAny,NoCtldInAddrAny: the daemons bind to
#     127.0.0.1 only;
#   * no accounting database: job status comes from `squeue`, which sees finished
#     jobs for MinJobAge=300 s (the profile's slurm-init-seconds-before-status-checks
#     must stay <= MinJobAge/3); every finished job is also recorded, one line each,
#     in $STATE/log/jobcomp.txt (jobcomp/filetxt), which the tests read;
#   * slurmctld is started with -c (clear state left by an earlier run).
#
# Environment:
#   ZOOMIN_SLURM_STATE   state directory (PIDs, logs, spool)  [/var/tmp/zoomin-slurm]
#   ZOOMIN_SLURM_CONF    slurm.conf to write                   [/etc/slurm/slurm.conf]
#                        (a slurm.conf not written by this script is never overwritten)
#   ZOOMIN_SLURM_TIMEOUT seconds to wait for the node to become idle [60]
#   ZOOMIN_TEST_INSTALL_SLURM  1: 'up' may install the missing packages with apt-get
#                        (opt-in; .ci/run sets it). Anything else: never install.  [unset]
#
# Exit status: 0 ok; 1 usage; 2 not root; 3 cannot install packages; 4 foreign
# slurm.conf or foreign daemons already running; 5 daemons did not come up;
# 6 munge/SLURM not installed and installing was not allowed (ZOOMIN_TEST_INSTALL_SLURM!=1).
set -euo pipefail

STATE="${ZOOMIN_SLURM_STATE:-/var/tmp/zoomin-slurm}"
CONF="${ZOOMIN_SLURM_CONF:-/etc/slurm/slurm.conf}"
TIMEOUT="${ZOOMIN_SLURM_TIMEOUT:-60}"
MARKER="# managed-by: zoomin tests/cluster/slurm-up.sh"
NODE="zoomin-node"
PARTITION="debug"
PACKAGES=(munge slurmctld slurmd slurm-client)
# what 'up' runs: the daemons by absolute path (as start_munge/start_daemon do), the rest from PATH
PROGRAMS=(/usr/sbin/munged /usr/sbin/slurmctld /usr/sbin/slurmd munge unmunge sinfo scontrol sbatch squeue)
INSTALL="${ZOOMIN_TEST_INSTALL_SLURM:-}"
MUNGE_KEY=/etc/munge/munge.key
MUNGE_SOCKET_DIR=/run/munge

say() { printf 'slurm-up: %s\n' "$*"; }
die() { local code=$1; shift; printf 'slurm-up: ERROR: %s\n' "$*" >&2; exit "$code"; }

now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }

pid_alive() { [[ -n "${1:-}" ]] && kill -0 "$1" 2>/dev/null; }

# PID recorded for daemon $1 if it is still alive and still that program, else empty.
recorded_pid() {
    local name=$1 f="$STATE/pids/$1" pid
    [[ -f "$f" ]] || return 0
    pid=$(<"$f")
    if pid_alive "$pid" && [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == "$name" ]]; then
        echo "$pid"
    fi
}

require_root() {
    [[ $(id -u) -eq 0 ]] || die 2 "must run as root (it writes $CONF and starts system daemons)"
}

missing_programs() {  # prints the programs of PROGRAMS that are not installed, one a line
    local p path
    for p in "${PROGRAMS[@]}"; do
        # (bash's `command -v` also returns a file it found that is not executable)
        path=$p; [[ $p == /* ]] || path=$(type -P "$p" || true)
        [[ -n $path && -f $path && -x $path ]] || echo "$p"
    done
}

NOT_INSTALLED_HINT="set ZOOMIN_TEST_INSTALL_SLURM=1 to let tests/cluster/slurm-up.sh install Debian's ${PACKAGES[*]} with apt-get (as root), or install SLURM and munge yourself"

cmd_check() {
    local missing; missing=$(missing_programs)
    if [[ -n $missing ]]; then
        printf 'slurm-up: munge/SLURM not installed (missing: %s); %s\n' "$(echo $missing)" "$NOT_INSTALLED_HINT" >&2
        return 6
    fi
    say "munge and SLURM are installed"
}

install_packages() {
    local missing_progs; missing_progs=$(missing_programs)
    if [[ -z $missing_progs ]]; then
        say "munge and SLURM already installed"
        return 0
    fi
    [[ $INSTALL == 1 ]] || die 6 "munge/SLURM not installed (missing: $(echo $missing_progs)); $NOT_INSTALLED_HINT"
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
    done
    if ((${#missing[@]} == 0)); then
        die 3 "packages ${PACKAGES[*]} are installed but programs are missing: $(echo $missing_progs)"
    fi
    command -v apt-get >/dev/null || die 3 "packages missing (${missing[*]}) and apt-get not found (not Debian/Ubuntu?)"
    say "installing ${missing[*]} (apt-get --no-install-recommends) ..."
    local t0; t0=$(now)
    export DEBIAN_FRONTEND=noninteractive
    # Keep maintainer scripts from starting the daemons through init/systemd: we start
    # them ourselves so that we know (and later stop) exactly the PIDs we started.
    local policy=/usr/sbin/policy-rc.d had_policy=0
    [[ -e $policy ]] && had_policy=1
    if ((had_policy == 0)); then
        printf '#!/bin/sh\nexit 101\n' >"$policy"; chmod 755 "$policy"
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    local rc=0
    if ! apt-get install -y -qq --no-install-recommends "${missing[@]}" >"$STATE/apt.log" 2>&1; then
        say "apt-get install failed; trying apt-get update first ..."
        apt-get update -qq >>"$STATE/apt.log" 2>&1 &&
            apt-get install -y -qq --no-install-recommends "${missing[@]}" >>"$STATE/apt.log" 2>&1 || rc=$?
    fi
    if ((had_policy == 0)); then rm -f "$policy"; trap - EXIT; fi
    ((rc == 0)) || die 3 "could not install ${missing[*]} (apt unreachable?); see $STATE/apt.log"
    say "installed in $(elapsed "$t0") s"
}

node_facts() {
    CPUS=$(nproc --all)
    local mem_mb
    mem_mb=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
    # leave 5 % (at least 512 MB) to the OS, as slurmd reports slightly less than MemTotal
    local slack=$((mem_mb / 20)); ((slack < 512)) && slack=512
    REALMEM=$((mem_mb - slack))
}

write_conf() {
    if [[ -f "$CONF" ]] && ! grep -qF "$MARKER" "$CONF"; then
        die 4 "$CONF exists and was not written by this script; refusing to touch a real SLURM setup (set ZOOMIN_SLURM_CONF to use another path)"
    fi
    node_facts
    local host; host=$(hostname -s)
    mkdir -p "$(dirname "$CONF")" "$STATE/ctld" "$STATE/spool" "$STATE/pids" "$STATE/log"
    cat >"$CONF.tmp" <<EOF
$MARKER
# Single-node test cluster on loopback; rewritten on every 'up'. Do not edit by hand.
ClusterName=zoomin
SlurmctldHost=${host}(127.0.0.1)
SlurmctldPort=6817
SlurmdPort=6818
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/log/slurmctld.log
SlurmdLogFile=$STATE/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
MailProg=/bin/true
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MinJobAge=300
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$STATE/log/jobcomp.txt
SlurmctldTimeout=30
SlurmdTimeout=60
InactiveLimit=0
KillWait=5
Waittime=0
NodeName=$NODE NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$REALMEM State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.tmp" "$CONF"
    say "wrote $CONF (node $NODE: CPUs=$CPUS RealMemory=${REALMEM} MB, partition $PARTITION)"
}

munge_works() { munge -n 2>/dev/null | unmunge >/dev/null 2>&1; }

start_munge() {
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating munge key $MUNGE_KEY"
        mkdir -p "$(dirname "$MUNGE_KEY")"
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile="$MUNGE_KEY" --force
        else
            dd if=/dev/urandom of="$MUNGE_KEY" bs=1024 count=1 status=none
        fi
    fi
    chown munge:munge "$MUNGE_KEY" /etc/munge && chmod 0400 "$MUNGE_KEY" && chmod 0700 /etc/munge
    if [[ -n "$(recorded_pid munged)" ]]; then
        say "munged already running (pid $(recorded_pid munged), ours)"
        return 0
    fi
    if munge_works; then
        say "a munged not started by this script is already answering; using it (down will leave it alone)"
        rm -f "$STATE/pids/munged"
        return 0
    fi
    mkdir -p "$MUNGE_SOCKET_DIR" /var/lib/munge /var/log/munge
    chown munge:munge "$MUNGE_SOCKET_DIR" /var/lib/munge /var/log/munge
    chmod 0755 "$MUNGE_SOCKET_DIR"
    # -F: stay in the foreground so that $! is munged itself; setsid: own session.
    setsid runuser -u munge -- /usr/sbin/munged -F >"$STATE/log/munged.out" 2>&1 </dev/null &
    local launcher=$! i
    # runuser forks; record the munged child, not runuser
    for i in $(seq 50); do
        local pid
        pid=$(pgrep -P "$launcher" -x munged || true)
        [[ -z "$pid" && "$(cat /proc/$launcher/comm 2>/dev/null)" == munged ]] && pid=$launcher
        if [[ -n "$pid" ]] && munge_works; then
            echo "$pid" >"$STATE/pids/munged"
            echo "$launcher" >"$STATE/pids/munged.launcher"
            say "munged started (pid $pid)"
            return 0
        fi
        pid_alive "$launcher" || break
        sleep 0.1
    done
    cat "$STATE/log/munged.out" >&2 || true
    die 5 "munged did not start (see $STATE/log/munged.out)"
}

start_daemon() {  # name, args...
    local name=$1; shift
    if [[ -n "$(recorded_pid "$name")" ]]; then
        say "$name already running (pid $(recorded_pid "$name"), ours)"
        return 0
    fi
    if pgrep -x "$name" >/dev/null; then
        die 4 "a $name not started by this script is running (pid $(pgrep -x "$name" | tr '\n' ' ')); stop it first"
    fi
    setsid "/usr/sbin/$name" -D -f "$CONF" "$@" >"$STATE/log/$name.out" 2>&1 </dev/null &
    echo $! >"$STATE/pids/$name"
    sleep 0.2
    pid_alive "$(<"$STATE/pids/$name")" || { cat "$STATE/log/$name.out" >&2; die 5 "$name exited at once (see $STATE/log/)"; }
    say "$name started (pid $(<"$STATE/pids/$name"))"
}

node_state() { SLURM_CONF="$CONF" sinfo -h -n "$NODE" -o '%T' 2>/dev/null | head -1; }

wait_idle() {
    local t0=$SECONDS st=""
    while ((SECONDS - t0 < TIMEOUT)); do
        st=$(node_state || true)
        case "$st" in
            idle | mixed | allocated) return 0 ;;
            down* | drain*)
                # a node left DOWN by a previous run: bring it back
                SLURM_CONF="$CONF" scontrol update NodeName="$NODE" State=RESUME >/dev/null 2>&1 || true ;;
        esac
        sleep 0.5
    done
    die 5 "node $NODE not idle after ${TIMEOUT}s (state: '${st:-unknown}'); logs in $STATE/log/"
}

cmd_up() {
    require_root
    local t0; t0=$(now)
    mkdir -p "$STATE/pids" "$STATE/log"
    if [[ -n "$(recorded_pid slurmctld)" && -n "$(recorded_pid slurmd)" ]] && [[ "$(node_state)" =~ ^(idle|mixed|allocated)$ ]]; then
        say "already up (slurmctld pid $(recorded_pid slurmctld), slurmd pid $(recorded_pid slurmd)); node $NODE is $(node_state)"
        return 0
    fi
    install_packages
    # a stale half-started cluster of ours: stop it and start afresh
    if [[ -n "$(recorded_pid slurmctld)$(recorded_pid slurmd)" ]]; then
        say "partially up; restarting our slurm daemons"
        stop_one slurmd; stop_one slurmctld
    fi
    write_conf
    start_munge
    start_daemon slurmctld -c
    start_daemon slurmd -N "$NODE"
    wait_idle
    say "up in $(elapsed "$t0") s: partition '$PARTITION', node $NODE $(node_state), CPUs=$CPUS RealMemory=$REALMEM"
    say "state, logs and PIDs: $STATE"
}

stop_one() {
    local name=$1 pid i
    pid=$(recorded_pid "$name")
    if [[ -z "$pid" ]]; then
        rm -f "$STATE/pids/$name"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 100); do pid_alive "$pid" || break; sleep 0.1; done
    if pid_alive "$pid"; then
        say "$name (pid $pid) ignored SIGTERM for 10 s; sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$STATE/pids/$name"
    say "stopped $name (pid $pid)"
}

cmd_down() {
    require_root
    if [[ ! -d "$STATE/pids" ]]; then say "nothing recorded in $STATE; nothing to stop"; return 0; fi
    local any=0 name
    for name in slurmd slurmctld munged; do
        [[ -n "$(recorded_pid "$name")" ]] && any=1
        stop_one "$name"
    done
    rm -f "$STATE/pids/munged.launcher"
    ((any)) || say "no daemon started by this script is running"
    return 0
}

cmd_status() {
    local name pid up=1
    for name in munged slurmctld slurmd; do
        pid=$(recorded_pid "$name")
        if [[ -n "$pid" ]]; then say "$name: running (pid $pid, started by this script)"
        else say "$name: not running (from this script)"; [[ $name != munged ]] && up=0; fi
    done
    if command -v sinfo >/dev/null && [[ -f "$CONF" ]]; then
        SLURM_CONF="$CONF" sinfo 2>&1 | sed 's/^/  /' || true
    fi
    ((up)) && [[ "$(node_state)" =~ ^(idle|mixed|allocated)$ ]]
}

case "${1:-}" in
    up) cmd_up ;;
    down) cmd_down ;;
    status) cmd_status ;;
    check) cmd_check ;;
    *) echo "usage: $0 up|down|status|check" >&2; exit 1 ;;
esac
