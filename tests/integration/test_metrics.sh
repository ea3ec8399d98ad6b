#!/usr/bin/env bash
# GET /metrics (issue 14 point 5): scraped while skopeo pulls an image
# through edgepulld from a real docker-registry, and after; each scrape must
# pass `promtool check metrics`, and the byte counters must agree with the
# bytes moved: after the first pull the upstream bytes are the sizes of the
# blobs pulled (config and layers; manifests are not blobs), after a second
# pull the local bytes are the same sum and the upstream ones did not move.
# The registry and edgepulld run in a network namespace whose loopback is
# shaped to 200 Mbit/s, so the 48 MiB layer is in flight for about 2 s and
# the scrape "during" sees a fetch in flight. --metrics-listen serves the
# same exposition, and only it.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_metrics 300
ep_require_root
ep_require_cmd docker-registry skopeo jq curl ip tc promtool

ep_netns_create
ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 tar:48M gzip:1M
ep_push_image "$layout" v1 edge/app
rm -rf "$layout"
blobs=("${EP_PUSHED_BLOBS[@]}")
total=0
for d in "${blobs[@]}"; do
  total=$((total + $(stat -c %s "$(ep_registry_blob_path "$d")")))
done
# the store keeps the manifest too (as a blob by its digest)
manifest=$(stat -c %s "$(ep_registry_blob_path "$EP_PUSHED_DIGEST")")
ep_log "${#blobs[@]} blobs, $total bytes; manifest $manifest bytes"
ep_shape_lo 200mbit

mport=$(ep_free_port)
ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL" --default-registry "$REGISTRY_HOST" \
  --metrics-listen "127.0.0.1:$mport"

# scrape FILE [URL]: GET /metrics into FILE; fails on a non-200.
scrape() {
  "${EP_NSX[@]}" curl -fsS --max-time 10 -o "$1" "${2:-$EP_URL/metrics}"
}
# value FILE SERIES: the sample of SERIES (name and labels exactly as written), or 0.
value() {
  awk -v s="$2" '$1 == s { print $2; found = 1 } END { if (!found) print 0 }' "$1"
}
check() { # WHAT FILE
  if promtool check metrics <"$2" >"$EP_TMP/promtool.log" 2>&1; then
    ep_pass "$1: promtool check metrics is clean"
  else
    ep_fail "$1: promtool check metrics: $(head -c 600 "$EP_TMP/promtool.log")"
  fi
}
pull() { # DIR
  "${EP_NSX[@]}" timeout -k 5 120 skopeo --tmpdir "$EP_TMP" copy --quiet --src-tls-verify=false \
    "docker://127.0.0.1:$EP_PORT/edge/app:v1" "dir:$1" >>"$EP_TMP/skopeo.log" 2>&1
}
EP_LOGS+=("$EP_TMP/skopeo.log" "$EP_TMP/promtool.log")
up='edgepull_source_bytes_total{source="upstream"}'
local_='edgepull_source_bytes_total{source="local"}'

pull "$(ep_tmpdir copy)" &
client=$!
ep_cleanup_push "kill $client"
during=$EP_TMP/during.prom
seen=0
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ] && kill -0 "$client" 2>/dev/null; do
  scrape "$during" || ep_die "scrape during the pull failed"
  if [ "$(value "$during" edgepull_fetches_in_flight)" -ge 1 ] &&
    [ "$(value "$during" "$up")" -gt 0 ]; then
    seen=1
    break
  fi
  sleep 0.1
done
ep_assert_eq 1 "$seen" "a scrape during the pull sees a fetch in flight and upstream bytes"
check "during the pull" "$during"
ep_assert "upstream bytes during the pull are fewer than the image's" \
  test "$(value "$during" "$up")" -lt "$total"
ep_assert "the pull ends well" wait "$client"

after=$EP_TMP/after.prom
# the last commit may end just after the last byte went out
for _ in $(seq 50); do
  scrape "$after"
  [ "$(value "$after" edgepull_fetches_in_flight)" != 0 ] || break
  sleep 0.1
done
check "after the pull" "$after"
ep_assert_eq "$total" "$(value "$after" "$up")" "upstream bytes = the blobs' sizes"
ep_assert_eq 0 "$(value "$after" "$local_")" "no local bytes on a cold pull"
ep_assert_eq "${#blobs[@]}" "$(value "$after" edgepull_cache_misses_total)" "one miss per blob"
ep_assert_eq "${#blobs[@]}" "$(value "$after" edgepull_fetch_duration_seconds_count)" \
  "one fetch duration per blob"
ep_assert_eq "${#blobs[@]}" "$(value "$after" 'edgepull_fetch_duration_seconds_bucket{le="+Inf"}')" \
  "the +Inf bucket is the count"
ep_assert_eq $((total + manifest)) "$(value "$after" edgepull_store_size_bytes)" \
  "store size = the blobs' and the manifest's sizes"
ep_assert "free space is reported" test "$(value "$after" edgepull_store_available_bytes)" -gt 0
ep_assert_eq 0 "$(value "$after" edgepull_mqtt_connected)" "standalone: no broker"

ep_assert "a second pull ends well" pull "$(ep_tmpdir copy)"
again=$EP_TMP/again.prom
scrape "$again"
check "after the second pull" "$again"
ep_assert_eq "$total" "$(value "$again" "$local_")" "local bytes = the blobs' sizes"
ep_assert_eq "$total" "$(value "$again" "$up")" "the upstream was not asked again"
ep_assert_eq "${#blobs[@]}" "$(value "$again" edgepull_cache_hits_total)" "one hit per blob"

own=$EP_TMP/own.prom
ep_assert "--metrics-listen serves /metrics" scrape "$own" "http://127.0.0.1:$mport/metrics"
ep_assert_eq "$total" "$(value "$own" "$local_")" "the same figures on --metrics-listen"
code=$("${EP_NSX[@]}" curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$mport/v2/")
ep_assert_eq 404 "$code" "--metrics-listen serves nothing but /metrics"
# edgepullctl stat: the same figures for a person, and as JSON
table=$("${EP_NSX[@]}" "$EP_BUILD_DIR/ctl/edgepullctl" --state-dir "$EP_STATE" \
  --endpoint "127.0.0.1:$EP_PORT" stat 2>&1) || ep_fail "edgepullctl stat failed: $table"
ep_log "edgepullctl stat:"$'\n'"$table"
ep_assert "stat shows local bytes" grep -qE "^source_bytes_total +source=\"local\" +$total\$" <<<"$table"
json=$("${EP_NSX[@]}" "$EP_BUILD_DIR/ctl/edgepullctl" --state-dir "$EP_STATE" \
  --endpoint "127.0.0.1:$EP_PORT" --json stat 2>/dev/null)
ep_assert_eq "$total" "$(jq -r '.daemon.metrics["edgepull_source_bytes_total{source=\"upstream\"}"]' <<<"$json")" \
  "stat --json: upstream bytes"
ep_assert_eq "${#blobs[@]}" "$(jq -r '.daemon.metrics.edgepull_cache_hits_total' <<<"$json")" \
  "stat --json: cache hits"
ep_log "$(grep -E '^edgepull_(source_bytes|cache|fetch_duration_seconds_(count|sum))' "$again" | tr '\n' ' ')"

ep_stop_edgepulld
ep_finish
