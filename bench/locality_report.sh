# shellcheck shell=bash
# bench/locality's report (sourced by bench/locality): runs.csv reduced to
# summary.csv (median and min-max per scenario, topology and N), summary.md
# (the tables and the targets of issue 5 with the figures measured), and
# the PNG figures drawn by gnuplot from bench/locality.gp.

# loc__summarize: summary.csv from runs.csv.
loc__summarize() {
  {
    echo "scenario,topology,nodes,runs,ok_runs,median_s,min_s,max_s,copies_median,copies_max,lan_util_median,rss_max_kib,cpu_max_s"
    # mawk (Debian's awk) has no asort: a tiny insertion sort does.
    tail -n +2 "$LOC_OUT/runs.csv" | sort -t, -k1,1 -k2,2 -k3,3n -k6,6g | awk -F, '
      function isort(a, n,   i, j, v) {
        for (i = 2; i <= n; i++) {
          v = a[i]
          for (j = i - 1; j >= 1 && a[j] > v; j--) a[j + 1] = a[j]
          a[j + 1] = v
        }
      }
      function med(a, n) { return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2 }
      function flush() {
        if (k == "") return
        isort(cp, c); isort(ut, c)
        m = med(t, c); mc = med(cp, c); mu = med(ut, c)
        printf "%s,%d,%d,%.3f,%.3f,%.3f,%.3f,%.3f,%.3f,%s,%s\n", k, c, ok, m, t[1], t[c], mc,
          cp[c], mu, rss, cpu
      }
      { key = $1 "," $2 "," $3
        if (key != k) { flush(); k = key; c = 0; ok = 0; rss = ""; cpu = ""; delete t; delete cp; delete ut }
        c++; t[c] = $6 + 0; cp[c] = $11 + 0; ut[c] = $12 + 0; ok += $5
        if ($13 != "" && $13 + 0 > rss + 0) rss = $13
        if ($15 != "" && $15 + 0 > cpu + 0) cpu = $15 }
      END { flush() }'
  } >"$LOC_OUT/summary.csv"
}

# loc__get SCENARIO TOPOLOGY N FIELD: one cell of summary.csv ("" if none).
loc__get() {
  awk -F, -v s="$1" -v t="$2" -v n="$3" -v f="$4" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == s && $2 == t && $3 == n { print $col[f]; exit }' "$LOC_OUT/summary.csv"
}

# The series of Figure 5: "scenario topology" per line.
loc__series() {
  tail -n +2 "$LOC_OUT/summary.csv" | cut -d, -f1,2 | grep -v '^edgepull-delta,' |
    awk -F, '{ o = ($1 == "baseline") ? 0 : ($1 == "edgepull-pull") ? 1 : 2; print o, $1, $2 }' |
    sort -u | cut -d' ' -f2-
}

