#!/usr/bin/env bash
# Runs a command under the parts of systemd/losad.service's confinement that can be had
# without systemd as PID 1, so that tests can show the daemon works inside them:
#
#   confine.sh --user UID:GID [--readable DIR]... [--writable DIR]... [--action errno|kill] -- COMMAND [ARG...]
#
# Must run as root (it builds namespaces and mounts, then drops to UID:GID). The command and
# its files must lie outside the hidden folders below (/home, /root, /run/user, /tmp, /var/tmp),
# or in a --readable or --writable folder, which is bound back (read-only or writable) after
# the rest is hidden. What it sets up, with the unit's setting each part stands for:
#   unshare --mount --net --ipc --uts   PrivateMounts, PrivateNetwork (loopback down),
#                                       PrivateIPC, ProtectHostname
#   every mount remounted read-only     ProtectSystem=strict, ProtectKernelTunables,
#                                       ProtectControlGroups (/sys, /proc/sys read-only)
#   a new /proc with hidepid=invisible  ProtectProc=invisible
#   empty tmpfs on /tmp and /var/tmp    PrivateTmp
#   inaccessible /home, /root, /run/user ProtectHome=yes
#   a /dev with null, zero, full,       PrivateDevices (no disks, no GPU, no /dev/kmsg:
#   random, urandom and shm               ProtectKernelLogs)
#   each --readable DIR bound back ro   (the files a test gives the daemon under /tmp)
#   each --writable DIR bound back rw   StateDirectory=, RuntimeDirectory=, ReadWritePaths=
#   umask 0027, I/O best-effort 7,      UMask=, IOSchedulingClass/Priority=, OOMScoreAdjust=
#   oom_score_adj 500
#   setpriv: --reuid/--regid, no        User=, Group=, NoNewPrivileges, CapabilityBoundingSet=
#   supplementary groups, no-new-privs, (empty), AmbientCapabilities= (empty)
#   empty bounding/inheritable/ambient
#   scripts/seccomp_filter.py           SystemCallFilter=, SystemCallArchitectures=,
#                                       MemoryDenyWriteExecute, RestrictAddressFamilies,
#                                       RestrictNamespaces, RestrictRealtime, LockPersonality
# Not reproduced: RestrictSUIDSGID, RemoveIPC, KeyringMode, IPAddressDeny (no network anyway),
# DevicePolicy's cgroup device filter (the private /dev has only the harmless nodes).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
usage() { sed -n '5p' "${BASH_SOURCE[0]}" | sed 's/^#  *//' >&2; exit 2; }

user="" action="errno" readable=() writable=()
while [ $# -gt 0 ]; do
    case "$1" in
        --user) user=${2:?}; shift 2 ;;
        --readable) readable+=("$(realpath -e "${2:?}")"); shift 2 ;;
        --writable) writable+=("$(realpath -e "${2:?}")"); shift 2 ;;
        --action) action=${2:?}; shift 2 ;;
        --) shift; break ;;
        *) usage ;;
    esac
done
[ $# -gt 0 ] && [[ "$user" =~ ^[0-9]+:[0-9]+$ ]] || usage
[ "$(id -u)" = 0 ] || { echo "confine.sh: needs root (namespaces and mounts)" >&2; exit 1; }
for tool in unshare setpriv mount findmnt /usr/bin/python3; do
    command -v "$tool" >/dev/null || { echo "confine.sh: $tool is missing" >&2; exit 1; }
done

if [ "${LOSAD_CONFINE_INSIDE:-}" != 1 ]; then
    args=(--user "$user" --action "$action")
    for dir in "${readable[@]}"; do args+=(--readable "$dir"); done
    for dir in "${writable[@]}"; do args+=(--writable "$dir"); done
    exec env LOSAD_CONFINE_INSIDE=1 unshare --mount --net --ipc --uts --propagation private \
        -- "${BASH_SOURCE[0]}" "${args[@]}" -- "$@"
fi
unset LOSAD_CONFINE_INSIDE

# The filter's source, read now: scripts/ may be hidden below (a clone in a home folder).
filter_source=$(<"$here/seccomp_filter.py")
# Hold each folder to bind back and each device open: the mounts below hide their paths, and
# /proc/self/fd/N still names them (a bind mount follows the open file, not the path).
bound=("${readable[@]}" "${writable[@]}")
dir_fds=()
for dir in "${bound[@]}"; do exec {fd}<"$dir"; dir_fds+=("$fd"); done
devices=(null zero full random urandom)
device_fds=()
for device in "${devices[@]}"; do exec {fd}<"/dev/$device"; device_fds+=("$fd"); done

# ProtectProc=invisible: a /proc of our own that shows other users' processes to nobody.
mount -t proc -o nosuid,nodev,noexec,hidepid=invisible proc /proc

# ProtectSystem=strict (and the kernel tunables and cgroup tree): every mount read-only,
# deepest first so a parent's remount does not hide a child. /proc and /dev come next.
findmnt -rn -o TARGET | sort -r | while read -r target; do
    target=$(printf '%b' "$target")   # findmnt escapes spaces as \x20
    case "$target" in /proc|/proc/*|/dev|/dev/*) continue ;; esac
    mount -o remount,bind,ro "$target" 2>/dev/null \
        || { [ "$target" != / ] || { echo "confine.sh: cannot make / read-only" >&2; exit 1; }; }
done
mount --bind /proc/sys /proc/sys && mount -o remount,bind,ro /proc/sys

# PrivateTmp, ProtectHome=yes.
for dir in /tmp /var/tmp; do [ -d "$dir" ] && mount -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$dir"; done
for dir in /home /root /run/user; do [ -d "$dir" ] && mount -t tmpfs -o ro,mode=000,nosuid,nodev,noexec tmpfs "$dir"; done

# PrivateDevices: a /dev with the harmless nodes only.
mount -t tmpfs -o mode=0755,nosuid,noexec tmpfs /dev
for index in "${!devices[@]}"; do
    touch "/dev/${devices[$index]}"
    mount --no-canonicalize --bind "/proc/self/fd/${device_fds[$index]}" "/dev/${devices[$index]}"
done
mkdir /dev/shm && mount -t tmpfs -o mode=1777,nosuid,nodev,noexec tmpfs /dev/shm
ln -s /proc/self/fd /dev/fd && ln -s /proc/self/fd/0 /dev/stdin
ln -s /proc/self/fd/1 /dev/stdout && ln -s /proc/self/fd/2 /dev/stderr

# The readable, then the writable folders back where they were (one under /tmp is recreated on
# the new tmpfs; a writable one inside a readable one finds its mount point there).
for index in "${!bound[@]}"; do
    dir=${bound[$index]}
    [ -d "$dir" ] || mkdir -p "$dir"
    mount --no-canonicalize --bind "/proc/self/fd/${dir_fds[$index]}" "$dir"
    if [ "$index" -lt "${#readable[@]}" ]; then mode=ro; else mode=rw; fi
    mount -o "remount,bind,$mode" "$dir"
done
for fd in "${dir_fds[@]}" "${device_fds[@]}"; do exec {fd}<&-; done

umask 0027
echo 500 > /proc/self/oom_score_adj
ionice -c 2 -n 7 -p $$ 2>/dev/null || true
exec setpriv --reuid="${user%%:*}" --regid="${user##*:}" --clear-groups --no-new-privs \
    --bounding-set=-all --inh-caps=-all --ambient-caps=-all \
    -- /usr/bin/python3 -c "$filter_source" --action "$action" -- "$@"
