#!/usr/bin/env bash
# `make demo`: the daemon end to end on the demo model. Starts `losad run` with Config/demo.toml
# (folders under var/demo/, emptied first), drops SmolLM2-135M-Instruct into its inbox, follows the
# job with `losactl watch` to the end, prints `losactl jobs` and the job's report table, and stops
# the daemon with SIGTERM. The build and the model come from `make release demo-model`.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(cd "$root" && swift build -c release --show-bin-path)
model=$(bash "$root/scripts/fetch-demo-model.sh")
demo="$root/var/demo"
socket="$demo/losad.sock"
rm -rf "$demo"
mkdir -p "$demo/inbox"

"$bin/losad" version
echo
echo "== losad run --config Config/demo.toml (log: var/demo/losad.log)"
LOSAD_LOG_LEVEL=info "$bin/losad" run --config "$root/Config/demo.toml" 2> "$demo/losad.log" &
daemon=$!
stop() {
    if kill -0 "$daemon" 2>/dev/null; then
        kill -TERM "$daemon"
        wait "$daemon" || true
    fi
}
trap stop EXIT
for _ in $(seq 300); do
    [ -S "$socket" ] && "$bin/losactl" status --socket "$socket" > /dev/null 2>&1 && break
    kill -0 "$daemon" 2>/dev/null || { cat "$demo/losad.log" >&2; exit 1; }
    sleep 0.2
done
"$bin/losactl" status --socket "$socket"

name=$(basename "$model")
echo
echo "== dropping $name into var/demo/inbox"
cp "$model" "$demo/inbox/.$name.part"
mv "$demo/inbox/.$name.part" "$demo/inbox/$name"
# The job exists once the file has settled and been hashed.
job=""
for _ in $(seq 600); do
    job=$("$bin/losactl" jobs --json --socket "$socket" | python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"]; print(j[0]["id"] if j else "")')
    [ -n "$job" ] && break
    sleep 0.5
done
[ -n "$job" ] || { echo "the daemon did not take the model; see var/demo/losad.log" >&2; exit 1; }

echo
echo "== losactl watch $job"
"$bin/losactl" watch "$job" --socket "$socket" || true
echo
echo "== losactl jobs"
"$bin/losactl" jobs --socket "$socket"
echo
output=$("$bin/losactl" show "$job" --json --socket "$socket" | python3 -c 'import json,sys; print(json.load(sys.stdin)["job"].get("output") or "")')
[ -n "$output" ] || { echo "job $job has no output; see var/demo/losad.log" >&2; exit 1; }
echo "== losad report ${output%/*}"
"$bin/losad" report "${output%/*}"
echo
echo "== stopping the daemon (SIGTERM)"
stop
trap - EXIT
tail -n 3 "$demo/losad.log"