loc__cell() { # SCENARIO TOPOLOGY N: "median (min–max)" or "–", one read of summary.csv
  local m lo hi runs ok
  read -r m lo hi runs ok < <(awk -F, -v s="$1" -v t="$2" -v n="$3" '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
    $1 == s && $2 == t && $3 == n {
      print $col["median_s"], $col["min_s"], $col["max_s"], $col["runs"], $col["ok_runs"]; exit }' \
    "$LOC_OUT/summary.csv")
  [ -n "${m:-}" ] || { echo "–"; return; }
  if [ "$runs" -gt 1 ]; then
    printf '%.1f (%.1f–%.1f)' "$m" "$lo" "$hi"
  else
    printf '%.1f' "$m"
  fi
  [ "$ok" = "$runs" ] || printf ' ⚠'
}

loc__param() { # KEY
  sed -n "s/^$1=//p" "$LOC_OUT/params.txt"
}

# loc__tables: the time and uplink tables of summary.md.
# loc__cpu_table: where the CPU went at the largest N, medians over the
# repetitions, the delta deploy left out (its edgepullds did a deploy before;
# runs.csv from before these columns: nothing): the CPU
# seconds of every edgepulld and of every client, what they are of all the
# CPU the machine had while the run lasted (its cores x the run's time),
# and how busy /proc/stat says the machine was (other processes and the
# kernel's emulation of the links included). The processes' own accounting
# and /proc/stat's ticks are not exact against each other on this VM: the
# first is the measure, the second says whether the cores were full.
# Where runs.csv has the kernel threads' CPU (the loop devices' workers of
# --disk sd among them), a last column gives (clients + kernel threads) ÷
# cores: how long the run would still take on these cores if every
# edgepulld used no CPU at all.
loc__cpu_table() {
  local nmax cores
  nmax=$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, 'NF >= 21 && $3 > m { m = $3 } END { print m + 0 }')
  [ "$nmax" -gt 0 ] || return 0
  cores=$(loc__param machine | sed -n 's/.*, \([0-9][0-9]*\) CPUs.*/\1/p')
  printf '\nCPU at N = %s, median per run: the CPU seconds of every edgepulld together (their whole life) and of every client (skopeo) together; both of them against all the CPU the machine had while the run lasted (%s cores x the time); the machine'"'"'s busy share (/proc/stat: every process, other users'"'"' too, and the kernel); the kernel threads'"'"' CPU seconds (writeback, and with --disk sd the loop devices'"'"' workers that copy each card'"'"'s writes into its backing file); and (clients + kernel threads) ÷ cores, the time the run would still take if the edgepullds used no CPU:\n\n' "$nmax" "${cores:-?}"
  printf '| scenario | topology | provisioning s | edgepullds CPU s | clients CPU s | both ÷ (cores × time) | machine busy | kernel threads CPU s | (clients + kernel threads) ÷ cores |\n| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n'
  tail -n +2 "$LOC_OUT/runs.csv" | awk -F, -v n="$nmax" 'NF >= 21 && $3 == n && $1 != "edgepull-delta" { print $1 "," $2, $6, $19, $20, $18, ($22 == "" ? "-" : $22) }' |
    sort | awk -v cores="${cores:-0}" '
      function med(s,   a, k, i, j, v) { k = split(s, a, " ")
        for (i = 2; i <= k; i++) { v = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > v; j--) a[j + 1] = a[j]; a[j + 1] = v }
        return a[int((k + 1) / 2)] }
      function flush(   p, tt, e2, c2, k2) { split(key, p, ","); tt = med(t); e2 = med(e); c2 = med(c)
        k2 = (k ~ /-/ ? "" : med(k))
        printf "| %s | %s | %.1f | %.1f | %.1f | %s | %.0f %% | %s | %s |\n", p[1], p[2], tt, e2, c2,
          (cores > 0 && tt > 0 ? sprintf("%.0f %%", (e2 + c2) / (cores * tt) * 100) : "?"), med(b) * 100,
          (k2 == "" ? "–" : sprintf("%.1f", k2)),
          (k2 == "" || cores <= 0 ? "–" : sprintf("%.1f s", (c2 + k2) / cores))
        t = e = c = b = k = "" }
      { if ($1 != key && key != "") flush(); key = $1; t = t " " $2; e = e " " $3; c = c " " $4; b = b " " $5; k = k " " $6 }
      END { if (key != "") flush() }'
}

loc__tables() {
  local n sc tp head sep row up
  head="| N |"
  sep="| ---: |"
  while read -r sc tp; do
    [ "$tp" = - ] && head+=" $sc |" || head+=" ${sc#edgepull-} $tp |"
    sep+=" ---: |"
  done < <(loc__series)
  printf '### Locality provisioning time in seconds, median (min–max)\n\n'
  printf '%s baseline ÷ fastest edgepull |\n%s ---: |\n' "$head" "$sep"
  for n in "${LOC_NS[@]}"; do
    row="| $n |"
    while read -r sc tp; do row+=" $(loc__cell "$sc" "$tp" "$n") |"; done < <(loc__series)
    printf '%s %s |\n' "$row" "$(loc__speedup "$n")"
  done
  printf '\n### Uplink, in copies of the image (blob bytes the registry served ÷ image), median\n\n'
  printf '%s\n%s\n' "$head" "$sep"
  for n in "${LOC_NS[@]}"; do
    row="| $n |"
    while read -r sc tp; do
      up=$(loc__get "$sc" "$tp" "$n" copies_median)
      row+=" ${up:-–} |"
    done < <(loc__series)
    echo "$row"
  done
  echo
}

