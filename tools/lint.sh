#!/usr/bin/env bash
# The static checks, run by tools/test.sh after the release build; each failure names file:line.
#   1. cppcheck over every C file of the project (git ls-files '*.c' '*.h') and the generated
#      control messages (protoc-c of comm/control.proto): fails on any finding, and on any file
#      it could not check (a syntax error, no valid configuration, a project header not found),
#      which cppcheck otherwise reports only as information, or not at all.
#   2. The include direction of the layers: base/ <- kernels/, comm/ (not each other) <-
#      runtime/ <- server/ <- launcher/; a file includes its own layer and those below it, and
#      a "x.h" without a folder must be in the file's own folder.
#   3. Function length: a definition over 80 lines in runtime/ comm/ server/ launcher/ fails
#      the run (ROE_LINT_STRICT_LENGTH=0 only lists them, while splitting one).
# Usage: tools/lint.sh   (from anywhere; needs cppcheck and protoc-c: tools/install-deps.sh)
#        ROE_JOBS=N: cppcheck processes (default: every core)
set -euo pipefail
cd "$(dirname "$0")/.."
fail=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ---- 1. cppcheck ----------------------------------------------------------------------------
mkdir -p "$tmp/gen/comm" "$tmp/sys"
protoc-c --c_out="$tmp/gen/comm" -Icomm comm/control.proto
# The generated header #errors unless protobuf-c's version macros are defined, so cppcheck
# must see protobuf-c.h: that header alone, not all of /usr/include (slow, and not ours).
pbc="$(pkg-config --variable=includedir libprotobuf-c 2>/dev/null || echo /usr/include)/protobuf-c"
[ -f "$pbc/protobuf-c.h" ] || { echo "lint: $pbc/protobuf-c.h not found (libprotobuf-c-dev)"; exit 1; }
ln -s "$pbc" "$tmp/sys/protobuf-c"
mapfile -t files < <(git ls-files '*.c' '*.h')
files+=("$tmp/gen/comm/control.pb-c.c" "$tmp/gen/comm/control.pb-c.h")
jobs=${ROE_JOBS:-$(nproc)}
args=(
    -j "$jobs" --error-exitcode=1
    --std=c11 --language=c --library=posix,gnu
    --enable=warning,style,performance,portability,information
    --inline-suppr # each inline suppression says why, next to it
    -I. -Itests -I"$tmp/gen" -I"$tmp/sys"
    --template='{file}:{line}: {severity}: {message} [{id}]'
    # a header checked on its own uses none of its struct members
    --suppress='unusedStructMember:*.h'
    # readdir_r, which readdirCalled recommends, is deprecated (glibc 2.24): readdir is safe
    # as long as a directory stream is not shared between threads
    --suppress=readdirCalled
    # protoc-c writes "0 | PROTOBUF_C_FIELD_FLAG_..." for fields without flags
    --suppress="badBitmaskCheck:$tmp/gen/comm/control.pb-c.c"
)
# System headers are left out on purpose (see above); cppcheck says so in one process only,
# and would call the suppression unmatched in several.
[ "$jobs" -eq 1 ] && args+=(--suppress=missingIncludeSystem)
rc=0
nice cppcheck "${args[@]}" "${files[@]}" >"$tmp/cppcheck.out" 2>"$tmp/cppcheck.err" || rc=$?
# A file cppcheck gave up on shows up as a finding (information enabled); these words catch
# what a future version might print elsewhere.
skips=$(grep -hiE 'bailing out|syntax error|skipping|not analyzed|failed to extract|too many #ifdef' \
        "$tmp/cppcheck.out" "$tmp/cppcheck.err" || true)
