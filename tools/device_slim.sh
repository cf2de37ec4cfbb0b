#!/usr/bin/env bash
# tools/device_slim.sh — keep a device call's working tree under the device tool's 64 MiB.
# A call sends the tracked files (and untracked, not ignored ones, and what `carry` names); the
# tracked tree alone is ~69 MB (models/ 40 MB, tests/fixtures 23 MB), so a GPU call fails before it
# starts unless some of it stays behind. This takes paths out of git's index for the call (the
# files stay on disk, hidden by .git/info/exclude) and puts them back after:
#   tools/device_slim.sh size                  # MiB that would travel now (without carry)
#   tools/device_slim.sh hide PATH...          # e.g. models/llama-tiny models/mor-tiny (gpu_check.sh)
#                                              #      models tests/fixtures (gpu_train_spec.sh)
#   tools/device_slim.sh restore               # back as before (run it after the call, always)
# Nothing is committed: `git status` shows the hidden paths as deleted from the index until restore.
set -euo pipefail
cd "$(dirname "$0")/.."
excl=.git/info/exclude
list=.git/device_slim   # the hidden paths, one a line
size() {
    { git ls-files -z; git ls-files -z --others --exclude-standard; } | xargs -0 du -cb 2>/dev/null |
        awk '$2 == "total" {t += $1} END {printf "%.1f MiB would travel (limit 64, carry counts too)\n", t / 1048576}'
}
case "${1:-}" in
size) size ;;
hide)
    shift
    [ $# -gt 0 ] || { echo "device_slim: hide needs paths" >&2; exit 2; }
    for p in "$@"; do
        [ -e "$p" ] || { echo "device_slim: $p does not exist" >&2; exit 2; }
        git rm -r -q --cached -- "$p"
        echo "/$p" >>"$excl"
        echo "$p" >>"$list"
    done
    size ;;
restore)
    [ -f "$list" ] || { echo "device_slim: nothing hidden"; size; exit 0; }
    while read -r p; do
        git reset -q -- "$p"
        grep -vxF "/$p" "$excl" >"$excl.tmp" || true
        mv "$excl.tmp" "$excl"
    done <"$list"
    rm -f "$list"
    git status --short | head
    size ;;
*) echo "usage: tools/device_slim.sh size | hide PATH... | restore" >&2; exit 2 ;;
esac