# loc__best N: "scenario topology median" of the fastest edgepull series at N.
loc__best() {
  tail -n +2 "$LOC_OUT/summary.csv" |
    awk -F, -v n="$1" '$3 == n && $1 != "baseline" && $1 != "edgepull-delta" { print $1, $2, $6 }' |
    sort -k3,3g | head -n 1
}

loc__speedup() { # N
  local b best
  b=$(loc__get baseline - "$1" median_s)
  best=$(loc__best "$1")
  [ -n "$b" ] && [ -n "$best" ] || { echo "–"; return; }
  awk -v b="$b" -v e="${best##* }" 'BEGIN { printf "%.2f ×", (e > 0 ? b / e : 0) }'
}

# loc__target WHAT MEASURED OK: one row of the targets table.
loc__target() {
  printf '| %s | %s | %s |\n' "$1" "$2" "$([ "$3" = 1 ] && echo met || echo "**missed**")"
}

loc__cmp() { # A OP B: 1 when the comparison of floats holds, else 0
  awk -v a="$1" -v b="$3" "BEGIN { print (a $2 b) ? 1 : 0 }"
}

# loc__targets: issue 5's targets, each with the figure measured here.
loc__targets() {
  local nmax=${LOC_NS[-1]} one sc tp e r util rss anon cmax delta ok
  one=$(loc__get baseline - 1 median_s)
  printf '### Targets\n\n| target | measured here | |\n| --- | --- | --- |\n'
  if [ -n "$one" ]; then
    read -r sc tp e < <(loc__best "$nmax")
    if [ -n "${e:-}" ]; then
      r=$(awk -v a="$e" -v b="$one" 'BEGIN { printf "%.2f", a / b }')
      loc__target "N = $nmax: provisioning ≤ 1.15 × one node's direct pull" \
        "$r × ($sc $tp $(printf %.1f "$e") s; one node's pull $(printf %.1f "$one") s)" \
        "$(loc__cmp "$r" "<=" 1.15)"
      r=$(awk -v a="$(loc__get baseline - "$nmax" median_s)" -v b="$e" 'BEGIN { printf "%.2f", a / b }')
      loc__target "N = $nmax: ≥ 9 × faster than the baseline" "$r ×" \
        "$(loc__cmp "$r" ">=" 9)"
    fi
    e=$(loc__get edgepull-pull "${LOC_TOPO_LIST[0]}" 1 median_s)
    if [ -n "$e" ]; then
      r=$(awk -v a="$e" -v b="$one" 'BEGIN { printf "%.3f", a / b }')
      loc__target "N = 1: within 3 % of a direct pull (edgepull-pull ${LOC_TOPO_LIST[0]})" \
        "$r × ($(printf %.2f "$e") s against $(printf %.2f "$one") s)" \
        "$(loc__cmp "$r" "<=" 1.03)"
    fi
  fi
  local mode tls plain
  for mode in deploy pull; do
    for tp in "${LOC_TOPO_LIST[@]}"; do
      tls=$(loc__get "edgepull-$mode" "$tp" "$nmax" median_s)
      plain=$(loc__get "edgepull-$mode-plain" "$tp" "$nmax" median_s)
      [ -n "$tls" ] && [ -n "$plain" ] || continue
      r=$(awk -v a="$tls" -v b="$plain" 'BEGIN { printf "%.3f", (b > 0 ? a / b : 0) }')
      loc__target "N = $nmax: peer TLS ≤ 1.05 × plain HTTP (edgepull-$mode $tp)" \
        "$r × ($(printf %.2f "$tls") s against $(printf %.2f "$plain") s)" "$(loc__cmp "$r" "<=" 1.05)"
    done
  done
  cmax=$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, '$1 != "baseline" && $1 != "edgepull-delta" {
    if ($11 > m) m = $11 } END { printf "%.3f", m }')
  loc__target "uplink = 1.00 × the image at every N (edgepull, every run)" "at most $cmax ×" \
    "$(loc__cmp "$cmax" "<=" 1.005)"
  delta=$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, '$1 == "edgepull-delta" {
    if ($11 > m) m = $11; seen = 1 } END { if (seen) printf "%.3f", m }')
  [ -z "$delta" ] || loc__target "the delta deploy sends only the new layers" \
    "$delta × the new blobs ($(loc__param new_bytes) B)" "$(loc__cmp "$delta" "<=" 1.005)"
  util=$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, -v n="$nmax" '$3 == n && $1 ~ /^edgepull-(pull|deploy)$/ {
    if ($12 > m) { m = $12; w = $1 " " $2 } } END { if (w != "") printf "%.3f %s", m, w }')
  if [ -n "$util" ]; then
    loc__target "a node's LAN port ≥ 90 % used while streaming (n1, N = $nmax)" \
      "$(awk -v u="${util%% *}" 'BEGIN { printf "%.0f %%", u * 100 }') (${util#* })" \
      "$(loc__cmp "${util%% *}" ">=" 0.9)"
  fi
  rss=$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, '$13 != "" && $13 > m { m = $13 } END { print m + 0 }')
  if [ "$rss" -gt 0 ]; then
    ok=$(loc__cmp "$rss" "<=" 8192)
    anon=$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, '$17 != "" && $17 > m { m = $17 } END { print m + 0 }')
    loc__target "peak RSS per edgepulld ≤ 8 MB" \
      "$(awk -v r="$rss" -v a="$anon" 'BEGIN { printf "%.1f MiB VmHWM; %.1f MiB of it edgepulld'"'"'s own (peak RssAnon), the rest pages of shared libraries", r / 1024, a / 1024 }')" "$ok"
  fi
  echo
}

