#!/usr/bin/env bash
# test_slurm.sh - launch/nvwa.sbatch on a real one-node SLURM cluster started here, under a
# temporary directory: munged (own key and socket), slurmctld and slurmd (generated
# slurm.conf, free ports, all state, spool, logs and pid files under the temporary dir).
#   1. a 2-task CPU job through the template completes, logs, and checkpoints its last step;
#   2. preemption: a job that gets the warning signal (scancel --signal=USR1 --batch, what
#      --signal=B:USR1@T sends before the time limit) checkpoints, exits 0, requeues itself,
#      resumes (resume = auto) and ends with weights byte-identical to job 1's - once with
#      the launcher the template picks (srun --mpi=pmix when SLURM has the pmix plugin) and
#      once with mpirun inside the allocation.
# Installs nothing: skipped (exit 77) unless run as root with slurmctld, slurmd, munged and
# the SLURM clients installed (tools/install-deps installs slurm-wlm and munge). The
# daemons (and anything left of their jobs) are stopped by PID at the end, pass or fail.
set -uo pipefail
B=${NVWA_BUILD_ROOT:?}; S=${NVWA_SOURCE_ROOT:?}
export PATH="$PATH:/usr/sbin:/sbin"
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" -eq 0 ] || skip "needs root: it starts munged, slurmctld and slurmd (SlurmUser=root)"
for p in slurmctld slurmd munged munge sbatch srun scontrol squeue scancel sinfo; do
  command -v "$p" > /dev/null || skip "$p is not installed (Debian 12: apt-get install slurm-wlm munge, or tools/install-deps)"
done
T0=$(date +%s)
# a SLURM job around this test (CI on a cluster) must not leak into ours
for v in $(compgen -v SLURM_); do unset "$v"; done
unset SBATCH_GPUS_PER_NODE NVWA_TRAIN NVWA_LAUNCHER NVWA_BIND OMP_NUM_THREADS
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1

