#!/usr/bin/env bash
# A throw-away single-node Slurm cluster (munged + slurmctld + slurmd) for the job-array test.
#
#   slurm_cluster.sh start WORK   install slurm-wlm and munge (apt-get, as root) if missing,
#                                 write WORK/slurm.conf and start the daemons; prints
#                                 SLURM_CONF=WORK/slurm.conf once the node is idle
#   slurm_cluster.sh stop WORK    stop the daemons this script started (by their PID files)
#
# Everything lives in WORK (config, state, logs, PID files) except the munge key, which
# munged only reads from /etc/munge. On failure the last line on stderr is the daemon's own
# error line (the test skips with it).
set -u
cmd=${1:?start|stop}
work=$(readlink -f "${2:?WORK folder}")
conf=$work/slurm.conf

fail() { stop >/dev/null 2>&1; echo "$1" >&2; exit 1; }

daemon_error() {  # the daemon's own last error line from its log
    grep -hiE 'error|fatal' "$@" 2>/dev/null | tail -n 1
}

stop() {
    for f in "$work"/slurmd.pid "$work"/slurmctld.pid "$work"/munged.pid; do
        [ -s "$f" ] && kill "$(cat "$f")" 2>/dev/null
    done
    sleep 1
    for f in "$work"/slurmd.pid "$work"/slurmctld.pid "$work"/munged.pid; do
        [ -s "$f" ] && kill -9 "$(cat "$f")" 2>/dev/null
        rm -f "$f"
    done
    if [ -L "$work/munge" ]; then
        rm -rf "$(readlink "$work/munge")" "$work/munge"
    fi
    return 0
}

if [ "$cmd" = stop ]; then
    stop
    exit 0
fi

[ "$(id -u)" = 0 ] || fail "must run as root to start slurmctld/slurmd"
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null \
        || ! command -v munged >/dev/null || ! command -v sbatch >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y slurm-wlm munge >"$work/apt.log" 2>&1 \
        || { apt-get update >>"$work/apt.log" 2>&1 \
             && apt-get install -y slurm-wlm munge >>"$work/apt.log" 2>&1; } \
        || fail "apt-get install slurm-wlm munge failed: $(tail -n 1 "$work/apt.log")"
fi

mkdir -p "$work/state" "$work/spool"
# munged runs as the munge user, which cannot enter a private WORK (pytest's tmp folders
# are 0700): its socket, PID and log files get a folder of their own, linked from WORK
munge_dir=$(mktemp -d /tmp/nnaudio-munge.XXXXXX)
ln -sfn "$munge_dir" "$work/munge"
# munge: a key (created once), a socket in WORK
if [ ! -s /etc/munge/munge.key ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null
fi
chown munge:munge /etc/munge/munge.key 2>/dev/null
chmod 400 /etc/munge/munge.key
chown munge:munge "$munge_dir"
chmod 755 "$munge_dir"
socket=$munge_dir/munge.socket
runuser -u munge -- munged --socket="$socket" --pid-file="$munge_dir/munged.pid" \
    --log-file="$munge_dir/munged.log" --seed-file="$munge_dir/seed" \
    >"$work/munged.out" 2>&1 \
    || fail "$(daemon_error "$work/munged.out" "$munge_dir/munged.log" || echo munged failed)"
cp "$munge_dir/munged.pid" "$work/munged.pid" 2>/dev/null

host=$(hostname -s)
cpus=$(nproc)
port=$((20000 + RANDOM % 20000))
cat >"$conf" <<EOF
ClusterName=nnaudiotest
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
AuthInfo=socket=$socket
CredType=cred/munge
SlurmctldPort=$port
SlurmdPort=$((port + 1))
StateSaveLocation=$work/state
SlurmdSpoolDir=$work/spool
SlurmctldPidFile=$work/slurmctld.pid
SlurmdPidFile=$work/slurmd.pid
SlurmctldLogFile=$work/slurmctld.log
SlurmdLogFile=$work/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
MpiDefault=none
ReturnToService=2
SlurmdTimeout=300
NodeName=$host CPUs=$cpus State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
export SLURM_CONF=$conf
slurmctld -i >"$work/slurmctld.out" 2>&1 \
    || fail "$(daemon_error "$work/slurmctld.out" "$work/slurmctld.log" || echo slurmctld failed)"
slurmd >"$work/slurmd.out" 2>&1 \
    || fail "$(daemon_error "$work/slurmd.out" "$work/slurmd.log" || echo slurmd failed)"
for _ in $(seq 60); do
    state=$(sinfo -h -N -o %t 2>/dev/null | head -n 1)
    case $state in
        idle|mix|alloc) echo "SLURM_CONF=$conf"; exit 0 ;;
    esac
    sleep 1
done
err=$(daemon_error "$work/slurmctld.log" "$work/slurmd.log")
stop
fail "${err:-node did not become idle within 60 s (state: ${state:-none})}"