# loc_report: summary.csv, the data files of Figure 5 and summary.md.
loc_report() {
  local sc tp
  loc__summarize
  mkdir -p "$LOC_OUT/plot"
  rm -f "$LOC_OUT"/plot/fig5_*.dat
  while read -r sc tp; do
    awk -F, -v s="$sc" -v t="$tp" 'NR > 1 && $1 == s && $2 == t { print $3, $6, $7, $8 }' \
      "$LOC_OUT/summary.csv" >"$LOC_OUT/plot/fig5_${sc}_${tp/:/}.dat"
  done < <(loc__series)
  {
    printf '## edgepull against plain pulls in an emulated locality\n\n'
    printf 'Measured by `bench/locality%s` on %s (%s), %s build, stores on %s.\n' \
      "${LOC_ARGS:+ $LOC_ARGS}" "$(loc__param machine)" "$(loc__param date)" "$(loc__param build)" \
      "$(loc__param fs)"
    printf 'Image: %s MB in %s incompressible layers (%s B of blobs); uplink %s Mbit/s; LAN %s Mbit/s per node port (the gateway'"'"'s %s); %s repetition(s); topologies %s.\n\n' \
      "$(loc__param size_mb)" "$(loc__param layers)" "$(loc__param image_bytes)" \
      "$(loc__param uplink_mbps)" "$(loc__param lan_mbps)" "$(loc__param gw_lan_mbps)" \
      "$(loc__param reps)" "$(loc__param topologies)"
    loc__tables
    loc__targets
    printf 'Peak RSS (VmHWM) of the edgepullds, largest per run: %s KiB; CPU seconds of the busiest edgepulld: %s.\n' \
      "$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, '$13 != "" { print $13 }' | sort -n | tail -n 1)" \
      "$(tail -n +2 "$LOC_OUT/runs.csv" | awk -F, '$15 != "" { print $15 }' | sort -g | tail -n 1)"
    loc__cpu_table
    [ ! -f "$LOC_OUT/disk.csv" ] || {
      printf '\nBytes written to each node'"'"'s SD device by its own blkio group and by the root group (the kernel'"'"'s writeback), and the write limits in force there, B/s (disk.csv):\n\n```\n'
      cat "$LOC_OUT/disk.csv"
      printf '```\n'
    }
  } >"$LOC_OUT/summary.md"
}

