# shellcheck shell=bash
# Shared harness of edgepull's benchmarks (sourced, never executed).
#
# Benchmarks reuse the integration-test harness (tests/lib/common.sh: the
# temp dir, the cleanup trap that also runs on Ctrl-C, free ports, starting
# docker-registry and edgepulld) and add what only benchmarks need: option
# parsing, a release build, repetitions reduced to median and min-max, and
# results as a markdown table on stdout plus a CSV under bench/results/.
# They report ratios against a baseline measured in the same run and never
# assert times; the only checks are about correctness (bytes, status, the
# number of upstream fetches), reported as PASS/FAIL lines.

BENCH_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
EP_SOURCE_DIR=${EP_SOURCE_DIR:-$(cd "$BENCH_DIR/.." && pwd)}
export EP_SOURCE_DIR
# shellcheck source-path=SCRIPTDIR source=../tests/lib/common.sh
. "$EP_SOURCE_DIR/tests/lib/common.sh"
# shellcheck source-path=SCRIPTDIR source=../tests/lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

BENCH_REPS=${BENCH_REPS:-3}
BENCH_RESULTS=${BENCH_RESULTS:-$BENCH_DIR/results}
BENCH_STAMP=${BENCH_STAMP:-$(date +%Y%m%d-%H%M%S)}
BENCH_ROWS=()   # markdown rows
BENCH_CSV=()    # CSV rows
BENCH_NOTES=()  # lines printed under the table
BENCH_BUILD_TYPE=unknown
BENCH_LOAD_START=$(cut -d" " -f1-3 /proc/loadavg)

# --- options -----------------------------------------------------------------

bench_usage() { # SCRIPT_SUMMARY EXTRA_HELP
  cat <<EOF
usage: $(basename "$0") [OPTIONS]
$1

Options:
  --reps N           repetitions (default $BENCH_REPS)
$2  --build-dir DIR    edgepull build dir (default \$EP_BUILD_DIR or <repo>/build;
                     configured as Release and built when it has no edgepulld)
  --results-dir DIR  where the CSV goes (default bench/results)
  -h, --help         this help
Environment: EP_BUILD_DIR, BENCH_REPS, BENCH_RESULTS, BENCH_STAMP (file name stamp).
EOF
}

# bench_parse_args "SUMMARY" "EXTRA_HELP" ARGS...: common options; the
# script's own options are VAR=value pairs declared in BENCH_OPTS as
# "--flag:VARIABLE" words, each taking one positive integer.
bench_parse_args() {
  local summary=$1 extra=$2 o var found
  shift 2
  while [ $# -gt 0 ]; do
    case $1 in
    -h | --help)
      bench_usage "$summary" "$extra"
      exit 0
      ;;
    --reps)
      BENCH_REPS=${2:?--reps needs a value}
      shift 2
      ;;
    --build-dir)
      EP_BUILD_DIR=${2:?--build-dir needs a value}
      shift 2
      ;;
    --results-dir)
      BENCH_RESULTS=${2:?--results-dir needs a value}
      shift 2
      ;;
    *)
      found=
      for o in ${BENCH_OPTS:-}; do
        if [ "$1" = "${o%%:*}" ]; then
          var=${o#*:}
          [ $# -ge 2 ] || bench_usage_error "$1 needs a value"
          printf -v "$var" '%s' "$2"
          found=1
        fi
      done
      [ -n "$found" ] || bench_usage_error "unknown option '$1'"
      shift 2
      ;;
    esac
  done
  bench__check_int --reps "$BENCH_REPS"
  for o in ${BENCH_OPTS:-}; do
    var=${o#*:}
    bench__check_int "${o%%:*}" "${!var}"
  done
  EP_BUILD_DIR=$(realpath -m "$EP_BUILD_DIR")
  export EP_BUILD_DIR
}

bench_usage_error() {
  echo "$(basename "$0"): $*" >&2
  echo "try --help" >&2
  exit 2
}

bench__check_int() { # FLAG VALUE
  [[ $2 =~ ^[1-9][0-9]{0,6}$ ]] || bench_usage_error "$1 wants a positive integer, not '$2'"
}

# --- build -------------------------------------------------------------------

# bench_ensure_build: an edgepulld in EP_BUILD_DIR, configured as Release when
# the dir is new. Warns when the build is not an optimized one without
# sanitizers: its figures would not mean much.
bench_ensure_build() {
  local cache=$EP_BUILD_DIR/CMakeCache.txt san
  if [ ! -x "$EP_BUILD_DIR/plugin/edgepulld" ]; then
    ep_require_cmd cmake
    if [ ! -f "$cache" ]; then
      ep_log "configuring a Release build in $EP_BUILD_DIR"
      cmake -S "$EP_SOURCE_DIR" -B "$EP_BUILD_DIR" -DCMAKE_BUILD_TYPE=Release \
        -DEDGEPULL_TESTS=OFF >"$EP_TMP/cmake.log" 2>&1 ||
        { tail -n 30 "$EP_TMP/cmake.log"; ep_die "cmake configure failed"; }
    fi
    ep_log "building edgepulld in $EP_BUILD_DIR"
    cmake --build "$EP_BUILD_DIR" -j"$(nproc)" --target edgepulld >>"$EP_TMP/cmake.log" 2>&1 ||
      { tail -n 30 "$EP_TMP/cmake.log"; ep_die "building edgepulld failed"; }
  fi
  BENCH_BUILD_TYPE=$(sed -n 's/^CMAKE_BUILD_TYPE:[A-Z]*=//p' "$cache" 2>/dev/null)
  BENCH_BUILD_TYPE=${BENCH_BUILD_TYPE:-none}
  san=$(sed -n 's/^EDGEPULL_SANITIZE:[A-Z]*=//p' "$cache" 2>/dev/null)
  case $san in ON | on | TRUE | true | 1) BENCH_BUILD_TYPE="$BENCH_BUILD_TYPE+sanitizers" ;; esac
  case $BENCH_BUILD_TYPE in
  Release | RelWithDebInfo) ;;
  *) ep_log "WARNING: $EP_BUILD_DIR is a '$BENCH_BUILD_TYPE' build; use a Release build for figures" ;;
  esac
}

