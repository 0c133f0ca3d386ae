#!/usr/bin/env bash
# CIFAR-10 experiments of section 3.1 (WRN-28x10, no BatchNorm).
#
#   ./run_cifar.sh quickstart [--data_dir DIR]   the main job in small (~15 min on 2 CPU cores)
#   ./run_cifar.sh train [flags]                 one run: python -m wrn_cifar.wrn_main [flags]
#   ./run_cifar.sh --dry_run [all's flags]       print the 26 training runs of the paper's matrix
#   ./run_cifar.sh all [flags]                   run the 26 (extra flags go to every run)
#       --shard K/N   only runs K, K+N, K+2N, ... (K counts from 0): N tasks cover the 26 once
#       --then_eval   after each run, its evaluation set (python -m eval.cifar_suite)
#       --then_audit  after each run, the robustness audit, L-inf and L2 (python -m eval.audit)
#     A finished run (this command, checkpoint at its last step) is skipped; a half-done
#     one resumes. On a SLURM array or a Kubernetes indexed job (create .venv first):
#       sbatch --array=0-25 --wrap './run_cifar.sh all --shard ${SLURM_ARRAY_TASK_ID}/26 --then_eval'
#       command: ["bash", "-c", "./run_cifar.sh all --shard ${JOB_COMPLETION_INDEX}/26 --then_eval"]
#   ./run_cifar.sh eval --model_dir DIR [flags]  clean, PGD L-inf and L2 over eps, CIFAR-10-C
#   ./run_cifar.sh audit --model_dir DIR [flags] the robustness audit: python -m eval.audit
#   ./run_cifar.sh mini [--data_dir DIR]         real-data miniature of Figures 1-2 (~60 min)
#   ./run_cifar.sh study [--data_dir DIR]        does CEB make a model more robust? The real-data
#                                                study of docs/STUDY.md (~2 h on 2 cores)
#   ./run_cifar.sh study --preset overparam [--data_dir DIR]   the second study, where XEnt
#                                                interpolates (docs/study2/PREREGISTRATION.md):
#                                                python -m studies.study2 (presets overparam*)
#
# Environment: MODEL_ROOT (default runs/cifar) holds the matrix's runs; DATA_DIR, when set,
# is the CIFAR-10 copy of every run and evaluation (otherwise tfds downloads cifar10);
# CIFAR10C_DIR adds CIFAR-10-C to --then_eval; SWEEP_PYTHON replaces the python that
# `all` runs each command with (tests point it at a recorder).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
model_root="${MODEL_ROOT:-runs/cifar}"
final_step_key=max_steps
source "$here/scripts/sweep.sh"

# The 26 runs: CEB at rho = -1, -0.75, ..., 5 and the deterministic baseline.
matrix() {
  awk 'BEGIN { for (i = 0; i <= 24; i++) printf "ceb_rho%.2f --loss=ceb --rho=%.2f\n", -1 + i / 4, -1 + i / 4 }'
  echo "xent --loss=xent"
}

# The run's command: the trainer with the run's flags, DATA_DIR and all's extra flags.
run_command() {
  run_dir="${model_root}/$1"
  shift
  run_cmd=(python -m wrn_cifar.wrn_main "$@" "--model_dir=${run_dir}"
           ${DATA_DIR:+"--data_dir=${DATA_DIR}"} ${sweep_flags[@]+"${sweep_flags[@]}"})
}

# The evaluations --then_eval and --then_audit add after the run in run_dir.
follow_ups() {
  local action="$1" norm
  if ((sweep_then_eval)); then
    "$action" python -m eval.cifar_suite "--model_dir=${run_dir}" \
      ${DATA_DIR:+"--data_dir=${DATA_DIR}"} ${CIFAR10C_DIR:+"--cifar10c_dir=${CIFAR10C_DIR}"}
  fi
  if ((sweep_then_audit)); then
    for norm in linf l2; do
      "$action" python -m eval.audit --dataset cifar10 "--model_dir=${run_dir}" \
        ${DATA_DIR:+"--data_dir=${DATA_DIR}"} "--norm=${norm}"
    done
  fi
}

# The study module a `study` command's flags ask for: the second study for --preset overparam*.
study_module() {
  local previous=""
  for arg in "$@"; do
    if [[ "$arg" == --preset=overparam* || ( "$previous" == --preset && "$arg" == overparam* ) ]]; then
      echo studies.study2
      return
    fi
    previous="$arg"
  done
  echo studies.study
}

# The comment block at the top of this file.
usage() { awk 'NR == 1 { next } /^#/ { sub(/^# ?/, ""); print; next } { exit }' "$0"; }

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
case "$cmd" in
  -h|--help|help) usage; exit 0 ;;
  --dry_run) sweep_parse --dry_run "$@"; sweep_all; exit 0 ;;
  all)
    sweep_parse "$@"
    if ((sweep_dry_run)); then sweep_all; exit 0; fi ;;
  quickstart|train|eval|audit|mini|study) ;;
  *) echo "error: unknown command '${cmd}'" >&2; usage >&2; exit 2 ;;
esac

source "$here/scripts/bootstrap.sh"
ceb_bootstrap
cd "$here"
case "$cmd" in
  quickstart) exec python -m studies.quickstart "$@" ;;
  train) exec python -m wrn_cifar.wrn_main "$@" ;;
  eval) exec python -m eval.cifar_suite "$@" ;;
  audit) exec python -m eval.audit --dataset cifar10 "$@" ;;
  mini) exec python -m studies.mini "$@" ;;
  study) exec python -m "$(study_module "$@")" "$@" ;;
  all) sweep_all ;;
esac