# loc__pick SCENARIO TOPOLOGY N: the samples file of that run's first repetition.
loc__pick() {
  local f=$LOC_OUT/samples/${1}_${2}_N${3}_r1.csv
  [ -f "$f" ] && echo "$f"
}

# loc_plots: fig2.png (the paper's model), fig5.png (time against N),
# fig6.png (uplink throughput) and fig7.png (n1's LAN throughput), each at
# the largest N, baseline against the fastest edgepull series.
loc_plots() {
  local nmax=${LOC_NS[-1]} sc tp e series="" base sd
  while read -r sc tp; do series+="${sc}_${tp/:/} "; done < <(loc__series)
  read -r sc tp e < <(loc__best "$nmax") || true
  base=$(loc__pick baseline - "$nmax") || base=
  sd=
  [ -z "${sc:-}" ] || sd=$(loc__pick "$sc" "$tp" "$nmax") || sd=
  gnuplot -e "out='$LOC_OUT'; series='${series% }'; size_mb=$(loc__param image_bytes)/1e6;
    lan=$LOC_LAN; up=$LOC_UPLINK; nmax=$nmax; base='$base'; sd='$sd';
    sdname='${sc:-} ${tp:-}'" "$BENCH_LOC_DIR/locality.gp" 2>"$EP_TMP/gnuplot.log" ||
    { cat "$EP_TMP/gnuplot.log" >&2; ep_fail "gnuplot failed"; return 0; }
  ep_log "figures: $(cd "$LOC_OUT" && ls -- *.png | tr '\n' ' ')"
}

# loc_disks_report DISK...: LOC_OUT/summary.md comparing the disks (each
# measured in LOC_OUT/DISK): at every N, every series' median and its ratio
# to one node's direct pull on the same disk (issue 11's aim: ≤ 1.15 × at
# N = 21 with SD-class disks); then each disk's own summary.
loc_disks_report() {
  local top=$LOC_OUT d n sc tp one t row head sep
  head="| disk | N | one node's direct pull |"
  sep="| --- | ---: | ---: |"
  LOC_OUT=$top/$1
  while read -r sc tp; do
    [ "$tp" = - ] && head+=" $sc |" || head+=" ${sc#edgepull-} $tp |"
    sep+=" ---: |"
  done < <(loc__series)
  {
    printf '## edgepull on each disk

'
    printf 'Measured by `bench/locality%s`. Provisioning time in seconds (median) and, in
' \
      "${LOC_ARGS:+ $LOC_ARGS}"
    printf 'parentheses, its ratio to one node'"'"'s direct pull (baseline, N = 1) on the same disk.

'
    for d in "$@"; do
      LOC_OUT=$top/$d
      printf -- '- **%s**: %s\n' "$d" "$(loc__param fs)"
    done
    printf '\n%s\n%s\n' "$head" "$sep"
    for d in "$@"; do
      LOC_OUT=$top/$d
      one=$(loc__get baseline - 1 median_s)
      for n in "${LOC_NS[@]}"; do
        row="| $d | $n | $([ -n "$one" ] && printf %.1f "$one" || echo –) |"
        while read -r sc tp; do
          t=$(loc__get "$sc" "$tp" "$n" median_s)
          if [ -z "$t" ]; then
            row+=" – |"
          elif [ -n "$one" ]; then
            row+=" $(awk -v t="$t" -v o="$one" 'BEGIN { printf "%.1f (%.2f ×)", t, t / o }') |"
          else
            row+=" $(printf %.1f "$t") |"
          fi
        done < <(LOC_OUT=$top/$1 loc__series)
        echo "$row"
      done
    done
    echo
    for d in "$@"; do
      printf '\n---\n\n'
      sed 's/^## /## '"$d"': /' "$top/$d/summary.md"
    done
  } >"$top/summary.md"
  LOC_OUT=$top
}
