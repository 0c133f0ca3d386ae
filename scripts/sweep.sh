# Sourced by run_cifar.sh and run_imagenet.sh: `all` and `--dry_run` over one shard.
#
# The caller defines:
#   matrix              prints "<run name> <flags...>" per run of the paper's matrix
#   run_command NAME FLAGS...
#                       sets run_dir and run_cmd (the run's training command, with
#                       the extra flags in sweep_flags appended)
#   follow_ups ACTION   calls "ACTION <command...>" for each evaluation that
#                       --then_eval / --then_audit add after the run in run_dir
#   final_step_key      the params.json key of the run's last step
# Needs only bash, awk and sed, so that --dry_run works before any set-up.

# The file `all` writes into a run's model_dir once that exact command finished.
SWEEP_STAMP=finished_command.txt

sweep_dry_run=0
sweep_then_eval=0
sweep_then_audit=0
sweep_k=0
sweep_n=1
sweep_flags=()

sweep_error() {
  echo "error: $*" >&2
  exit 2
}

# Checks a --shard value K/N (0 <= K < N) and keeps it in sweep_k, sweep_n.
sweep_set_shard() {
  local value="$1"
  [[ "$value" =~ ^([0-9]{1,9})/([0-9]{1,9})$ ]] \
    || sweep_error "--shard=${value}: expected K/N, whole numbers with 0 <= K < N (e.g. 0/4)"
  sweep_k=$((10#${BASH_REMATCH[1]}))
  sweep_n=$((10#${BASH_REMATCH[2]}))
  ((sweep_n >= 1)) || sweep_error "--shard=${value}: N must be at least 1"
  ((sweep_k < sweep_n)) || sweep_error "--shard=${value}: K must be below N (K counts from 0)"
}

# Takes the sweep's own flags out of "$@"; the rest go to every run (sweep_flags).
sweep_parse() {
  while (($#)); do
    case "$1" in
      --dry_run) sweep_dry_run=1 ;;
      --then_eval) sweep_then_eval=1 ;;
      --then_audit) sweep_then_audit=1 ;;
      --shard)
        (($# >= 2)) || sweep_error "--shard needs a value K/N (e.g. --shard 0/4)"
        sweep_set_shard "$2"
        shift ;;
      --shard=*) sweep_set_shard "${1#--shard=}" ;;
      *) sweep_flags+=("$1") ;;
    esac
    shift
  done
}

# Shell-quotes a command for printing; a literal --data_dir=$DATA_DIR stays as is.
sweep_print() {
  local arg quoted out=()
  for arg in "$@"; do
    printf -v quoted '%q' "$arg"
    [[ "$arg" == '--data_dir=$DATA_DIR' ]] && quoted="$arg"
    out+=("$quoted")
  done
  echo "${out[*]}"
}

# Runs a command whose first word is python, with ${SWEEP_PYTHON:-python} in its place.
sweep_exec() {
  echo "== $(sweep_print "$@")"
  shift
  "${SWEEP_PYTHON:-python}" "$@" </dev/null
}

# The step in a model_dir's `checkpoint` file, or in its params.json under $1.
sweep_checkpoint_step() {
  sed -n 's/^model_checkpoint_path: ".*ckpt-\([0-9][0-9]*\)"$/\1/p' "$run_dir/checkpoint" \
    2>/dev/null || true
}
sweep_final_step() {
  sed -n "s/^ *\"${final_step_key}\": \([0-9][0-9]*\),\{0,1\}$/\1/p" "$run_dir/params.json" \
    2>/dev/null || true
}

# True when run_dir's latest checkpoint is at the last step its params.json
# records and this exact command ($1, as printed) finished there before.
sweep_finished() {
  local step
  [[ -f "$run_dir/$SWEEP_STAMP" && "$(<"$run_dir/$SWEEP_STAMP")" == "$1" ]] || return 1
  step="$(sweep_checkpoint_step)"
  [[ -n "$step" && "$step" == "$(sweep_final_step)" ]]
}

# Trains the run in run_dir unless it finished; a half-done run resumes in the trainer.
sweep_train() {
  local printed
  printed="$(sweep_print "${run_cmd[@]}")"
  if sweep_finished "$printed"; then
    echo "== skip ${run_dir}: finished at step $(sweep_checkpoint_step)"
    return 0
  fi
  sweep_exec "${run_cmd[@]}"
  mkdir -p "$run_dir"
  printf '%s\n' "$printed" > "$run_dir/$SWEEP_STAMP.tmp"
  mv -f "$run_dir/$SWEEP_STAMP.tmp" "$run_dir/$SWEEP_STAMP"
}

# Prints (--dry_run) or runs runs K, K+N, K+2N, ... of the matrix, each with its follow-ups.
sweep_all() {
  local name flags
  while read -r name flags; do
    # shellcheck disable=SC2086  # $flags is a list of words without spaces.
    run_command "$name" $flags
    if ((sweep_dry_run)); then
      sweep_print "${run_cmd[@]}"
      follow_ups sweep_print
    else
      sweep_train
      follow_ups sweep_exec
    fi
  done < <(matrix | awk -v k="$sweep_k" -v n="$sweep_n" '(NR - 1) % n == k')
}
