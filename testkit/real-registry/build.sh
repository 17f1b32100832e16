#!/usr/bin/env bash
# build.sh: build a registry-storage fixture with the REAL CNCF distribution registry
# (Debian package docker-registry, 2.8.x) filled by a REAL client (skopeo).
#
# Usage:  testkit/real-registry/build.sh TARGET_DIR
#
# Environment (all optional):
#   PORT=NNNN                 listen on 127.0.0.1:NNNN (default: a free loopback port)
#   KEEP_RUNNING=1            leave the registry running at the end; writes TARGET_DIR/registry.pid
#   WITH_DIGEST_ONLY_REPO=1   also create repo digestonly/app: one manifest pushed by digest and
#                             no _manifests/tags/ dir at all. Off by default because it makes
#                             registry 2.8's `garbage-collect --delete-untagged` abort (exit 1).
#   STORAGE_SECTION_FILE=F    use the YAML `storage:` section in F (e.g. the s3 driver against a
#                             loopback S3 server) instead of the filesystem one; storage/ stays empty
#
# Outputs under TARGET_DIR (a re-run deletes and rebuilds exactly these, nothing else):
#   storage/          the registry's rootdirectory; storage root = storage/docker/registry/v2
#   config.yml        the registry config used; reusable for `docker-registry garbage-collect`
#   fixture.tsv       case, repo, reference, digest, mediaType, note (digests from HEAD)
#   api-state.json    catalog / tags / tag->manifest as the running registry's API reported it
#   logs/             registry.log, client.log, versions.txt
#   registry.pid      only with KEEP_RUNNING=1
#   .stowage-real-registry-fixture   marker: proves the dir is ours, so re-runs may wipe it
#
# Blob and manifest digests are identical on every run and machine (images come from
# oci_writer.py, which is byte-deterministic). What differs between runs: upload UUIDs,
# `startedat` contents, file mtimes. See README.md beside this file.
set -Eeuo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=lib.sh source-path=SCRIPTDIR
. "$SCRIPT_DIR/lib.sh"
REPO_ROOT=$(cd "$SCRIPT_DIR/../.." && pwd)
MARKER_NAME=.stowage-real-registry-fixture

