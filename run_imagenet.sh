#!/usr/bin/env bash
# The ImageNet experiments of section 3.2 (Table 1): one ResNet run, or the 86-run matrix.
set -euo pipefail
final_step_key=train_steps
source "$(dirname "${BASH_SOURCE[0]}")/scripts/sweep.sh"

usage() {
  cat <<'EOF'
usage: run_imagenet.sh COMMAND [resnet_main flags...]

  train [flags]      one run: python -m resnet_ceb.resnet_main [flags]
  --dry_run [flags]  print the 86 commands `all` runs, one per line (no setup needed)
  all [flags]        run the 86 training runs in order; extra flags go to every run
      --shard K/N    only runs K, K+N, K+2N, ... (K counts from 0): N tasks cover the 86 once
      --then_eval    after each run, its evaluation set (python -m eval.imagenet_suite)
      --then_audit   after each run, the robustness audit, L-inf and L2 (python -m eval.audit)
      --dry_run      print those commands instead of running them
  eval --model_dir DIR [--data_dir TFRECORDS] [--imagenet_c_dir DIR] [--imagenet_a_dir DIR]
                     one model: clean, targeted PGD (eps=16, n=20, step 2, L2 and
                     L-inf), ImageNet-C and ImageNet-A, into model_dir/results
  audit --model_dir DIR [flags]
                     the robustness audit: python -m eval.audit --dataset imagenet
  --help             this text

Environment: DATA_DIR (ImageNet TFRecords, required by `all`; also the validation
set of --then_eval and --then_audit), MODEL_ROOT (default runs/imagenet), under which
each run gets its own --model_dir, and for --then_eval IMAGENET_C_DIR and
IMAGENET_A_DIR (ImageNet-C and ImageNet-A, each skipped when unset). SWEEP_PYTHON
replaces the python that `all` runs each command with (tests point it at a recorder).

The matrix, for each depth in 50 and 152: XEnt and CEB rho=1..10 without
AutoAugment; XEnt and CEB rho=1..10 with AutoAugment; at width x2 with
AutoAugment: XEnt, CEB rho=1..10 and cCEB rho=1..10. A run that finished under
the same command (checkpoint at its last step) is skipped; a half-done one resumes
from its last checkpoint. On a SLURM array or a Kubernetes indexed job (create
.venv once first, e.g. with `./run_imagenet.sh train --help`):
  sbatch --array=0-85 --wrap './run_imagenet.sh all --shard ${SLURM_ARRAY_TASK_ID}/86 --then_eval'
  command: ["bash", "-c", "./run_imagenet.sh all --shard ${JOB_COMPLETION_INDEX}/86 --then_eval"]
EOF
}

# Prints "<run name> <flags...>" for every run of the matrix, in order.
matrix() {
  local depth rho
  for depth in 50 152; do
    echo "r${depth}_w1_xent --resnet_depth=${depth} --width_multiplier=1 --loss=xent"
    for rho in 1 2 3 4 5 6 7 8 9 10; do
      echo "r${depth}_w1_ceb_rho${rho} --resnet_depth=${depth} --width_multiplier=1 --loss=ceb --rho=${rho}"
    done
    echo "r${depth}_w1_aa_xent --resnet_depth=${depth} --width_multiplier=1 --augment_name=autoaugment --loss=xent"
    for rho in 1 2 3 4 5 6 7 8 9 10; do
      echo "r${depth}_w1_aa_ceb_rho${rho} --resnet_depth=${depth} --width_multiplier=1 --augment_name=autoaugment --loss=ceb --rho=${rho}"
    done
    echo "r${depth}_w2_aa_xent --resnet_depth=${depth} --width_multiplier=2 --augment_name=autoaugment --loss=xent"
    for rho in 1 2 3 4 5 6 7 8 9 10; do
      echo "r${depth}_w2_aa_ceb_rho${rho} --resnet_depth=${depth} --width_multiplier=2 --augment_name=autoaugment --loss=ceb --rho=${rho}"
    done
    for rho in 1 2 3 4 5 6 7 8 9 10; do
      echo "r${depth}_w2_aa_cceb_rho${rho} --resnet_depth=${depth} --width_multiplier=2 --augment_name=autoaugment --loss=cceb --rho=${rho}"
    done
  done
}

# The run's command; in --dry_run without DATA_DIR, a literal $DATA_DIR.
run_command() {
  run_dir="${MODEL_ROOT:-runs/imagenet}/$1"
  shift
  run_cmd=(python -m resnet_ceb.resnet_main "--data_dir=${DATA_DIR:-\$DATA_DIR}"
           "--model_dir=${run_dir}" "$@" ${sweep_flags[@]+"${sweep_flags[@]}"})
}

# The evaluations --then_eval and --then_audit add after the run in run_dir.
follow_ups() {
  local action="$1" data="--data_dir=${DATA_DIR:-\$DATA_DIR}" norm
  if ((sweep_then_eval)); then
    "$action" python -m eval.imagenet_suite "--model_dir=${run_dir}" "$data" \
      ${IMAGENET_C_DIR:+"--imagenet_c_dir=${IMAGENET_C_DIR}"} \
      ${IMAGENET_A_DIR:+"--imagenet_a_dir=${IMAGENET_A_DIR}"}
  fi
  if ((sweep_then_audit)); then
    for norm in linf l2; do
      "$action" python -m eval.audit --dataset imagenet "--model_dir=${run_dir}" "$data" \
        "--norm=${norm}"
    done
  fi
}

# Activates the project's venv (creating it the first time); stays in the caller's directory.
bootstrap() {
  source "$(dirname "${BASH_SOURCE[0]}")/scripts/bootstrap.sh"
  ceb_bootstrap
}

command="${1:-}"
[[ $# -gt 0 ]] && shift
case "$command" in
  --dry_run|dry_run)
    sweep_parse --dry_run "$@"
    sweep_all
    ;;
  train)
    bootstrap
    exec python -m resnet_ceb.resnet_main "$@"
    ;;
  all)
    sweep_parse "$@"
    if ((sweep_dry_run)); then
      sweep_all
      exit 0
    fi
    if [[ -z "${DATA_DIR:-}" ]]; then
      echo "error: set DATA_DIR to the folder of ImageNet TFRecords (train-*, validation-*)" >&2
      exit 2
    fi
    bootstrap
    sweep_all
    ;;
  eval)
    bootstrap
    exec python -m eval.imagenet_suite "$@"
    ;;
  audit)
    bootstrap
    exec python -m eval.audit --dataset imagenet "$@"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
