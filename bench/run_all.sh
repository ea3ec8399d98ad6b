#!/usr/bin/env bash
# Runs every benchmark of edgepull with the same options and prints each one's
# table, then one summary of the headline rows (those in bold) of them all.
# Exit status: 0 when every benchmark ran and its checks passed, else 1.
set -uo pipefail
BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
export LC_ALL=C

usage() {
  cat <<EOF
usage: $(basename "$0") [--reps N] [--build-dir DIR] [--results-dir DIR] [--quick]
Runs serve_cached.sh, cold_pull.sh and rss_fanout.sh and prints a summary.
  --reps N           repetitions of each benchmark (default 3)
  --build-dir DIR    edgepull build dir (default \$EP_BUILD_DIR or <repo>/build)
  --results-dir DIR  where the CSVs go (default bench/results)
  --quick            small sizes (128 MiB blobs, a 40 MiB image) for a smoke run
EOF
}

common=() quick=0
while [ $# -gt 0 ]; do
  case $1 in
  -h | --help)
    usage
    exit 0
    ;;
  --reps | --build-dir | --results-dir)
    [ $# -ge 2 ] || { echo "$1 needs a value" >&2; exit 2; }
    common+=("$1" "$2")
    shift 2
    ;;
  --quick)
    quick=1
    shift
    ;;
  *)
    echo "unknown option '$1'" >&2
    usage >&2
    exit 2
    ;;
  esac
done

results=$BENCH_DIR/results
for ((i = 0; i < ${#common[@]}; i += 2)); do
  [ "${common[i]}" != --results-dir ] || results=${common[i + 1]}
done
BENCH_STAMP=$(date +%Y%m%d-%H%M%S)
export BENCH_STAMP

declare -A extra=([serve_cached]="" [cold_pull]="" [rss_fanout]="")
if [ "$quick" = 1 ]; then
  extra=([serve_cached]="--size 128" [cold_pull]="--size 40" [rss_fanout]="--size 128")
fi

failed=() t0=$SECONDS
for b in serve_cached cold_pull rss_fanout; do
  echo "=== $b"
  # shellcheck disable=SC2086 # the extra options are words
  if ! bash "$BENCH_DIR/$b.sh" "${common[@]}" ${extra[$b]}; then
    failed+=("$b")
  fi
done

echo
echo "## Summary ($((SECONDS - t0)) s in all)"
echo
echo "| benchmark | metric | median | min – max | unit |"
echo "| --- | --- | ---: | ---: | --- |"
for b in serve_cached cold_pull rss_fanout; do
  csv=$results/bench_$b-$BENCH_STAMP.csv
  [ -f "$csv" ] || { echo "| $b | (no results) | | | |"; continue; }
  # metric is the only quoted field and never holds a quote itself.
  awk -v b="$b" -F '"' 'function fmt(v) { return (v >= 100) ? sprintf("%.0f", v) : sprintf("%.3g", v) }
    NR > 1 && ($2 ~ /\*\*/ || $2 ~ /must be/) {
      split($3, f, ","); m = $2; gsub(/\*\*/, "", m)
      printf "| %s | %s | %s | %s – %s | %s |\n", b, m, fmt(f[4]), fmt(f[5]), fmt(f[6]), f[2] }' "$csv"
done
echo
echo "CSVs: $results/*-$BENCH_STAMP.csv"
if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
