#!/usr/bin/env bash
# Crash mid-blob, resume from the partial. The registry and edgepulld run in
# a private network namespace whose loopback is shaped to 200 Mbit/s, so a
# 256 MiB layer takes ~11 s to fetch. While ingest/<hex>.partial is between
# 20 % and 80 % of the blob, edgepulld is killed with SIGKILL (no chance to
# clean up: like a power cut, minus the page cache). After a restart, the same
# request must complete with the right content, the upstream must have been
# asked only for the rest (a 206 answer to a Range request in the registry's
# log) and the blob must be in the store.
# shellcheck source=../lib/common.sh
. "$(dirname "${BASH_SOURCE[0]}")/../lib/common.sh"
# shellcheck source=../lib/mkimage.sh
. "$EP_SOURCE_DIR/tests/lib/mkimage.sh"

ep_init test_mirror_resume 400
ep_require_root
ep_require_cmd docker-registry skopeo jq curl ip tc

SIZE_MB=${EP_RESUME_SIZE_MB:-256}
ep_netns_create
ep_start_registry
layout=$(ep_tmpdir layout)
ep_mkimage "$layout" v1 amd64 "tar:${SIZE_MB}M"
ep_push_image "$layout" v1 edge/big
rm -rf "$layout"
big=${EP_PUSHED_LAYERS[0]}
hex=${big#sha256:}
size=$(stat -c %s "$(ep_registry_blob_path "$big")")
ep_shape_lo 200mbit
ep_log "layer $big, $size bytes, loopback shaped to 200mbit in $EP_NETNS"

ep_start_edgepulld --registry "$REGISTRY_HOST=$REGISTRY_URL"
url=$(ep_blob_url edge/big "$big")
partial=$EP_STATE/ingest/$hex.partial

"${EP_NSX[@]}" curl -s --max-time 120 -o /dev/null "$url" &
first_client=$!
ep_cleanup_push "kill $first_client"

# Wait for the partial to reach 20..80 %, then kill -9.
lo=$((size / 5))
hi=$((size * 4 / 5))
have=0
deadline=$((SECONDS + 60))
while [ "$SECONDS" -lt "$deadline" ]; do
  have=$(stat -c %s "$partial" 2>/dev/null || echo 0)
  [ "$have" -lt "$lo" ] || break
  [ ! -f "$(ep_store_blob "$big")" ] || break
  sleep 0.05
done
if [ "$have" -ge "$lo" ] && [ "$have" -le "$hi" ]; then
  kill -KILL "$EP_PID"
  wait "$EP_PID" 2>/dev/null || true
  ep_pass "edgepulld killed with the partial at $((have * 100 / size)) % ($have bytes)"
else
  ep_die "could not catch the partial between 20 and 80 % (saw $have of $size bytes)"
fi
wait "$first_client" 2>/dev/null || true
ep_check_sanitizers "$EP_LOG"
kept=$(stat -c %s "$partial" 2>/dev/null || echo 0)
ep_log "partial after the crash: $kept bytes"
ep_assert "the partial survives the crash" test "$kept" -gt 0

ep_start_edgepulld # same state dir, port and arguments
got=$("${EP_NSX[@]}" timeout -k 5 120 curl -fsS --max-time 110 "$url" | sha256sum | cut -d' ' -f1)
ep_assert_eq "$big" "sha256:$got" "the blob fetched after the restart verifies"
# The commit (hash check, fsync, rename) may end just after the last byte went out.
for _ in $(seq 150); do
  [ ! -f "$(ep_store_blob "$big")" ] || break
  sleep 0.1
done
ep_assert_stored "$big"
ep_assert_not "no partial left" test -e "$partial"

ranged=$(ep_count_blob_range_gets "$big")
if [ "$ranged" -ge 1 ]; then
  ep_pass "the registry answered a Range request (206) for the rest of the blob"
else
  ep_fail "no 206 for $big in the registry log: the fetch restarted from zero"
fi
fetched=$(ep_registry_blob_bytes 1)
ep_log "registry sent $fetched bytes of blobs for a $size byte layer"
ep_assert "the upstream sent less than 1.5 x the blob (resumed, not refetched)" \
  test "$fetched" -lt $((size * 3 / 2))
if grep -qiE "resum|offset|range" "$EP_LOG"; then
  ep_log "edgepulld: $(grep -iE 'resum|offset|range' "$EP_LOG" | head -n 2)"
fi

ep_stop_edgepulld
ep_finish