log() { printf 'build.sh: %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

[ "$#" -eq 1 ] || die "usage: $0 TARGET_DIR"
[ -n "$1" ] || die "TARGET_DIR is empty"
START_NS=$(date +%s%N)

# --- 1. tools ---------------------------------------------------------------------------------
for cmd in docker-registry skopeo jq curl python3; do
  if ! command -v "$cmd" >/dev/null 2>&1; then
    log "$cmd not found; running scripts/install-test-deps.sh"
    "$REPO_ROOT/scripts/install-test-deps.sh" >&2 || die "installing test dependencies failed"
    break
  fi
done

# --- 2. target directory (only our own outputs are ever removed) ------------------------------
mkdir -p "$1"
TARGET=$(cd "$1" && pwd)
MARKER="$TARGET/$MARKER_NAME"
if [ -n "$(ls -A "$TARGET")" ] && [ ! -e "$MARKER" ]; then
  die "$TARGET is not empty and has no $MARKER_NAME marker; refusing to touch it"
fi

# A registry left running by an earlier KEEP_RUNNING=1 build on this target must be stopped
# before its storage is wiped. Only kill that PID if it still is OUR registry (cmdline check),
# since PIDs get reused.
if [ -f "$TARGET/registry.pid" ]; then
  old_pid=$(cat "$TARGET/registry.pid")
  if [[ "$old_pid" =~ ^[0-9]+$ ]] &&
     tr '\0' ' ' <"/proc/$old_pid/cmdline" 2>/dev/null | grep -qF "$TARGET/config.yml"; then
    log "stopping registry PID $old_pid left running by an earlier build"
    kill -TERM "$old_pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$old_pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$old_pid" 2>/dev/null && die "registry PID $old_pid did not stop"
  fi
  rm -f "$TARGET/registry.pid"
fi
touch "$MARKER"
rm -rf "$TARGET/storage" "$TARGET/logs" "$TARGET/config.yml" "$TARGET/fixture.tsv" \
       "$TARGET/api-state.json"
mkdir -p "$TARGET/storage" "$TARGET/logs"
STORAGE="$TARGET/storage" LOGS="$TARGET/logs" TSV="$TARGET/fixture.tsv"

# Scratch space (OCI layout, skopeo config, upload payload); never part of the outputs.
WORK=$(mktemp -d "${TMPDIR:-/tmp}/stowage-fixture.XXXXXX")
REG_PID=
stop_registry() {
  if [ -n "$REG_PID" ] && kill -0 "$REG_PID" 2>/dev/null; then
    kill -TERM "$REG_PID" 2>/dev/null || true
    wait "$REG_PID" 2>/dev/null || true
  fi
  REG_PID=
}
on_exit() {
  local rc=$?
  stop_registry
  rm -rf "$WORK"
  [ "$rc" -eq 0 ] || log "FAILED (exit $rc); logs: $LOGS"
}
trap on_exit EXIT
trap 'log "command failed at line $LINENO: $BASH_COMMAND"' ERR

{
  docker-registry --version
  skopeo --version
  dpkg-query -W docker-registry skopeo golang-github-containers-common jq curl 2>/dev/null || true
  python3 -c 'import sys, zlib; print("python", sys.version.split()[0], "zlib", zlib.ZLIB_RUNTIME_VERSION)'
  jq --version
  curl --version | head -n 1
} >"$LOGS/versions.txt" 2>&1
grep -q 'distribution v\?2\.8\.' "$LOGS/versions.txt" ||
  log "warning: docker-registry is not 2.8.x; behaviour may differ from the README"

# --- 3. images, offline and deterministic -----------------------------------------------------
OCI="$WORK/oci"
python3 "$SCRIPT_DIR/oci_writer.py" "$OCI" >"$WORK/refs.tsv" || die "oci_writer.py failed"
# oci_digest NAME -> manifest digest of that image in the layout
oci_digest() {
  local d
  d=$(awk -F'\t' -v n="$1" '$1==n{print $2}' "$WORK/refs.tsv")
  [ -n "$d" ] || die "no image '$1' in the OCI layout"
  printf '%s\n' "$d"
}

# skopeo reads host-wide config (/etc/containers/{policy.json,registries.conf,registries.d},
# auth files). Pin all of it so a developer's or CI's own settings cannot change the result.
printf '{"default":[{"type":"insecureAcceptAnything"}]}\n' >"$WORK/policy.json"
: >"$WORK/registries.conf"
mkdir -p "$WORK/registries.d" "$WORK/skopeo-tmp"
export CONTAINERS_REGISTRIES_CONF="$WORK/registries.conf"
SKOPEO=(skopeo --policy "$WORK/policy.json" --registries.d "$WORK/registries.d" --tmpdir "$WORK/skopeo-tmp")

# --- 4. the registry, on loopback, with our own config ----------------------------------------
# The registry's AWS SDK cannot use a custom CA bundle with its own HTTP transport and panics
# at start-up when AWS_CA_BUNDLE is set; the test S3 endpoints are plain HTTP on loopback.
if [ -n "${STORAGE_SECTION_FILE:-}" ]; then unset AWS_CA_BUNDLE; fi
storage_section() {
  if [ -n "${STORAGE_SECTION_FILE:-}" ]; then cat "$STORAGE_SECTION_FILE"; return; fi
  cat <<EOF
storage:
  filesystem:
    rootdirectory: $STORAGE
  delete:
    enabled: true
  maintenance:
    uploadpurging:
      enabled: false   # keep the abandoned uploads this fixture creates on purpose
EOF
}
write_config() {
  {
    printf '# Written by stowage testkit/real-registry/build.sh; also valid for\n'
    printf '#   docker-registry garbage-collect [--dry-run] [--delete-untagged] THIS_FILE\n'
    printf 'version: 0.1\nlog:\n  level: info\n'
    storage_section
    cat <<EOF
http:
  addr: 127.0.0.1:$1
  secret: stowage-fixture-not-a-secret
EOF
  } >"$TARGET/config.yml"
}
# start_registry PORT -> 0 once OUR process listens and /v2/ answers; 1 if it died at start-up
start_registry() {
  write_config "$1"
  REG="127.0.0.1:$1"
  docker-registry serve "$TARGET/config.yml" </dev/null >"$LOGS/registry.log" 2>&1 &
  REG_PID=$!
  local rc=0
  await_registry "$REG_PID" "$LOGS/registry.log" "$REG" || rc=$?
  case $rc in
    0) return 0 ;;
    1) REG_PID=; return 1 ;;
  esac
  die "registry PID $REG_PID did not answer on http://$REG/v2/ within 10 s; see $LOGS/registry.log"
}
if [ -n "${PORT:-}" ]; then
  [[ "$PORT" =~ ^[0-9]+$ ]] || die "PORT must be a number, got '$PORT'"
  port_free "$PORT" || die "127.0.0.1:$PORT is already in use"
  start_registry "$PORT" || die "registry exited at start-up on port $PORT; see $LOGS/registry.log"
