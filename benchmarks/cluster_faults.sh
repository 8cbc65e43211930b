#!/usr/bin/env bash
# A two-node Ray cluster on this machine, a build on it, and a node lost mid-build.
#
#   1. a local build of a catalog (the reference shards);
#   2. a Ray head on 127.0.0.1 and a second node on 127.0.0.2 (loopback addresses, each with
#      its own temp dir), 1 CPU each; `streamaudio build --ray-address 127.0.0.1:PORT`; its
#      shards must be byte-identical to the local build's;
#   3. the same build again, with the second node's raylet killed (-9) once a few shards are
#      written: the build finishes (Ray retries the shard tasks the node took down with it),
#      or it fails and a resumed build finishes; the shards must be identical again.
#
# Usage: benchmarks/cluster_faults.sh [WORKDIR]   (default build/cluster-faults)
# Prints each step and a verdict; exit 0 only when every comparison holds.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
RAY=${RAY:-.venv/bin/ray}
W=$(realpath -m "${1:-build/cluster-faults}")
PORT=${PORT:-6391}
TMP=$(mktemp -d /tmp/sa-cf.XXXXXX)   # short: Ray's socket paths live under its temp dirs
export RAY_USAGE_STATS_ENABLED=0
# a test cluster on loopback addresses: no token to hand from node to node
export RAY_AUTH_MODE=${RAY_AUTH_MODE:-disabled}
say() { printf '\n== %s\n' "$*"; }
stop_cluster() { pkill -9 -f "$TMP" 2>/dev/null; sleep 1; }
trap 'stop_cluster; rm -rf "$TMP"' EXIT

rm -rf "$W" && mkdir -p "$W"
say "fixtures and catalog"
$PY -m streamaudio fixtures "$W/fixtures" >/dev/null 2>&1 || exit 1
$PY - "$W" <<'PYCAT'
import sys, yaml
from pathlib import Path
w = Path(sys.argv[1])
cat = yaml.safe_load(Path("manifests/demo.yaml").read_text())
from streamaudio.fixtures.pools import point_at_fixtures
point_at_fixtures(cat, w / "fixtures")
for st in cat["subtasks"].values():
    st["count"] = 16
cat["shard_size"] = 2   # 40+ shards: enough to lose some with a node
(w / "catalog.yaml").write_text(yaml.safe_dump(cat))
PYCAT

hashes() { (cd "$1" && find data -name '*.parquet' -print0 | sort -z | xargs -0 sha256sum); }
build() {  # OUT CACHE [extra args]
  local out=$1 cache=$2; shift 2
  $PY -m streamaudio build --catalog "$W/catalog.yaml" --out "$out" --cache-dir "$cache" --no-progress "$@"
}

say "1. local build (reference)"
t0=$SECONDS
build "$W/local" "$W/cache-local" --num-cpus 2 2>"$W/local.log" || { tail -5 "$W/local.log"; exit 1; }
echo "local build: $((SECONDS - t0)) s, $(hashes "$W/local" | wc -l) shards"

say "2. two nodes: head 127.0.0.1:$PORT, second node 127.0.0.2"
$RAY start --head --node-ip-address 127.0.0.1 --port "$PORT" --num-cpus 1 --temp-dir "$TMP/head" \
  --include-dashboard false --disable-usage-stats >"$W/head.log" 2>&1 || { tail -20 "$W/head.log"; exit 1; }
$RAY start --address "127.0.0.1:$PORT" --node-ip-address 127.0.0.2 --num-cpus 1 --temp-dir "$TMP/node2" \
  >"$W/node2.log" 2>&1 || { tail -20 "$W/node2.log"; exit 1; }
sleep 2
$PY - "$PORT" <<'PYNODES'
import sys, ray
ray.init(address=f"127.0.0.1:{sys.argv[1]}", logging_level="ERROR", log_to_driver=False)
alive = [n for n in ray.nodes() if n["Alive"]]
print(f"nodes alive: {len(alive)}: " + ", ".join(f"{n['NodeManagerAddress']} ({n['Resources'].get('CPU', 0):.0f} CPU)" for n in alive))
sys.exit(0 if len(alive) == 2 else 1)
PYNODES
[ $? -eq 0 ] || { echo "the second node did not join"; exit 1; }
t0=$SECONDS
build "$W/cluster" "$W/cache-cluster" --ray-address "127.0.0.1:$PORT" 2>"$W/cluster.log" || { tail -5 "$W/cluster.log"; exit 1; }
echo "cluster build: $((SECONDS - t0)) s"
$PY - "$W/cluster/build.json" <<'PYW'
import json, sys
b = json.load(open(sys.argv[1]))
print(f"cluster build: {b['episodes']['written']} episodes in {b['run']['shards']} shards; shards per node: "
      f"{b['run']['shards_by_node']}")
PYW
if diff <(hashes "$W/local") <(hashes "$W/cluster") >/dev/null; then same_cluster=yes; else same_cluster=no; fi
echo "shards identical to the local build: $same_cluster"

say "3. the second node's raylet killed mid-build"
build "$W/fault" "$W/cache-cluster" --ray-address "127.0.0.1:$PORT" >"$W/fault.out" 2>"$W/fault.log" &
bpid=$!
for _ in $(seq 1 600); do   # until a few shards are written (at most 60 s)
  n=$(find "$W/fault/data" -name '*.parquet' 2>/dev/null | wc -l)
  [ "$n" -ge 6 ] && break
  sleep 0.1
done
victim=$(pgrep -f "raylet.*$TMP/node2" | head -1)
echo "shards written when the node died: $n; killing raylet pid $victim (node 127.0.0.2)"
kill -9 "$victim"
wait "$bpid"; rc=$?
echo "build exit code with the node lost: $rc"
[ "$rc" -eq 0 ] && $PY -c "import json; b = json.load(open('$W/fault/build.json')); print('shards per node, as returned (Ray re-ran on the survivor every shard whose result the lost node held):', b['run']['shards_by_node'])"
if [ "$rc" -ne 0 ]; then
  tail -3 "$W/fault.log"
  say "3b. resume on the surviving node"
  build "$W/fault" "$W/cache-cluster" --ray-address "127.0.0.1:$PORT" 2>"$W/resume.log"; rc=$?
  echo "resumed build exit code: $rc"
  $PY -c "import json; b = json.load(open('$W/fault/build.json')); print('shards reused by the resume:', b['run']['shards_reused'], 'of', b['run']['shards'])"
fi
if [ "$rc" -eq 0 ] && diff <(hashes "$W/local") <(hashes "$W/fault") >/dev/null; then same_fault=yes; else same_fault=no; fi
echo "shards identical to the local build after the node loss: $same_fault"
$PY -m streamaudio validate "$W/fault" 2>&1 | tail -1

say "verdict"
echo "two-node build identical: $same_cluster; node loss, identical shards in the end: $same_fault"
[ "$same_cluster" = yes ] && [ "$same_fault" = yes ]
