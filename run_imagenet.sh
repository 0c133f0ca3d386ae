#!/usr/bin/env bash
# The ImageNet experiments of section 3.2 (Table 1): one ResNet run, or the 86-run matrix.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: run_imagenet.sh COMMAND [resnet_main flags...]

  train [flags]      one run: python -m resnet_ceb.resnet_main [flags]
  --dry_run [flags]  print the 86 commands `all` runs, one per line (no setup needed)
  all [flags]        run the 86 training runs in order; extra flags go to every run
  eval --model_dir DIR [--data_dir TFRECORDS] [--imagenet_c_dir DIR] [--imagenet_a_dir DIR]
                     one model: clean, targeted PGD (eps=16, n=20, step 2, L2 and
                     L-inf), ImageNet-C and ImageNet-A, into model_dir/results
  --help             this text

Environment: DATA_DIR (ImageNet TFRecords, required by `all`) and
MODEL_ROOT (default runs/imagenet), under which each run gets its own --model_dir.

The matrix, for each depth in 50 and 152: XEnt and CEB rho=1..10 without
AutoAugment; XEnt and CEB rho=1..10 with AutoAugment; at width x2 with
AutoAugment: XEnt, CEB rho=1..10 and cCEB rho=1..10. Re-running `all` resumes
each run from its last checkpoint; finished runs return at once.
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

# Shell-quotes a command for printing; a literal --data_dir=$DATA_DIR stays as is.
print_command() {
  local arg out=()
  for arg in "$@"; do
    if [[ "$arg" == '--data_dir=$DATA_DIR' ]]; then
      out+=("$arg")
    else
      out+=("$(printf '%q' "$arg")")
    fi
  done
  echo "${out[*]}"
}

# Calls "$1 <command words...>" for every run, with the extra flags appended.
for_each_run() {
  local action="$1" data_dir="$2" root="${MODEL_ROOT:-runs/imagenet}" name flags
  shift 2
  while read -r name flags; do
    # shellcheck disable=SC2086  # $flags is a list of words without spaces.
    "$action" python -m resnet_ceb.resnet_main "--data_dir=${data_dir}" \
      "--model_dir=${root}/${name}" $flags "$@"
  done < <(matrix)
}

run_logged() {
  echo "+ $(print_command "$@")" >&2
  "$@"
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
    for_each_run print_command "${DATA_DIR:-\$DATA_DIR}" "$@"
    ;;
  train)
    bootstrap
    exec python -m resnet_ceb.resnet_main "$@"
    ;;
  all)
    if [[ -z "${DATA_DIR:-}" ]]; then
      echo "error: set DATA_DIR to the folder of ImageNet TFRecords (train-*, validation-*)" >&2
      exit 2
    fi
    bootstrap
    for_each_run run_logged "$DATA_DIR" "$@"
    ;;
  eval)
    bootstrap
    exec python -m eval.imagenet_suite "$@"
    ;;
  -h|--help|help)
    usage
    ;;
  *)
    usage >&2
    exit 2
    ;;
esac
