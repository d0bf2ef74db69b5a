#!/usr/bin/env bash
# The unit checks of `make check-systemd`, run on a DESTDIR install of the binaries in BIN_DIR:
#
#   scripts/check-systemd.sh BIN_DIR [MAX_EXPOSURE]
#
# 1. `systemd-analyze verify` of losad.service and losad.socket reports nothing. It runs with
#    --root on a copy of the install that also holds this machine's own systemd units (the
#    targets the units are ordered against), so that ExecStart='s binary is found where the
#    unit says it is.
# 2. `systemd-analyze security --offline=true` on the installed losad.service: the overall
#    exposure is at most MAX_EXPOSURE (default 1.0, "SAFE"); each setting it counts against the
#    unit is listed.
# Prints the exposure line last; exits 1 when a check fails, 2 when it cannot run.
set -euo pipefail

bin=${1:?usage: check-systemd.sh BIN_DIR [MAX_EXPOSURE]}
maximum=${2:-1.0}
repository=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
command -v systemd-analyze >/dev/null || { echo "check-systemd.sh: systemd-analyze is missing (apt-get install systemd)" >&2; exit 2; }
[ -d /usr/lib/systemd/system ] || { echo "check-systemd.sh: /usr/lib/systemd/system is missing" >&2; exit 2; }

root=$(mktemp -d "${TMPDIR:-/tmp}/losad-check-systemd.XXXXXX")
trap 'rm -rf "$root"' EXIT
# The install losad's own `make install` would make, staged.
for name in BINDIR DATADIR SYSCONFDIR UNITDIR SYSUSERSDIR TMPFILESDIR BASHCOMPLETIONDIR ZSHCOMPLETIONDIR \
    FISHCOMPLETIONDIR VARLINKDIR DOCDIR; do unset "$name"; done
DESTDIR=$root BUILT=$bin PREFIX=/usr/local bash "$repository/scripts/install.sh" install >/dev/null
# What a real system has beside it: systemd's own units (sysinit.target, sockets.target, …).
mkdir -p "$root/usr/lib/systemd"
cp -a /usr/lib/systemd/system "$root/usr/lib/systemd/"

status=0
echo "== systemd-analyze verify losad.service losad.socket"
if ! verify=$(systemd-analyze verify --root="$root" --man=no losad.service losad.socket 2>&1) || [ -n "$verify" ]; then
    echo "$verify"
    echo "FAILED: systemd-analyze verify reported the above"
    status=1
else
    echo "nothing reported"
fi

echo "== systemd-analyze security --offline=true losad.service"
security=$(systemd-analyze security --offline=true --root="$root" --no-pager losad.service 2>&1) || true
# Each setting counted against the unit: a ✗ line with its exposure.
grep '✗' <<<"$security" | sed -E 's/ {2,}/  /g' || true
summary=$(grep -m1 'Overall exposure level for losad.service' <<<"$security" || true)
exposure=$(sed -nE 's/.*losad\.service: ([0-9]+\.[0-9]+) .*/\1/p' <<<"$summary")
if [ -z "$exposure" ]; then
    echo "$security"
    echo "FAILED: no exposure level in systemd-analyze security's output"
    exit 1
fi
if awk -v e="$exposure" -v m="$maximum" 'BEGIN { exit !(e <= m) }'; then
    echo "$summary (at most $maximum: passed)"
else
    echo "$summary"
    echo "FAILED: exposure $exposure is above $maximum"
    status=1
fi
exit $status
