#!/usr/bin/env bash
# Benchmark of `stowage usage ingest` (not a test): how fast a registry access log is read
# into the history database.
#
#   bench/usage.sh [LINES]        default: 1000000
#
# Makes a synthetic log of LINES lines in the registry's logrus text format, shaped like a
# busy registry's: 70% blob GETs, 18% manifest GETs and 7% HEADs (by tag and by digest, on
# the committed sample's repositories, so tag pulls resolve against its tag history), 2%
# scanner pulls (Trivy), 2% 404s, 1% start-up/other lines. Then times, with the sample as
# --storage: the first ingest of the plain file (every manifest request new), a re-ingest
# (all duplicates), and the gzip of the same file. Nothing here asserts a time.
set -Eeuo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
OUT=${BENCH_DIR:-bench/out}
mkdir -p "$OUT"
# Ingest needs no object-store client: the lighter build is the same code path.
cargo build --release --quiet -p stowage-cli --no-default-features
S=${CARGO_TARGET_DIR:-target}/release/stowage
LOG="$OUT/access-$LINES.log"
if [ ! -f "$LOG" ]; then
  echo "== writing $LOG" >&2
  python3 - "$LINES" "$LOG" <<'PY'
import random, sys
n, path = int(sys.argv[1]), sys.argv[2]
rnd = random.Random(1)
tags = [("library/base", "1.0"), ("library/base", "latest"), ("team/app/api", "latest"),
        ("team/app/web", "1.0"), ("multiarch/tool", "1.0"), ("team/app/worker", "stable")]
dig = "sha256:6701c61047c8cf510fdc88b81d8b4986d49da8ea0e31e5dfd20bb56da0140c6e"
uas = ["docker/24.0.7 go/go1.20.10 git-commit/311b9ff kernel/6.1.0 os/linux arch/amd64 UpstreamClient(Docker-Client/24.0.7 \\(linux\\))",
       "containerd/1.7.2", "cri-o/1.28.1 go/go1.20.10 os/linux arch/amd64"]
t0 = 1795518400.0  # 2026-11-24T11:06:40Z, after the sample's tag dates (2026-11-23)
with open(path, "w") as f:
    for i in range(n):
        t = t0 + i * 0.4
        ts = "%s.%09dZ" % (__import__("time").strftime("%Y-%m-%dT%H:%M:%S", __import__("time").gmtime(int(t))), int((t % 1) * 1e9) + i % 1000)
        r = rnd.random()
        rid = "%08x-%04x-4%03x-8%03x-%012x" % (rnd.getrandbits(32), rnd.getrandbits(16), rnd.getrandbits(12), rnd.getrandbits(12), rnd.getrandbits(48))
        ua = uas[i % 3]
        status = 200
        if r < 0.01:
            f.write('time="%s" level=info msg="redis not configured" go.version=go1.19.8 instance.id=0b3c\n' % ts)
            continue
        repo, tag = tags[rnd.randrange(len(tags))]
        method = "GET"
        if r < 0.71:
            uri = "/v2/%s/blobs/sha256:%064x" % (repo, rnd.getrandbits(256))
        elif r < 0.89:
            uri = "/v2/%s/manifests/%s" % (repo, tag if r < 0.85 else dig)
        elif r < 0.96:
            method, uri = "HEAD", "/v2/%s/manifests/%s" % (repo, tag)
        elif r < 0.98:
            uri, ua = "/v2/%s/manifests/%s" % (repo, tag), "Trivy/0.50.1"
        else:
            uri, status = "/v2/%s/manifests/nope" % repo, 404
        f.write('time="%s" level=info msg="response completed" go.version=go1.19.8 http.request.host="registry.example.com" http.request.id=%s http.request.method=%s http.request.remoteaddr="10.%d.%d.%d:%d" http.request.uri="%s" http.request.useragent="%s" http.response.contenttype="application/vnd.docker.distribution.manifest.v2+json" http.response.duration=3.1ms http.response.status=%d http.response.written=426\n'
                % (ts, rid, method, i % 7, i % 11, i % 13, 30000 + i % 20000, uri, ua, status))
PY
  gzip -k "$LOG"
fi
SAMPLE=$(mktemp -d "${TMPDIR:-/tmp}/stowage-bench-usage.XXXXXX")
trap 'rm -rf "$SAMPLE"' EXIT
tar -xzf fixtures/sample-registry.tar.gz -C "$SAMPLE"
DB="$SAMPLE/usage.db"
echo "== $(wc -l <"$LOG") lines, $(du -h "$LOG" | cut -f1) ($(du -h "$LOG.gz" | cut -f1) gzipped)" >&2
t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "   $(echo "$e - $s" | bc) s" >&2; }
echo "== first ingest (plain)" >&2
t /usr/bin/time -f "   peak RSS %M KiB" "$S" --no-progress --storage "$SAMPLE/storage" usage ingest --db "$DB" -v "$LOG"
echo "== re-ingest (all duplicates)" >&2
t "$S" --no-progress --storage "$SAMPLE/storage" usage ingest --db "$DB" -v "$LOG"
echo "== gzip, into a fresh database" >&2
rm -f "$DB"
t "$S" --no-progress --storage "$SAMPLE/storage" usage ingest --db "$DB" -v "$LOG.gz"
echo "== database: $(du -h "$DB" | cut -f1)" >&2
