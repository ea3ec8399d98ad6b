#!/usr/bin/env bash
# edgepullctl against a real index file: usage and runtime errors with their
# exit codes (snapshots included: tests/unit/test_ctl_snapshots.c covers its
# output), then layers / images / stat, and the locality commands nodes /
# where / topology (with a parent cycle stored in the index), in human and
# --json form, and a v1 index without the locality tables.
#
# The schema comes from edgepullctl itself (`edgepullctl schema`, the same
# migration SQL index_open runs), piped into the sqlite3 shell; rows are then
# inserted with sqlite3 the way an operator could. Run by ctest with
# EP_BUILD_DIR set.
set -euo pipefail

for tool in sqlite3 jq; do
  command -v "$tool" >/dev/null || { echo "SKIP: $tool not installed"; exit 77; }
done
CTL="${EP_BUILD_DIR:?EP_BUILD_DIR not set}/ctl/edgepullctl"
[ -x "$CTL" ] || { echo "FAIL: $CTL not built"; exit 1; }

TMP=$(mktemp -d /tmp/ep-test-ctl.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
ok() { echo "ok: $*"; }

# expect CODE PATTERN -- ARGS...: exit code and a stderr/stdout pattern.
expect() {
  local want=$1 pat=$2
  shift 3
  local out rc=0
  out=$("$CTL" "$@" 2>&1) || rc=$?
  if [ "$rc" -ne "$want" ]; then
    fail "edgepullctl $*: exit $rc, want $want; output: $out"
  elif ! grep -qE -- "$pat" <<<"$out"; then
    fail "edgepullctl $*: output lacks /$pat/: $out"
  else
    ok "edgepullctl $* -> $rc"
  fi
}

# --- usage and runtime errors ---------------------------------------------
expect 0 'Usage: edgepullctl' -- --help
expect 0 '^edgepullctl [0-9]+\.[0-9]+' -- --version
expect 2 'no command given' --
expect 2 "unknown command 'frobnicate'" -- frobnicate
expect 2 "unknown option '--bogus'" -- --bogus layers
expect 2 "'--state-dir' needs an argument" -- layers --state-dir
expect 2 'layers takes no arguments' -- layers extra
expect 2 "--config /nonexistent-edgepull.conf: cannot be read" -- deploy x --config /nonexistent-edgepull.conf
expect 2 'nodes takes no arguments' -- nodes extra
expect 2 'where needs an argument: DIGEST' -- where
expect 2 "where: digest \"sha256:nothex\"" -- where sha256:nothex
expect 2 'where takes one argument, DIGEST' -- where "sha256:$(printf '%064d' 1)" extra
expect 1 "index $TMP/missing/index.db does not exist" -- --state-dir "$TMP/missing" layers
expect 2 'snapshots takes no arguments' -- snapshots extra
expect 2 "'--snapshotter-root' needs an argument" -- snapshots --snapshotter-root
expect 1 "no snapshotter state under $TMP/missing/snapshots: is --snapshotter-socket set\\?" -- \
  --state-dir "$TMP/missing" snapshots
expect 1 "no snapshotter state under $TMP/nosnap:" -- --snapshotter-root "$TMP/nosnap" snapshots --json
mkdir "$TMP/junk"
head -c 8192 /dev/urandom >"$TMP/junk/index.db"
expect 1 "$TMP/junk/index.db" -- --state-dir "$TMP/junk" stat

# --- a populated index ----------------------------------------------------
S="$TMP/state"
mkdir "$S"
"$CTL" schema | sqlite3 "$S/index.db"
sqlite3 "$S/index.db" 'PRAGMA journal_mode = WAL' >/dev/null
d() { printf 'sha256:%064d' 0 | tr 0 "$1"; } # d 4 = sha256:4444…
NOW=$(date +%s)
sqlite3 "$S/index.db" <<SQL
INSERT INTO blobs VALUES ('$(d 1)', 1638, 'application/vnd.oci.image.index.v1+json', 'complete', 1700000000, 1700000100);
INSERT INTO blobs VALUES ('$(d 2)', 1024, 'application/vnd.oci.image.manifest.v1+json', 'complete', 1700000000, 1700000100);
INSERT INTO blobs VALUES ('$(d 3)', 1500, 'application/vnd.oci.image.config.v1+json', 'complete', 1700000000, 1700000100);
INSERT INTO blobs VALUES ('$(d 4)', 3500000, 'application/vnd.oci.image.layer.v1.tar+gzip', 'complete', 1700000000, 1700000200);
INSERT INTO blobs VALUES ('$(d 5)', 100, '', 'partial', 1700000000, 1700000000);
INSERT INTO manifests VALUES ('$(d 1)', 'application/vnd.oci.image.index.v1+json', 1638, 'docker.io', 'library/alpine', 1700000000);
INSERT INTO manifests VALUES ('$(d 2)', 'application/vnd.oci.image.manifest.v1+json', 1024, 'docker.io', 'library/alpine', 1700000000);
INSERT INTO manifest_refs VALUES ('$(d 1)', 0, '$(d 2)'), ('$(d 1)', 1, '$(d 9)');
INSERT INTO manifest_refs VALUES ('$(d 2)', 0, '$(d 3)'), ('$(d 2)', 1, '$(d 4)'), ('$(d 2)', 2, '$(d 5)');
INSERT INTO tags VALUES ('docker.io', 'library/alpine', '3.19', '$(d 1)', 'application/vnd.oci.image.index.v1+json', 1638, $NOW, $((NOW + 300)));
INSERT INTO tags VALUES ('ghcr.io', 'org/app', 'v1', '$(d 2)', 'application/vnd.oci.image.manifest.v1+json', 1024, $((NOW - 7200)), $((NOW - 3600)));
INSERT INTO tags VALUES ('ghcr.io', 'org/evil', 'x' || char(27) || '[2J', '$(d 7)', '', 0, $NOW, $((NOW + 60)));
SQL

# layers
out=$("$CTL" --state-dir "$S" layers)
echo "$out"
[ "$(wc -l <<<"$out")" -eq 6 ] || fail "layers: want header + 5 rows"
head -1 <<<"$out" | grep -qE '^DIGEST +SIZE +MEDIA TYPE +STATE +LAST ACCESS +UNPACKED$' ||
  fail "layers header"
# No snapshotter state in this state dir: nothing is unpacked.
grep -qE '^sha256:444444444444 +3\.3 MiB +oci layer gzip +complete +2023-11-14T22:16:40Z +no$' \
  <<<"$out" || fail "layers: layer row"
grep -qE '^sha256:555555555555 +100 B +- +partial ' <<<"$out" || fail "layers: partial row"
# Columns are aligned: STATE starts at the same offset on every line.
col=$(head -1 <<<"$out" | awk '{print index($0, "STATE")}')
bad=$(awk -v c="$col" 'NR > 1 && substr($0, c) !~ /^(complete|partial) / {print}' <<<"$out")
[ -z "$bad" ] || fail "layers: STATE column not aligned: $bad"
"$CTL" --state-dir "$S" --no-trunc layers | grep -q "$(d 4)" || fail "layers --no-trunc: full digest"

j1=$("$CTL" --json --state-dir "$S" layers)
j2=$("$CTL" --state-dir "$S" layers --json)
[ "$j1" = "$j2" ] || fail "--json before and after the command differ"
jq -e '.layers | length == 5' <<<"$j1" >/dev/null || fail "layers --json: count"
jq -e --arg d "$(d 4)" '.layers[] | select(.digest == $d) |
  .size == 3500000 and .state == "complete" and .last_access == 1700000200 and
  .created == 1700000000 and .media_type == "application/vnd.oci.image.layer.v1.tar+gzip" and
  .unpacked == false' \
  <<<"$j1" >/dev/null || fail "layers --json: layer fields"
jq -e '[.layers[].state] | sort == ["complete","complete","complete","complete","partial"]' \
  <<<"$j1" >/dev/null || fail "layers --json: states"
ok "layers"

# images
out=$("$CTL" --state-dir "$S" images)
echo "$out"
head -1 <<<"$out" | grep -qE '^IMAGE +DIGEST +MEDIA TYPE +SIZE +BLOBS +UPDATED +EXPIRES +UNPACKED$' ||
  fail "images header"
grep -qE '^docker.io/library/alpine:3.19 +sha256:111111111111 +oci index +3\.3 MiB +4/6 .* in [0-9]+[sm] +0$' \
  <<<"$out" || fail "images: alpine row"
grep -qE '^ghcr.io/org/app:v1 .* stale 60m +0$' <<<"$out" || fail "images: stale row"
if grep -q $'\e' <<<"$out"; then fail "images: escape byte reached the terminal"; fi
grep -q 'ghcr.io/org/evil:x?\[2J' <<<"$out" || fail "images: control byte not replaced"
j=$("$CTL" --state-dir "$S" images --json)
jq -e '.images | length == 3' <<<"$j" >/dev/null || fail "images --json: count"
jq -e --arg d "$(d 1)" '.images[0] | .reference == "docker.io/library/alpine:3.19" and
  .registry == "docker.io" and .repository == "library/alpine" and .tag == "3.19" and
  .digest == $d and .manifest_size == 1638 and .total_size == 3504262 and
  .blobs_complete == 4 and .blobs_referenced == 6 and .stale == false and .layers_unpacked == 0 and
  .media_type == "application/vnd.oci.image.index.v1+json"' <<<"$j" >/dev/null ||
  fail "images --json: alpine fields"
jq -e --argjson now "$NOW" '.images[1] | .stale == true and .expires_at == $now - 3600 and
  .updated == $now - 7200 and .total_size == 3502624 and .blobs_referenced == 4' \
  <<<"$j" >/dev/null || fail "images --json: stale fields"
jq -e '.images[2].tag == "x\u001b[2J"' <<<"$j" >/dev/null || fail "images --json: escaped tag"
ok "images"

# stat
out=$("$CTL" --state-dir "$S" stat)
echo "$out"
LATEST=$("$CTL" schema --json | jq .latest_schema_version)
[ "$LATEST" -ge 2 ] || fail "schema: latest version $LATEST, want >= 2"
grep -qE "^schema version +$LATEST " <<<"$out" || fail "stat: schema version"
grep -qE '^blobs +4 complete \(3\.3 MiB, 3504162 bytes\), 1 partial$' <<<"$out" || fail "stat: blobs"
grep -qE '^tags +3$' <<<"$out" || fail "stat: tags"
j=$("$CTL" --state-dir "$S" stat --json)
jq -e --arg p "$S/index.db" --argjson v "$LATEST" '.index == $p and .schema_version == $v and
  .latest_schema_version >= 1 and .blobs == 4 and .blob_bytes == 3504162 and
  .partial_blobs == 1 and .manifests == 2 and .tags == 3 and .file_bytes > 0' \
  <<<"$j" >/dev/null || fail "stat --json"
"$CTL" schema --json | jq -e '.migrations[0].version == 1 and
  (.migrations[0].sql | test("CREATE TABLE blobs"))' >/dev/null || fail "schema --json"
ok "stat"

# A schema from a newer edgepull is refused, not misread.
sqlite3 "$S/index.db" 'PRAGMA user_version = 99'
expect 1 "schema version 99, newer than this edgepull knows" -- --state-dir "$S" stat
sqlite3 "$S/index.db" "PRAGMA user_version = $LATEST"

# --- the locality tables --------------------------------------------------
# gw <- n1 <- n3, gw <- n2 (offline); a <-> b is a stored cycle with c under
# b; orphan's parent is unknown; new has no parent yet.
sqlite3 "$S/index.db" <<SQL
INSERT INTO nodes (id, addr, peer_port, arch, variant, link_mbps, free_bytes, version,
                   online, gateway, last_seen, parent, epoch) VALUES
 ('gw', '198.18.0.1', 5051, 'amd64', '', 1000, 107374182400, '0.3.0', 1, 1, 1700000000, '', 1),
 ('n1', '198.18.0.2', 5051, 'arm64', 'v8', 100, 1073741824, '0.3.0', 1, 0, 1700000010, 'gw', 2),
 ('n2', '198.18.0.3', 5051, 'arm', 'v7', 100, 0, '0.3.0', 0, 0, 1700000020, 'gw', 3),
 ('n3', 'fd00::3', 5051, 'arm64', '', 100, 5, '0.3.0', 1, 0, 1700000030, 'n1', 4),
 ('a', '198.18.0.10', 5051, 'arm64', '', 100, 5, '0.3.0', 1, 0, 1700000000, 'b', 5),
 ('b', '198.18.0.11', 5051, 'arm64', '', 100, 5, '0.3.0', 1, 0, 1700000000, 'a', 6),
 ('c', '198.18.0.12', 0, 'arm64', '', 100, 5, '0.3.0', 0, 0, 1700000000, 'b', 6),
 ('orphan', '', 0, '', '', 0, 0, '', 0, 0, 0, 'ghost', 7),
 ('new', '198.18.0.13', 5051, '', '', 0, 0, '', 1, 0, 0, '', 0);
INSERT INTO inventory VALUES ('gw', '$(d 1)', 1000), ('gw', '$(d 2)', 2000),
 ('n1', '$(d 1)', 1000), ('n2', '$(d 1)', 1000), ('n3', '$(d 2)', 2000), ('n3', '$(d 4)', 3500000);
SQL

# nodes
out=$("$CTL" --state-dir "$S" nodes)
echo "$out"
[ "$(wc -l <<<"$out")" -eq 10 ] || fail "nodes: want header + 9 rows"
head -1 <<<"$out" | grep -qE '^ID +ADDRESS +STATE +PARENT +BLOBS +HELD +FREE +LAST SEEN$' ||
  fail "nodes header"
grep -qE '^gw +198\.18\.0\.1:5051 +online,gateway +- +2 +2\.9 KiB +100\.0 GiB +2023-11-14T22:13:20Z$' \
  <<<"$out" || fail "nodes: gateway row"
grep -qE '^n2 +198\.18\.0\.3:5051 +offline +gw +1 +1000 B +0 B ' <<<"$out" || fail "nodes: offline row"
grep -qE '^n3 +\[fd00::3\]:5051 +online +n1 +2 +3\.3 MiB ' <<<"$out" || fail "nodes: ipv6 row"
grep -qE '^orphan +- +offline +ghost +0 +0 B +0 B +-$' <<<"$out" || fail "nodes: bare row"
j=$("$CTL" --state-dir "$S" nodes --json)
jq -e '.nodes | length == 9' <<<"$j" >/dev/null || fail "nodes --json: count"
jq -e '.nodes[] | select(.id == "n1") | .address == "198.18.0.2:5051" and
  .addr == "198.18.0.2" and .peer_port == 5051 and .arch == "arm64" and .variant == "v8" and
  .link_mbps == 100 and .free_bytes == 1073741824 and .version == "0.3.0" and .online and
  (.gateway | not) and .last_seen == 1700000010 and .parent == "gw" and .epoch == 2 and
  .blobs == 1 and .blob_bytes == 1000' <<<"$j" >/dev/null || fail "nodes --json: n1 fields"
jq -e '.nodes[] | select(.id == "gw") | .parent == null and .gateway and .blob_bytes == 3000' \
  <<<"$j" >/dev/null || fail "nodes --json: gateway fields"
ok "nodes"

# where
out=$("$CTL" --state-dir "$S" where "$(d 1)")
echo "$out"
head -1 <<<"$out" | grep -qE '^NODE +ADDRESS +STATE +SIZE$' || fail "where header"
[ "$(sed 1d <<<"$out" | awk '{print $1}' | tr '\n' ' ')" = "gw n1 n2 " ] ||
  fail "where: want gw n1 (online) then n2 (offline)"
"$CTL" --state-dir "$S" where "$(d 7)" | grep -q "no node of the locality holds $(d 7)" ||
  fail "where: absent digest"
j=$("$CTL" --state-dir "$S" where "$(d 4)" --json)
jq -e --arg d "$(d 4)" '.digest == $d and (.nodes | length == 1) and .nodes[0].id == "n3" and
  .nodes[0].size == 3500000 and .nodes[0].address == "[fd00::3]:5051"' <<<"$j" >/dev/null ||
  fail "where --json"
"$CTL" --state-dir "$S" --json where "$(d 7)" | jq -e '.nodes == []' >/dev/null ||
  fail "where --json: absent digest"
ok "where"

# topology: must terminate on the stored cycle and list it as unattached.
out=$(timeout 10 "$CTL" --state-dir "$S" topology) || fail "topology: exit $?"
echo "$out"
want='gw (gateway, online, 2 blobs)
├── n1 (online, 1 blob)
│   └── n3 (online, 2 blobs)
└── n2 (offline, 1 blob)
unattached:
  new (online; no parent)
  orphan (offline; parent ghost unknown)
  a (online; parent b, in a cycle)
  └── b (online)
      └── c (offline)'
[ "$out" = "$want" ] || fail "topology: tree differs from: $want"
j=$(timeout 10 "$CTL" --state-dir "$S" topology --json) || fail "topology --json: exit $?"
jq -e '(.roots | length == 1) and .roots[0].id == "gw" and .roots[0].gateway and
  ([.roots[0].children[].id] == ["n1", "n2"]) and
  (.roots[0].children[0].children[0] | .id == "n3" and .blobs == 2 and .children == [])' \
  <<<"$j" >/dev/null || fail "topology --json: tree"
jq -e '[.unattached[] | {id, reason, parent}] == [
  {"id": "new", "reason": "no_parent", "parent": null},
  {"id": "orphan", "reason": "unknown_parent", "parent": "ghost"},
  {"id": "a", "reason": "cycle", "parent": "b"}] and
  .unattached[2].children[0].id == "b" and .unattached[2].children[0].children[0].id == "c"' \
  <<<"$j" >/dev/null || fail "topology --json: unattached"
ok "topology"

# A v1 index (written by an older edgepull): v1 commands work, the locality
# ones say why they cannot.
V1="$TMP/v1"
mkdir "$V1"
{ "$CTL" schema --json | jq -r '.migrations[0].sql'; echo 'PRAGMA user_version = 1;'; } |
  sqlite3 "$V1/index.db"
expect 0 'DIGEST' -- --state-dir "$V1" layers
for cmd in nodes topology "where $(d 1)"; do
  # shellcheck disable=SC2086
  expect 1 "index $V1/index.db has no locality tables yet \(schema v1\)" -- --state-dir "$V1" $cmd
done

if [ "$fails" -ne 0 ]; then
  echo "$fails check(s) failed"
  exit 1
fi
echo "all edgepullctl checks passed"