unchecked=()
for f in "${files[@]}"; do grep -qF "Checking $f " "$tmp/cppcheck.out" || unchecked+=("$f"); done
if [ -s "$tmp/cppcheck.err" ] || [ -n "$skips" ] || [ ${#unchecked[@]} -gt 0 ] || [ "$rc" -ne 0 ]; then
    cat "$tmp/cppcheck.err"
    [ -n "$skips" ] && printf '%s\n' "$skips"
    [ ${#unchecked[@]} -gt 0 ] && printf 'lint: cppcheck did not check %s\n' "${unchecked[@]}"
    echo "lint: cppcheck FAILED (exit $rc): the findings above; fix the code (or, for a false"
    echo "      positive, add '// cppcheck-suppress <id>' above the line, saying why)"
    fail=1
else
    echo "lint: cppcheck: ${#files[@]} files, no findings"
fi

# ---- 2. include direction -------------------------------------------------------------------
mapfile -t layered < <(git ls-files 'base/*' 'kernels/*' 'comm/*' 'runtime/*' 'server/*' 'launcher/*' |
                       grep -E '\.(c|h|cu|cuh)$')
if awk '
BEGIN {
    may["base"] = "base"
    may["kernels"] = "base kernels"
    may["comm"] = "base comm"
    may["runtime"] = "base kernels comm runtime"
    may["server"] = "base kernels comm runtime server"
    may["launcher"] = "base kernels comm runtime server launcher"
}
/^[ \t]*#[ \t]*include[ \t]*"/ {
    inc = $0
    sub(/^[^"]*"/, "", inc)
    sub(/".*/, "", inc)
    top = FILENAME
    sub(/\/.*/, "", top)
    dir = FILENAME
    sub(/\/[^\/]*$/, "", dir)
    if (inc !~ /\//) {
        path = dir "/" inc
        if ((getline line < path) < 0) {
            printf "%s:%d: #include \"%s\" has no folder and is not in %s/ (name its folder)\n", FILENAME, FNR, inc, dir
            bad = 1
        }
        close(path)
        next
    }
    itop = inc
    sub(/\/.*/, "", itop)
    if (!(itop in may)) {
        printf "%s:%d: #include \"%s\": %s/ is not a layer (a system header takes <...>)\n", FILENAME, FNR, inc, itop
        bad = 1
    } else if (index(" " may[top] " ", " " itop " ") == 0) {
        allowed = may[top]
        gsub(/ /, "/, ", allowed)
        printf "%s:%d: #include \"%s\": %s/ may include only %s/\n", FILENAME, FNR, inc, top, allowed
        bad = 1
    }
}
END { exit bad }
' "${layered[@]}"; then
    echo "lint: includes: ${#layered[@]} files, every include points down or sideways as allowed"
else
    echo "lint: includes FAILED: the lines above include a higher layer or a neighbour (the rule: top of tools/lint.sh)"
    fail=1
fi

# ---- 3. function length ---------------------------------------------------------------------
# A definition starts at column 0 (name and '(' on its first line, the '{' ending its last
# header line) and ends at a '}' in column 0, as clang-format lays out this repository; a
# header with '=' outside parentheses is an initialiser (a table), not a function.
mapfile -t cfiles < <(git ls-files 'runtime/*.c' 'comm/*.c' 'server/*.c' 'launcher/*.c')
awk -v max=80 '
function opens(h,   s) {
    s = h
    sub(/\/\*.*$/, "", s); sub(/\/\/.*$/, "", s)
    while (s ~ /\([^()]*\)/) gsub(/\([^()]*\)/, "", s)
    return s !~ /=/
}
FNR == 1 { inhdr = 0; infn = 0 }
infn {
    if ($0 ~ /^}/) {
        if (FNR - start + 1 > max) printf "%s:%d: %s %d lines\n", FILENAME, start, name, FNR - start + 1
        infn = 0
    }
    next
}
inhdr {
    hdr = hdr " " $0
    code = $0
    sub(/[ \t]*(\/\*.*\*\/|\/\/.*)[ \t]*$/, "", code)
    if (code ~ /;[ \t]*$/) inhdr = 0
    else if (code ~ /\{[ \t]*$/) { inhdr = 0; infn = opens(hdr) }
    next
}
/^[A-Za-z_]/ && /\(/ {
    hdr = $0
    start = FNR
    s = $0
    sub(/\(.*/, "", s)
    n = split(s, w, /[ \t*]+/)
    name = w[n]
    code = $0
    sub(/[ \t]*(\/\*.*\*\/|\/\/.*)[ \t]*$/, "", code)
    if (code ~ /\{[ \t]*$/) infn = opens(hdr)
    else if (code !~ /[;}][ \t]*$/) inhdr = 1
}
' "${cfiles[@]}" >"$tmp/long.txt"
if [ -s "$tmp/long.txt" ]; then
    echo "lint: functions over 80 lines in runtime/ comm/ server/ launcher/:"
    sed 's/^/  /' "$tmp/long.txt"
    if [ "${ROE_LINT_STRICT_LENGTH:-1}" = 1 ]; then
        echo "lint: function length FAILED: split the functions above (a table is no function)"
        fail=1
    fi
else
    echo "lint: function length: none over 80 lines"
fi
exit $fail
