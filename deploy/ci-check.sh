#!/usr/bin/env bash
# What CI can prove about the container image without a container engine:
#   1. the Dockerfile's build (CGO_ENABLED=0, -trimpath) succeeds and gives a static binary:
#      no ELF interpreter, no dynamic section, so it runs on distroless "static" or scratch;
#   2. that binary starts as the image's non-root user (uid/gid 65532, no supplementary
#      groups) with --demo on loopback, reports ready on the admin port, serves /healthz and
#      /metrics, and exits 0 on SIGTERM after draining.
# Bounded in time (about two minutes once the build is cached); removes what it made.
# Usage: bash deploy/ci-check.sh   (from anywhere; needs go, curl, file, readelf)
set -euo pipefail
cd "$(dirname "$0")/.."

readonly RUN_UID=65532
readonly START_TIMEOUT=60 # seconds for the demo to print its addresses and turn ready
readonly STOP_TIMEOUT=40  # seconds for the drain after SIGTERM (GATEWAY_DRAIN_TIMEOUT is 25s)

fail() {
  echo "deploy/ci-check: FAIL: $*" >&2
  for f in "${work:-}/stdout" "${work:-}/stderr"; do
    if [ -s "$f" ]; then
      echo "--- last lines of $(basename "$f"):" >&2
      tail -n 20 "$f" >&2
    fi
  done
  exit 1
}

for tool in go curl file readelf; do
  command -v "$tool" >/dev/null || fail "$tool is not installed"
done

work=$(mktemp -d)
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT
chmod 0755 "$work"

# 1. The same build as deploy/Dockerfile's build stage.
echo "deploy/ci-check: building ./cmd/gateway as the Dockerfile does"
CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags="-s -w -buildid=" \
  -o "$work/gateway" ./cmd/gateway || fail "go build failed"

description=$(file -b "$work/gateway")
case "$description" in
  *"statically linked"*) ;;
  *) fail "binary is not statically linked: $description" ;;
esac
if readelf -l "$work/gateway" | grep -q 'Requesting program interpreter'; then
  fail "binary names an ELF interpreter; it would not start on distroless static or scratch"
fi
if readelf -d "$work/gateway" 2>/dev/null | grep -q '(NEEDED)'; then
  fail "binary needs shared libraries: $(readelf -d "$work/gateway" | grep '(NEEDED)')"
fi
buildinfo=$(go version -m "$work/gateway")
grep -q 'build[[:space:]]*CGO_ENABLED=0' <<<"$buildinfo" || fail "binary was built with cgo"
grep -q 'build[[:space:]]*-trimpath=true' <<<"$buildinfo" ||
  fail "binary was built without -trimpath"
echo "deploy/ci-check: static binary: $description"

# 2. Start it as the image's user. Root (CI) drops to uid 65532 with setpriv; anyone else is
# already not root and runs it as themselves.
mkdir -p "$work/tmp"
as_user=()
if [ "$(id -u)" = 0 ]; then
  command -v setpriv >/dev/null || fail "setpriv (util-linux) is needed to drop root"
  chown "$RUN_UID:$RUN_UID" "$work/tmp"
  as_user=(setpriv --reuid="$RUN_UID" --regid="$RUN_UID" --clear-groups --no-new-privs --)
  want_uid=$RUN_UID
else
  want_uid=$(id -u)
fi

# The output files exist before the child starts, so the loop below never reads a missing file
# while the child is still opening its redirections.
: >"$work/stdout"
: >"$work/stderr"
# Port 0: the kernel picks free loopback ports and the demo prints them, on stderr beside the
# operational log. TMPDIR is the only writable place it gets (--demo writes its policy there);
# the audit trail goes to stdout.
"${as_user[@]}" env -i PATH=/usr/bin:/bin TMPDIR="$work/tmp" GATEWAY_AUDIT_LOG=- \
  "$work/gateway" --demo --addr 127.0.0.1:0 --admin-addr 127.0.0.1:0 \
  >"$work/stdout" 2>"$work/stderr" &
pid=$!

admin=""
deadline=$((SECONDS + START_TIMEOUT))
while [ -z "$admin" ]; do
  kill -0 "$pid" 2>/dev/null || fail "gateway exited during start-up"
  [ "$SECONDS" -lt "$deadline" ] || fail "gateway printed no admin address in ${START_TIMEOUT}s"
  admin=$(sed -n 's#^Metrics, probes: *http://\([0-9.:]*\)/metrics.*#\1#p' "$work/stderr")
  [ -n "$admin" ] || sleep 0.2
done

uid=$(awk '/^Uid:/ {print $2}' "/proc/$pid/status")
[ "$uid" = "$want_uid" ] || fail "gateway runs as uid $uid, want $want_uid"
groups=$(awk '/^Groups:/ {$1=""; print $0}' "/proc/$pid/status" | xargs)
if [ "$want_uid" = "$RUN_UID" ] && [ -n "$groups" ]; then
  fail "gateway kept supplementary groups: $groups"
fi

until [ "$(curl -s -o /dev/null -w '%{http_code}' "http://$admin/readyz")" = 200 ]; do
  kill -0 "$pid" 2>/dev/null || fail "gateway exited before it was ready"
  [ "$SECONDS" -lt "$deadline" ] || fail "GET /readyz did not answer 200 in ${START_TIMEOUT}s"
  sleep 0.2
done
for path in /healthz /metrics; do
  code=$(curl -s -o /dev/null -w '%{http_code}' "http://$admin$path")
  [ "$code" = 200 ] || fail "GET $path on the admin port answered $code, want 200"
done
# Anything reading stdout as the audit trail must find no banner, and above all no key.
! grep -q 'Demo API key' "$work/stdout" || fail "the demo's banner went to stdout, the audit trail"
echo "deploy/ci-check: ready on $admin as uid $uid"

# 3. SIGTERM drains and exits 0, as Kubernetes stops a pod.
kill -TERM "$pid"
deadline=$((SECONDS + STOP_TIMEOUT))
while kill -0 "$pid" 2>/dev/null; do
  [ "$SECONDS" -lt "$deadline" ] || fail "gateway still running ${STOP_TIMEOUT}s after SIGTERM"
  sleep 0.2
done
status=0
wait "$pid" || status=$?
pid=""
[ "$status" = 0 ] || fail "gateway exited $status after SIGTERM, want 0"
echo "deploy/ci-check: stopped cleanly on SIGTERM"
echo "deploy/ci-check: ok"