# --- data --------------------------------------------------------------------

# bench_random_file FILE MIB: incompressible bytes; prints "sha256:<hex>".
bench_random_file() {
  local hex
  hex=$(head -c "$2M" /dev/urandom | tee "$1" | sha256sum | cut -d' ' -f1)
  echo "sha256:$hex"
}

# bench_push_blob REPO FILE DIGEST: monolithic upload (POST, then PUT with
# ?digest=) into the registry, streamed from the file.
bench_push_blob() {
  local repo=$1 file=$2 digest=$3 loc sep code
  loc=$(ep_curl -f -X POST -D - -o /dev/null "$REGISTRY_URL/v2/$repo/blobs/uploads/" |
    tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')
  [ -n "$loc" ] || ep_die "registry gave no upload location for $repo"
  case $loc in http*) ;; *) loc=$REGISTRY_URL$loc ;; esac
  case $loc in *\?*) sep='&' ;; *) sep='?' ;; esac
  code=$(timeout -k 5 900 curl -sS -o /dev/null -w '%{http_code}' -X PUT \
    -H 'Content-Type: application/octet-stream' -T "$file" "$loc${sep}digest=$digest")
  [ "$code" = 201 ] || ep_die "blob upload of $file to $repo answered $code"
}

# bench_wait_stored DIGEST SECONDS: until edgepulld committed the blob.
bench_wait_stored() {
  local f deadline=$((SECONDS + $2))
  f=$(ep_store_blob "$1")
  until [ -f "$f" ]; do
    [ "$SECONDS" -lt "$deadline" ] || return 1
    sleep 0.1
  done
}

# bench_fresh_edgepulld ARGS...: stop the running edgepulld (if any), give it
# an empty state dir and start it again on the same port.
bench_fresh_edgepulld() {
  if [ -n "${EP_PID:-}" ]; then
    ep_stop_pid "$EP_PID" 15 || true
  fi
  if [ -n "${EP_STATE:-}" ]; then
    rm -rf "$EP_STATE"
  fi
  EP_STATE=
  ep_start_edgepulld "$@"
}

bench_now() {
  date +%s.%N
}

# --- numbers -----------------------------------------------------------------

# bench_calc EXPR: awk arithmetic on floats, e.g. bench_calc "$a / $b".
bench_calc() {
  awk "BEGIN { printf \"%.6f\", $1 }"
}

# bench_stats VALUE...: "median min max" of the values.
bench_stats() {
  printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 }
    END { if (NR == 0) { print "nan nan nan"; exit }
          m = (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2
          printf "%.6f %.6f %.6f\n", m, v[1], v[NR] }'
}

# bench_record METRIC UNIT FORMAT VALUE...: one result line (median of the
# values, their min-max) for the table and the CSV.
bench_record() {
  local metric=$1 unit=$2 fmt=$3 med lo hi row
  shift 3
  read -r med lo hi < <(bench_stats "$@")
  if [ $# -eq 1 ]; then
    row=$(printf "| %s | $fmt | – | %s | %d |" "$metric" "$med" "$unit" $#)
  else
    row=$(printf "| %s | $fmt | $fmt – $fmt | %s | %d |" "$metric" "$med" "$lo" "$hi" "$unit" $#)
  fi
  BENCH_ROWS+=("$row")
  BENCH_CSV+=("$(printf '%s,"%s",%s,%d,%s,%s,%s,%s' "$EP_TEST_NAME" "$metric" "$unit" $# \
    "$med" "$lo" "$hi" "$*")")
}

bench_note() {
  BENCH_NOTES+=("$*")
}

# bench_report TITLE: print the markdown table and write the CSV.
bench_report() {
  local csv row
  mkdir -p "$BENCH_RESULTS"
  csv=$BENCH_RESULTS/$EP_TEST_NAME-$BENCH_STAMP.csv
  {
    echo "benchmark,metric,unit,reps,median,min,max,samples"
    printf '%s\n' "${BENCH_CSV[@]}"
  } >"$csv"
  printf '\n### %s\n\n' "$1"
  printf '%s, %s CPUs, edgepulld %s build, %s; load average %s at start, %s at end\n\n' \
    "$(uname -srm)" "$(nproc)" "$BENCH_BUILD_TYPE" "$(date -u +%Y-%m-%dT%H:%MZ)" \
    "$BENCH_LOAD_START" "$(cut -d" " -f1-3 /proc/loadavg)"
  echo "| metric | median | min – max | unit | n |"
  echo "| --- | ---: | ---: | --- | ---: |"
  for row in "${BENCH_ROWS[@]}"; do echo "$row"; done
  if [ ${#BENCH_NOTES[@]} -gt 0 ]; then
    echo
    for row in "${BENCH_NOTES[@]}"; do echo "$row"; done
  fi
  printf '\nCSV: %s\n\n' "$csv"
}
