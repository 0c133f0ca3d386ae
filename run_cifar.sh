#!/usr/bin/env bash
# CIFAR-10 experiments of section 3.1 (WRN-28x10, no BatchNorm).
#
#   ./run_cifar.sh quickstart [--data_dir DIR]   the main job in small (~15 min on 2 CPU cores)
#   ./run_cifar.sh train [flags]                 one run: python -m wrn_cifar.wrn_main [flags]
#   ./run_cifar.sh --dry_run                     print the 26 training runs of the paper's matrix
#   ./run_cifar.sh all [flags]                   run the 26 (extra flags go to every run)
#   ./run_cifar.sh eval --model_dir DIR [flags]  clean, PGD L-inf and L2 over eps, CIFAR-10-C
#   ./run_cifar.sh mini [--data_dir DIR]         real-data miniature of Figures 1-2 (~60 min)
#
# The matrix writes under ${MODEL_ROOT:-runs/cifar} and reads ${DATA_DIR} when set
# (otherwise tfds downloads cifar10).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
model_root="${MODEL_ROOT:-runs/cifar}"

# The 26 runs: CEB at rho = -1, -0.75, ..., 5 and the deterministic baseline.
matrix() {
  local data_flag="" i rho
  [[ -n "${DATA_DIR:-}" ]] && data_flag=" --data_dir=${DATA_DIR}"
  for i in $(seq 0 24); do
    rho="$(awk -v i="$i" 'BEGIN { printf "%.2f", -1 + 0.25 * i }')"
    echo "python -m wrn_cifar.wrn_main --loss=ceb --rho=${rho} --model_dir=${model_root}/ceb_rho${rho}${data_flag}"
  done
  echo "python -m wrn_cifar.wrn_main --loss=xent --model_dir=${model_root}/xent${data_flag}"
}

usage() { sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; }

cmd="${1:-}"
[[ $# -gt 0 ]] && shift
for arg in "$cmd" "$@"; do
  if [[ "$arg" == "--dry_run" ]]; then matrix; exit 0; fi
done
case "$cmd" in
  -h|--help|help) usage; exit 0 ;;
  quickstart|train|all|eval|mini) ;;
  *) echo "error: unknown command '${cmd}'" >&2; usage >&2; exit 2 ;;
esac

source "$here/scripts/bootstrap.sh"
ceb_bootstrap
cd "$here"
case "$cmd" in
  quickstart) exec python -m studies.quickstart "$@" ;;
  train) exec python -m wrn_cifar.wrn_main "$@" ;;
  eval) exec python -m eval.cifar_suite "$@" ;;
  mini) exec python -m studies.mini "$@" ;;
  all)
    matrix | while read -r line; do
      echo "== $line $*"
      # shellcheck disable=SC2086
      $line "$@"
    done ;;
esac