else
  # A port found free can be taken before the registry binds it: retry a few times.
  started=0
  for _ in 1 2 3 4 5; do
    port=$(free_port)
    port_free "$port" || continue
    if start_registry "$port"; then started=1; break; fi
    grep -q 'address already in use' "$LOGS/registry.log" ||
      die "registry exited at start-up; see $LOGS/registry.log"
  done
  [ "$started" = 1 ] || die "could not start the registry on a free port after 5 tries"
fi
log "registry PID $REG_PID on http://$REG (storage $STORAGE)"

# --- helpers ----------------------------------------------------------------------------------
ACCEPT='application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json'
# push SRC_NAME DEST_REF [skopeo copy flags...]    DEST_REF = repo:tag or repo@digest
push() {
  local src=$1 dest=$2; shift 2
  printf '+ skopeo copy %s oci:%s docker://%s/%s\n' "$*" "$src" "$REG" "$dest" >>"$LOGS/client.log"
  "${SKOPEO[@]}" copy --dest-tls-verify=false --dest-no-creds "$@" \
      "oci:$OCI:$src" "docker://$REG/$dest" >>"$LOGS/client.log" 2>&1 ||
    die "skopeo copy $src -> $dest failed; see $LOGS/client.log"
}
# head_manifest REPO REF -> "DIGEST MEDIATYPE" as the registry reports it (HEAD, all types accepted)
head_manifest() {
  local out
  out=$(curl -fsS -I -H "Accept: $ACCEPT" "http://$REG/v2/$1/manifests/$2" |
        tr -d '\r' |
        awk -F': ' 'tolower($1)=="docker-content-digest"{d=$2} tolower($1)=="content-type"{t=$2} END{print d, t}') ||
    die "HEAD /v2/$1/manifests/$2 failed"
  [[ "$out" == sha256:* ]] || die "HEAD /v2/$1/manifests/$2 gave no digest"
  printf '%s\n' "$out"
}
manifest_digest() { local dt; dt=$(head_manifest "$1" "$2"); printf '%s\n' "${dt%% *}"; }
# record CASE REPO REF NOTE: one fixture.tsv line, digest looked up now (while REF resolves)
record() {
  local dt; dt=$(head_manifest "$2" "$3")
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "${dt%% *}" "${dt#* }" "$4" >>"$TSV"
}
# expect_same WHAT GOT WANT: guards the assumptions the later cases build on
expect_same() { [ "$2" = "$3" ] || die "$1: registry has $2, expected $3"; }
# delete_manifest REPO DIGEST: API delete by digest, must answer 202 Accepted
delete_manifest() {
  local code
  code=$(curl -sS -o /dev/null -w '%{http_code}' -X DELETE "http://$REG/v2/$1/manifests/$2")
  printf '+ DELETE /v2/%s/manifests/%s -> %s\n' "$1" "$2" "$code" >>"$LOGS/client.log"
  [ "$code" = 202 ] || die "DELETE /v2/$1/manifests/$2 answered $code, expected 202"
}
http_code() { curl -sS -o /dev/null -w '%{http_code}' -H "Accept: $ACCEPT" "$@"; }
# Blob-upload API by hand (skopeo always finishes its uploads). Prints "UUID LOCATION".
upload_post() {
  curl -fsS -o /dev/null -D - -X POST "http://$REG/v2/$1/blobs/uploads/" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="docker-upload-uuid"{u=$2} tolower($1)=="location"{l=$2} END{print u, l}'
}
# upload_patch LOCATION OFFSET FILE -> next LOCATION
upload_patch() {
  local size; size=$(stat -c %s "$3")
  curl -fsS -o /dev/null -D - -X PATCH -H 'Content-Type: application/octet-stream' \
       -H "Content-Range: $2-$(($2 + size - 1))" --data-binary "@$3" "$1" | tr -d '\r' |
    awk -F': ' 'tolower($1)=="location"{print $2}'
}
abs_url() { case $1 in /*) printf 'http://%s%s\n' "$REG" "$1" ;; *) printf '%s\n' "$1" ;; esac; }

printf 'case\trepo\treference\tdigest\tmediaType\tnote\n' >"$TSV"

# --- 5. the cases -----------------------------------------------------------------------------
log "pushing images"
# Docker schema2, two tags on one manifest. skopeo converts OCI -> v2s2 by rewriting media types
# only, so config and layer blobs stay the same.
push base library/base:1.0 --format v2s2
record v2s2-two-tags library/base 1.0 "Docker schema2"
push base library/base:latest --format v2s2
record v2s2-two-tags library/base latest "same manifest as library/base:1.0"
# The same image as an OCI manifest: new manifest digest, same config+layer blobs.
# --preserve-digests makes skopeo fail instead of silently rewriting a manifest.
push base library/base:1.0-oci --preserve-digests
record oci-variant library/base 1.0-oci "OCI manifest of the same image; shares config+layer blobs with 1.0"

# Nested names; every amd64 image shares the 256 KiB base layer, which skopeo cross-repo
# mounts from a repo that already has it (POST ...?mount=&from=) instead of uploading.
push api-build1 team/app/api:latest --format v2s2
record moved-tag team/app/api latest "build1; tag moved to build2 below (stays in tags/latest/index)"
push api-build2 team/app/api:latest --format v2s2
record moved-tag team/app/api latest "build2, after the move"
push api-build2 team/app/api:v2 --format v2s2
record moved-tag team/app/api v2 "build2 (second tag on the moved-to manifest)"
push web team/app/web:1.0 --preserve-digests
record nested team/app/web 1.0 "OCI, nested name, shared base layer (subject of the referrer and the .sig)"
WEB_DIGEST=$(manifest_digest team/app/web 1.0)
# The referrer's subject and the cosign tag name were computed offline from this digest.
expect_same "team/app/web:1.0 digest" "$WEB_DIGEST" "$(oci_digest web)"
push worker-1 team/app/worker:stable --format v2s2
record moved-then-old-deleted team/app/worker stable "worker-1; tag moved, then this digest deleted via API"
W1_DIGEST=$(manifest_digest team/app/worker stable)
push worker-2 team/app/worker:stable --format v2s2
record moved-then-old-deleted team/app/worker stable "worker-2, current"
delete_manifest team/app/worker "$W1_DIGEST"
# Only tags whose CURRENT link is the digest are removed; stable/index keeps a stale entry.
expect_same "team/app/worker:stable after deleting worker-1" \
  "$(manifest_digest team/app/worker stable)" "$(awk -F'\t' '$3=="stable"{d=$4} END{print d}' "$TSV")"

# Multi-arch: the OCI index as-is, and converted to a Docker manifest list (children become
# v2s2 and get new digests). Children are pushed by digest, i.e. untagged.
push tool multiarch/tool:1.0 --all --preserve-digests
record multiarch-oci-index multiarch/tool 1.0 "OCI image index; 2 children pushed by digest (untagged)"
push tool multiarch/tool:1.0-docker --all --format v2s2
record multiarch-docker-list multiarch/tool 1.0-docker "Docker manifest list converted by skopeo; 2 v2s2 children (untagged)"
for tag_case in "1.0 multiarch-oci-child" "1.0-docker multiarch-docker-child"; do
  tag=${tag_case% *} case_id=${tag_case#* }
  curl -fsS -H "Accept: $ACCEPT" "http://$REG/v2/multiarch/tool/manifests/$tag" |
    jq -r '.manifests[] | [.digest, (.platform | [.os, .architecture, .variant // empty] | join("/"))] | @tsv' |
    while IFS=$'\t' read -r child platform; do
      record "$case_id" multiarch/tool "$child" "$platform child of multiarch/tool:$tag, untagged"
    done
done

# A tagged manifest deleted through the API by digest: its tag dir goes, the blob stays.
push api-rc team/app/api:rc --format v2s2
record deleted-tagged team/app/api rc "deleted via API by digest while tagged (tag dir removed)"
RC_DIGEST=$(manifest_digest team/app/api rc)
delete_manifest team/app/api "$RC_DIGEST"
expect_same "GET team/app/api@rc-digest after delete" \
  "$(http_code "http://$REG/v2/team/app/api/manifests/$RC_DIGEST")" 404

# Untagged manifest in a tagged repo: pushed by digest only.
push web-untagged "team/app/web@$(oci_digest web-untagged)" --preserve-digests
record untagged team/app/web "$(oci_digest web-untagged)" "pushed by digest, never tagged"

# OCI 1.1 referrer (artifactType, empty config, subject = team/app/web:1.0), pushed BY DIGEST
# the way `oras attach` does. Registry 2.8 accepts it (it ignores artifactType and subject:
# no OCI-Subject header, no referrers API, GC does not follow subject).
push web-sbom "team/app/web@$(oci_digest web-sbom)" --preserve-digests
record referrer team/app/web "$(oci_digest web-sbom)" \
  "OCI artifact application/vnd.example.sbom.v1, empty config, subject $WEB_DIGEST, untagged"

# cosign tag-scheme signature: tag sha256-<hex of the signed manifest>.sig
SIG_TAG="sha256-${WEB_DIGEST#sha256:}.sig"
push web-sig "team/app/web:$SIG_TAG" --preserve-digests
record cosign-sig team/app/web "$SIG_TAG" "cosign-style signature manifest for $WEB_DIGEST"

if [ "${WITH_DIGEST_ONLY_REPO:-0}" = 1 ]; then
  push digestonly "digestonly/app@$(oci_digest digestonly)" --preserve-digests
  record digest-only-repo digestonly/app "$(oci_digest digestonly)" \
    "only manifest of a repo with no _manifests/tags dir (2.8 GC --delete-untagged aborts)"
fi

# Abandoned uploads, made with the raw API because every real client completes its uploads:
# POST + PATCH 4096 + PATCH 2048 and no PUT; and a repo that only ever saw a POST (it is a
# directory with nothing but _uploads/, invisible to _catalog and GC).
python3 -c 'import sys; sys.stdout.buffer.write((b"regfix-abandoned-upload\n" * 300)[:6144])' >"$WORK/upload.bin"
head -c 4096 "$WORK/upload.bin" >"$WORK/chunk1"
tail -c 2048 "$WORK/upload.bin" >"$WORK/chunk2"
read -r uuid loc < <(upload_post team/app/api)
if [ -z "$uuid" ] || [ -z "$loc" ]; then die "POST upload to team/app/api gave no UUID/Location"; fi
loc=$(upload_patch "$(abs_url "$loc")" 0 "$WORK/chunk1")
loc=$(upload_patch "$(abs_url "$loc")" 4096 "$WORK/chunk2")
[ -n "$loc" ] || die "PATCH upload to team/app/api failed"
printf 'abandoned-upload\tteam/app/api\t%s\t-\t-\tPOST + PATCH 4096 + PATCH 2048, never PUT; 6144 bytes\n' "$uuid" >>"$TSV"
read -r uuid loc < <(upload_post uploads/abandoned)
[ -n "$uuid" ] || die "POST upload to uploads/abandoned gave no UUID"
printf 'upload-only-repo\tuploads/abandoned\t%s\t-\t-\tPOST only; repo has nothing but _uploads/\n' "$uuid" >>"$TSV"

# --- 6. what the API says now -----------------------------------------------------------------
# tags/list is unsorted in 2.8 (readdir order), so everything is sorted here.
catalog=$(curl -fsS "http://$REG/v2/_catalog?n=1000" | jq -c '.repositories | sort')
: >"$WORK/tags.jsonl"
: >"$WORK/manifests.jsonl"
: >"$WORK/errors.jsonl"
for repo in $(jq -r '.[]' <<<"$catalog"); do
  body=$(curl -sS -w '\n%{http_code}' "http://$REG/v2/$repo/tags/list")
  code=${body##*$'\n'} body=${body%$'\n'*}
  if [ "$code" != 200 ]; then
    # e.g. a repo with no tags dir: 404 NAME_UNKNOWN although _catalog lists it
    jq -c --arg r "$repo" --arg c "$code" '{($r): {status: ($c | tonumber), body: .}}' <<<"$body" >>"$WORK/errors.jsonl"
    continue
  fi
  jq -c --arg r "$repo" '{($r): ((.tags // []) | sort)}' <<<"$body" >>"$WORK/tags.jsonl"
  for tag in $(jq -r '(.tags // [])[]' <<<"$body"); do
    dt=$(head_manifest "$repo" "$tag")
    jq -nc --arg k "$repo:$tag" --arg d "${dt%% *}" --arg t "${dt#* }" \
      '{($k): {digest: $d, mediaType: $t}}' >>"$WORK/manifests.jsonl"
  done
done
jq -n --argjson catalog "$catalog" \
      --slurpfile tags "$WORK/tags.jsonl" \
      --slurpfile manifests "$WORK/manifests.jsonl" \
      --slurpfile errors "$WORK/errors.jsonl" '
  {catalog: $catalog,
   tags: ($tags | add // {}),
   manifests: ($manifests | add // {} | to_entries | sort_by(.key) | from_entries)}
  + (if ($errors | length) > 0 then {tags_list_errors: ($errors | add)} else {} end)' \
  >"$TARGET/api-state.json"

# --- 7. stop (or keep) the registry, sanity checks, report ------------------------------------
if [ "${KEEP_RUNNING:-0}" = 1 ]; then
  printf '%s\n' "$REG_PID" >"$TARGET/registry.pid"
  log "KEEP_RUNNING=1: registry stays up, PID $REG_PID on http://$REG (stop: kill $REG_PID)"
  REG_PID=   # so the EXIT trap leaves it alone
else
  stop_registry
fi

if [ -z "${STORAGE_SECTION_FILE:-}" ]; then
  n_up=$(find "$STORAGE" -path '*/_uploads/*' -name startedat | wc -l)
  [ "$n_up" -eq 2 ] || die "expected 2 abandoned uploads in storage, found $n_up"
  n_blobs=$(find "$STORAGE" -path '*/blobs/*' -name data | wc -l)
else
  n_blobs="(not on a filesystem)"
fi
elapsed_ms=$(( ($(date +%s%N) - START_NS) / 1000000 ))
log "done in ${elapsed_ms} ms: $(( $(wc -l <"$TSV") - 1 )) fixture rows, $n_blobs blobs"
echo "TARGET=$TARGET"
echo "STORAGE_ROOT=$STORAGE/docker/registry/v2"
echo "CONFIG=$TARGET/config.yml"
echo "REGISTRY=$REG"
if [ "${KEEP_RUNNING:-0}" = 1 ]; then echo "REGISTRY_PID=$(cat "$TARGET/registry.pid")"; fi