# the daemons are not ours to sanitize (tools/run-tests' sanitizer pass preloads a helper
# and sets ASan options for our programs; the jobs still get them through sbatch)
daemon() { env -u LD_PRELOAD -u ASAN_OPTIONS -u UBSAN_OPTIONS -u LSAN_OPTIONS "$@"; }
tmp=$(mktemp -d /tmp/nvwa-slurm.XXXXXX)
chmod 755 "$tmp" # munged wants its socket's directory reachable by all
export SLURM_CONF="$tmp/slurm.conf"
pids=()
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  if [ -f "$SLURM_CONF" ] && [ ${#pids[@]} -gt 0 ]; then
    # end our jobs first, then the daemons, each by PID
    scancel --full --quiet $(squeue -h -o %i 2>/dev/null) 2>/dev/null
    for _ in $(seq 1 40); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.25; done
  fi
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null; done
  for _ in $(seq 1 40); do
    alive=0
    for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null && alive=1; done
    [ $alive -eq 0 ] && break
    sleep 0.25
  done
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null; done
  # whatever this cluster started and is still running (slurmstepd, ranks) carries our
  # SLURM_CONF in its environment: end those, by PID
  for e in /proc/[0-9]*/environ; do
    p=${e#/proc/}; p=${p%/environ}
    [ "$p" = $$ ] && continue
    grep -qzxF "SLURM_CONF=$SLURM_CONF" "$e" 2>/dev/null && kill -9 "$p" 2>/dev/null
  done
  if [ $rc -ne 0 ] && [ $rc -ne 77 ]; then
    for f in "$tmp"/log/*.log; do [ -f "$f" ] && { echo "---- $f (tail)"; tail -n 25 "$f"; }; done
  fi
  rm -rf "$tmp"
  exit $rc
}
trap cleanup EXIT
trap 'exit 143' TERM
trap 'exit 130' INT
fail() { echo "FAIL: $*" >&2; exit 1; }
note() { echo "[$(( $(date +%s) - T0 ))s] $*"; }

# ---- munge -------------------------------------------------------------------------
mkdir -p "$tmp/munge" "$tmp/state" "$tmp/spool" "$tmp/log" "$tmp/out"
chmod 755 "$tmp/munge"
dd if=/dev/urandom of="$tmp/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$tmp/munge/munge.key"
sock="$tmp/munge/munge.sock"
daemon munged -F --socket="$sock" --key-file="$tmp/munge/munge.key" --pid-file="$tmp/munge/munged.pid" \
  --seed-file="$tmp/munge/seed" --log-file="$tmp/log/munged.log" > "$tmp/log/munged.out" 2>&1 &
pids+=($!)
for _ in $(seq 1 100); do [ -S "$sock" ] && break; sleep 0.1; done
munge -S "$sock" -n 2>/dev/null | unmunge -S "$sock" > /dev/null 2>&1 ||
  { cat "$tmp/log/munged.out"; fail "munged did not start (socket $sock)"; }

# ---- slurm.conf ----------------------------------------------------------------------
host=$(hostname -s)
port_free() { ! grep -qi ":$(printf %04X "$1") " /proc/net/tcp /proc/net/tcp6 2>/dev/null; }
pick_port() {
  local p
  for _ in $(seq 1 200); do
    p=$((20000 + RANDOM % 30000))
    port_free "$p" && port_free $((p + 1)) && { echo "$p"; return; }
  done
  fail "no free TCP port"
}
ctld_port=$(pick_port); d_port=$((ctld_port + 1))
hw=$(slurmd -C 2>/dev/null | head -n 1)
cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<< "$hw"); cpus=${cpus:-$(nproc)}
mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<< "$hw"); mem=${mem:-1000}
[ "$cpus" -lt 2 ] && cpus=2 # two tasks; config_overrides trusts this line
mpi_default=none
cat > "$SLURM_CONF" << EOF
# generated by tests/slurm/test_slurm.sh: a private one-node cluster
ClusterName=nvwatest
SlurmctldHost=$host(127.0.0.1)
SlurmUser=root
SlurmdUser=root
SlurmctldPort=$ctld_port
SlurmdPort=$d_port
AuthType=auth/munge
CredType=cred/munge
# cred_expire: also how long a requeued job waits before it may start again (default 120 s)
AuthInfo=socket=$sock,cred_expire=10
StateSaveLocation=$tmp/state
# TmpFS: where the pmix plugin makes its per-step directories (default /tmp/spmix_appdir_*,
# which a second test cluster on this machine would share); FirstJobId: ids unlike theirs
TmpFS=$tmp
FirstJobId=$((1000 + RANDOM % 60000))
SlurmdSpoolDir=$tmp/spool
SlurmctldPidFile=$tmp/slurmctld.pid
SlurmdPidFile=$tmp/slurmd.pid
SlurmctldLogFile=$tmp/log/slurmctld.log
SlurmdLogFile=$tmp/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
SlurmdParameters=config_overrides
MailProg=/bin/true
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/builtin
# the main scheduling pass (default every 60 s) is what starts a requeued job once its
# begin time has passed
SchedulerParameters=sched_interval=2
SwitchType=switch/none
MpiDefault=$mpi_default
JobRequeue=1
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/filetxt
JobCompLoc=$tmp/log/jobcomp.log
MinJobAge=3600
KillWait=10
NodeName=$host NodeHostname=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF

# ---- daemons -------------------------------------------------------------------------
daemon slurmctld -D -f "$SLURM_CONF" > "$tmp/log/slurmctld.out" 2>&1 &
pids+=($!)
daemon slurmd -D -f "$SLURM_CONF" -N "$host" > "$tmp/log/slurmd.out" 2>&1 &
pids+=($!)
state=""
for _ in $(seq 1 120); do
  state=$(sinfo -h -n "$host" -o %T 2>/dev/null)
  [ "$state" = idle ] && break
  for p in "${pids[@]}"; do kill -0 "$p" 2>/dev/null || { cat "$tmp"/log/*.out; fail "a daemon (pid $p) died at start"; }; done
  sleep 0.5
done
[ "$state" = idle ] || { cat "$tmp"/log/*.out; fail "node $host is '${state:-unknown}', not idle, after 60 s"; }
note "cluster up: node $host idle ($cpus CPUs, ${mem} MB), ports $ctld_port/$d_port"

# ---- data and the job's arguments ------------------------------------------------------
"$B/tools/nvwa-prep" --synthetic 600 --seed 7 -o "$tmp/shards" -q || fail "nvwa-prep"
STEPS=200 # long enough that the warning signal lands mid-run even on an idle machine
ARGS=("$S/configs/tiny.ini" data.train="$tmp/shards" train.steps=$STEPS train.device=cpu
      data.seq-length=128 data.micro-batch=2 data.global-batch=4 model.num-layers=2
      checkpoint.every=4 checkpoint.keep=2 log.every=4 -q)
# CPU-only settings for the GPU template: 2 tasks on this node, no GPUs, 1 CPU each
SB=(sbatch --parsable --nodes=1 --ntasks-per-node=2 --gpus-per-node=0 --cpus-per-task=1 --time=15)
export NVWA_TRAIN="$B/nvwa-train"

jstate() { scontrol show job "$1" 2>/dev/null | sed -n 's/.*JobState=\([A-Z_]*\).*/\1/p'; }
jfield() { scontrol show job "$1" 2>/dev/null | tr ' ' '\n' | sed -n "s/^$2=//p" | head -n 1; }
# wait_final JOBID [MIN_RESTARTS]: until the job is in a final state after that many
# restarts; sets ST (no $(...) here: a trapped TERM must not wait for a long subshell)
wait_final() {
  ST=""
  local t=$SECONDS
  while [ $((SECONDS - t)) -lt 400 ]; do
    ST=$(jstate "$1")
    case "$ST" in
      COMPLETED|FAILED|CANCELLED|TIMEOUT|NODE_FAIL|OUT_OF_MEMORY|BOOT_FAIL|DEADLINE|PREEMPTED)
        [ "$(jfield "$1" Restarts)" -ge "${2:-0}" ] && return ;;
    esac
    sleep 0.25
  done
  ST=${ST:-GONE}
}
latest_step() { sed -n 's/^step_0*\([0-9][0-9]*\)$/\1/p' "$1/latest" 2>/dev/null; }

# ---- 1. a 2-task job completes, logs and checkpoints ------------------------------------
out1="$tmp/out/ref.out"
jid=$("${SB[@]}" --job-name=nvwa-ref --output="$out1" "$S/launch/nvwa.sbatch" "${ARGS[@]}" \
      checkpoint.dir="$tmp/ref" log.file="$tmp/ref.jsonl") || fail "sbatch refused the template"
wait_final "$jid"
[ "$ST" = COMPLETED ] || { cat "$out1"; scontrol show job "$jid"; fail "job $jid: $ST, want COMPLETED"; }
[ "$(jfield "$jid" ExitCode)" = 0:0 ] || fail "job $jid: ExitCode $(jfield "$jid" ExitCode)"
[ "$(jfield "$jid" NumTasks)" = 2 ] || fail "job $jid: NumTasks $(jfield "$jid" NumTasks), want 2"
grep -q "world 2 = tensor 1 x data 2" "$out1" || { cat "$out1"; fail "job $jid did not train with 2 ranks"; }
grep -q "done: $STEPS steps" "$out1" || { cat "$out1"; fail "job $jid: no 'done: $STEPS steps'"; }
[ "$(latest_step "$tmp/ref")" = $STEPS ] || fail "job $jid: latest checkpoint is not step $STEPS"
[ "$(grep -c . "$tmp/ref.jsonl")" -ge $((STEPS / 4)) ] || fail "job $jid: JSONL log has too few records"
launcher=$(sed -n 's/.*launcher \([a-z]*\),.*/\1/p' "$out1" | head -n 1)
"$B/tools/nvwa-ckpt" export "$tmp/ref" -o "$tmp/ref.safetensors" > /dev/null || fail "export ref"
note "job $jid ($launcher): COMPLETED, $STEPS steps, checkpoint step $STEPS, $(grep -c . "$tmp/ref.jsonl") log records"

# ---- 2. preemption: warning signal -> checkpoint, exit 0, requeue, resume, identical ----
preempt() { # LAUNCHER NAME
  local name=$2 out="$tmp/out/$2.out" dir="$tmp/$2" jid stopped resumed
  jid=$(NVWA_LAUNCHER=$1 "${SB[@]}" --job-name="nvwa-$name" --output="$out" \
        "$S/launch/nvwa.sbatch" "${ARGS[@]}" checkpoint.dir="$dir" log.file="$tmp/$name.jsonl") || fail "sbatch ($name)"
  local t=$SECONDS
  while [ $((SECONDS - t)) -lt 300 ]; do [ -f "$dir/latest" ] && break; [ -n "$(jstate "$jid")" ] || break; sleep 0.05; done
  [ -f "$dir/latest" ] || { cat "$out"; fail "$name: job $jid wrote no checkpoint"; }
  scancel --signal=USR1 --batch "$jid" || fail "$name: scancel --signal=USR1 --batch $jid"
  wait_final "$jid" 1
  [ "$ST" = COMPLETED ] || { cat "$out"; scontrol show job "$jid"; fail "$name: job $jid: $ST after requeue, want COMPLETED"; }
  grep -q "SIGUSR1" "$out" || { cat "$out"; fail "$name: the batch shell did not get SIGUSR1"; }
  stopped=$(sed -n 's/^stopping after step \([0-9]*\) (signal).*/\1/p' "$out" | head -n 1)
  [ -n "$stopped" ] || { cat "$out"; fail "$name: no 'stopping after step N (signal)' (did the run end before the signal?)"; }
  [ "$stopped" -lt $STEPS ] || { cat "$out"; fail "$name: stopped at the last step, nothing left to resume"; }
  grep -q "ranks exited with status 0" "$out" || { cat "$out"; fail "$name: the ranks did not exit 0 after the signal"; }
  grep -q "requeued job $jid" "$out" || { cat "$out"; fail "$name: the job did not requeue itself"; }
  resumed=$(sed -n 's/^resumed from .* at step \([0-9]*\)$/\1/p' "$out" | head -n 1)
  [ "$resumed" = "$stopped" ] || { cat "$out"; fail "$name: resumed at step '${resumed}', want $stopped (the checkpoint of the stop)"; }
  grep -q "done: $((STEPS - stopped)) steps" "$out" || { cat "$out"; fail "$name: the resumed run did not finish"; }
  [ "$(jfield "$jid" Restarts)" = 1 ] || fail "$name: Restarts = $(jfield "$jid" Restarts), want 1"
  # the resumed run continues the JSONL log: one record per 4 steps over both runs
  [ "$(sed -n 's/^{"step": \([0-9]*\),.*/\1/p' "$tmp/$name.jsonl" | tr '\n' ' ')" = "$(seq -s ' ' 4 4 $STEPS) " ] ||
    { cat "$tmp/$name.jsonl"; fail "$name: the JSONL log does not hold steps 4, 8 .. $STEPS once each"; }
  "$B/tools/nvwa-ckpt" export "$dir" -o "$tmp/$name.safetensors" > /dev/null || fail "export $name"
  cmp "$tmp/ref.safetensors" "$tmp/$name.safetensors" ||
    fail "$name: weights after preemption + requeue + resume differ from the uninterrupted job"
  note "job $jid ($1): SIGUSR1 -> stopped at step $stopped, exit 0, requeued, resumed at step $stopped, finished: weights byte-identical"
}
preempt auto "preempt-$launcher"
# NVWA_TEST_LIGHT (the sanitizer pass): the template's own launcher only
[ "$launcher" = mpirun ] || [ "${NVWA_TEST_LIGHT:-0}" = 1 ] || preempt mpirun preempt-mpirun

# ---- 3. launch/nvwa-fold.sbatch: an array chain and a preempted allocation -----------------
FOLD="$B/tools/nvwa-fold"
if [ -x "$FOLD" ]; then
  awk 'BEGIN { srand(11); for (i = 0; i < 60; i++) { len = 60 + int(rand() * 200); s = "";
    for (k = 0; k < len; k++) s = s substr("ACGU", 1 + int(rand() * 4), 1); printf(">f%d\n%s\n", i, s) } }' > "$tmp/f.fa"
  "$B/tools/nvwa-prep" -q --shard-size 0.004 -o "$tmp/fin" "$tmp/f.fa" || fail "nvwa-prep (fold)"
  FARGS=(--dbn --part-seconds 0.02)
  "$FOLD" -q "${FARGS[@]}" -o "$tmp/fref" "$tmp/fin" || fail "nvwa-fold reference"
  # plan -> 3 array tasks -> assembly, submitted by the template from "the login node"
  sub=$(NVWA_FOLD="$FOLD" NVWA_SBATCH_ARGS="--cpus-per-task=1 --time=15 --output=$tmp/out/fold-%x-%A_%a.out" \
        bash "$S/launch/nvwa-fold.sbatch" --array 3 "$tmp/fin" -o "$tmp/farr" "${FARGS[@]}") || fail "array chain: $sub"
  fjid=$(sed -n 's/.*assembly job \([0-9]*\).*/\1/p' <<< "$sub")
  [ -n "$fjid" ] || fail "array chain: no assembly job in '$sub'"
  wait_final "$fjid"
  [ "$ST" = COMPLETED ] || { cat "$tmp"/out/fold-*; fail "fold array chain: assembly job $fjid $ST"; }
  for f in $(cd "$tmp/fref" && ls *.h5 *.dbn); do cmp "$tmp/fref/$f" "$tmp/farr/$f" || fail "fold array chain: $f differs"; done
  note "nvwa-fold.sbatch --array 3: plan, 3 tasks, assembly: shards byte-identical to a direct run"
  # an allocation preempted by the warning signal: exit 75, requeue, continue, identical
  fout="$tmp/out/fold-alloc.out"
  jid=$(NVWA_FOLD="$FOLD" sbatch --parsable --nodes=1 --ntasks-per-node=1 --cpus-per-task=1 --time=15 --output="$fout" \
        "$S/launch/nvwa-fold.sbatch" "$tmp/fin" -o "$tmp/falloc" "${FARGS[@]}" --progress 0.2) || fail "sbatch nvwa-fold.sbatch"
  t=$SECONDS
  while [ $((SECONDS - t)) -lt 300 ]; do
    [ -n "$(find "$tmp/falloc/.nvwa-fold/parts" -name 'part_*.bin' 2>/dev/null)" ] && break; sleep 0.05; done
  scancel --signal=USR1 --batch "$jid" || fail "scancel --signal=USR1 $jid"
  wait_final "$jid" 1
  [ "$ST" = COMPLETED ] || { cat "$fout"; fail "fold allocation job $jid: $ST after requeue"; }
  grep -q "exited with status 75" "$fout" && grep -q "requeued $jid" "$fout" ||
    { cat "$fout"; fail "fold job $jid: no stop (75) and requeue after the warning signal"; }
  for f in $(cd "$tmp/fref" && ls *.h5 *.dbn); do cmp "$tmp/fref/$f" "$tmp/falloc/$f" || fail "fold allocation: $f differs"; done
  note "nvwa-fold.sbatch: SIGUSR1 -> exit 75, requeued, finished: shards byte-identical"
fi

note "ok"
