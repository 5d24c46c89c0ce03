#!/bin/bash
# The sidecar's main process: every complete CSV file the app moves into
# $OUTBOX is replayed by one run of rtproc (sidecar.conf), then deleted. The
# app writes elsewhere on the same volume and renames, so no half-written
# file is ever seen. On SIGTERM the running rtproc drains (its grace period)
# and the loop exits; a file not finished stays for the next start, which
# resumes it from rtproc's checkpoint.
set -u
outbox=${OUTBOX:-/data/outbox}
conf=${RTPROC_PIPELINE:-/etc/rtproc-sidecar/sidecar.conf}
export STATE_DIR=${STATE_DIR:-/data/state}
mkdir -p "$outbox" "$STATE_DIR" || exit 1

child=
stop() {
    if [[ -n $child ]]; then
        kill -TERM "$child" 2>/dev/null
        wait "$child"
    fi
    exit 0
}
trap stop TERM INT

while :; do
    for f in "$outbox"/*.csv; do
        [[ -e $f ]] || continue
        CSV_PATH=$f rtproc -c "$conf" &
        child=$!
        wait "$child"
        rc=$?
        child=
        if [[ $rc -eq 0 ]]; then
            rm -f -- "$f"
        else
            echo "sidecar: rtproc exited with $rc on $f; trying again in 10s" >&2
            sleep 10 &
            wait $!
        fi
    done
    sleep 2 &
    wait $!
done
