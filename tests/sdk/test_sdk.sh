#!/usr/bin/env bash
# The SDK proof: install rtproc into a scratch prefix, build two plugins out
# of tree against the installed headers (found through pkg-config), and load
# them into the installed binary.
#
#   test_sdk.sh BUILD_DIR SOURCE_DIR      (registered as ctest sdk.out_of_tree)
#
# 1. `cmake --install BUILD_DIR --prefix TMP/prefix`
# 2. TMP/prefix/bin/rtproc --list-plugins finds every installed plugin, with
#    no flag and no RTPROC_PLUGINS_DIR
# 3. out_counter.so, built with `cc -shared -fPIC $(pkg-config --cflags rtproc)`
#    outside the source tree, counts every data row of conf/data/stocks_sample.csv
# 4. bad_abi.so (ABI major + 1) is refused: exit status 2, and stderr names the
#    file and both ABI versions
#
# When BUILD_DIR was configured with RTP_SANITIZE=ON, the plugins are built
# with the same compiler and -fsanitize=address,undefined, like the binary.
set -euo pipefail

if [[ $# -ne 2 ]]; then
    echo "usage: $0 BUILD_DIR SOURCE_DIR" >&2
    exit 2
fi
build=$(cd "$1" && pwd)
src=$(cd "$2" && pwd)
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

tmp=$(mktemp -d "${TMPDIR:-/tmp}/rtproc-sdk.XXXXXX")
cleanup() { rm -rf "$tmp"; }
trap cleanup EXIT

fails=0
step() { printf '\n== %s\n' "$*"; }
ok() { printf 'ok: %s\n' "$*"; }
fail() {
    printf 'FAIL: %s\n' "$*" >&2
    fails=$((fails + 1))
}
die() {
    printf 'FAIL: %s\n' "$*" >&2
    exit 1
}
show() { # show FILE: its content, indented, for the test log
    sed 's/^/    | /' "$1" >&2
}

# The installed binary must find its plugins by itself: no hint from the
# environment of whoever runs the test.
unset RTPROC_PLUGINS_DIR

# ---- 1. install --------------------------------------------------------------
step "cmake --install $build --prefix $tmp/prefix"
prefix=$tmp/prefix
if ! cmake --install "$build" --prefix "$prefix" >"$tmp/install.log" 2>&1; then
    show "$tmp/install.log"
    die "cmake --install failed"
fi
rtproc=$prefix/bin/rtproc
[[ -x $rtproc ]] || die "no $rtproc after install"
ok "installed into $prefix"

# ---- 2. the installed binary finds the installed plugins ----------------------
step "$rtproc --list-plugins"
installed=()
while IFS= read -r -d '' so; do installed+=("$so"); done \
    < <(find "$prefix" -path '*/rtproc/plugins/*.so' -print0 | sort -z)
[[ ${#installed[@]} -gt 0 ]] || die "no plugin installed under $prefix/*/rtproc/plugins"
"$rtproc" --list-plugins >"$tmp/list.out" 2>"$tmp/list.err" || {
    show "$tmp/list.err"
    die "rtproc --list-plugins failed"
}
cat "$tmp/list.out"
for so in "${installed[@]}"; do
    # list-plugins prints each plugin's path as <bindir>/../lib/...: compare
    # canonical paths.
    found=no
    while read -r path; do
        [[ $path == /* && -e $path ]] || continue
        if [[ $(readlink -f "$path") == "$(readlink -f "$so")" ]]; then found=yes; fi
    done < <(awk 'NF == 1 { print $1 }' "$tmp/list.out")
    if [[ $found == yes ]]; then
        ok "lists $(basename "$so")"
    else
        fail "--list-plugins does not list the installed $so"
    fi
done
if grep -qF -- "$build" "$tmp/list.out"; then
    fail "--list-plugins shows plugins from the build tree $build, not only the installed ones"
fi

# ---- 3. build a plugin out of tree ------------------------------------------
step "pkg-config --cflags rtproc"
pcfile=
for f in "$prefix"/lib/pkgconfig/rtproc.pc "$prefix"/lib*/pkgconfig/rtproc.pc \
    "$prefix"/lib/*/pkgconfig/rtproc.pc "$prefix"/share/pkgconfig/rtproc.pc; do
    if [[ -f $f ]]; then
        pcfile=$f
        break
    fi
done
[[ -n $pcfile ]] || die "no rtproc.pc installed under $prefix"
pcdir=$(dirname "$pcfile")
cflags=$(PKG_CONFIG_PATH=$pcdir pkg-config --cflags rtproc) || die "pkg-config --cflags rtproc failed"
echo "cflags: $cflags"
incdir=
read -r -a cflag_words <<<"$cflags"
for w in "${cflag_words[@]}"; do
    if [[ $w == -I* && -f ${w#-I}/rtproc/rtproc.h ]]; then incdir=${w#-I}; fi
done
if [[ -z $incdir ]]; then
    echo "    rtproc.pc says: $(grep -E '^(prefix|includedir)=' "$pcfile" | tr '\n' ' ')" >&2
    die "pkg-config --cflags rtproc points at no directory holding rtproc/rtproc.h; rtproc.pc" \
        "must locate the headers of the prefix it was installed into ($prefix), e.g. with" \
        "prefix=\${pcfiledir}/../.. (the .pc file sits in PREFIX/lib/pkgconfig)"
fi
case $(readlink -f "$incdir") in
"$(readlink -f "$prefix")"/*) ok "headers found in $incdir" ;;
*) fail "pkg-config gives headers from $incdir, outside the installed prefix $prefix" ;;
esac

# The compiler and flags: plain `cc -shared -fPIC`, as a third party would,
# plus strict warnings so the SDK headers stay clean for them. An ASan build
# of rtproc gets plugins built with the same compiler and sanitizers.
cc_cmd=(cc)
extra=(-std=c11 -Wall -Wextra -Werror -O1 -g)
sanitize=$(sed -n 's/^RTP_SANITIZE:BOOL=//p' "$build/CMakeCache.txt" 2>/dev/null || true)
case ${sanitize^^} in
ON | TRUE | YES | 1 | Y)
    compiler=$(sed -n 's/^CMAKE_C_COMPILER:[A-Z]*=//p' "$build/CMakeCache.txt")
    cc_cmd=("${compiler:-cc}")
    extra+=("-fsanitize=address,undefined" -fno-sanitize-recover=undefined -fno-omit-frame-pointer)
    echo "build $build has RTP_SANITIZE=$sanitize: plugins built with ${cc_cmd[*]} -fsanitize=address,undefined"
    ;;
esac

work=$tmp/work # outside the source tree: only the installed headers are visible
mkdir -p "$work"
cp "$here/out_counter.c" "$here/bad_abi.c" "$work/"
build_plugin() { # build_plugin NAME
    step "${cc_cmd[*]} -shared -fPIC \$(pkg-config --cflags rtproc) -o $1.so $1.c"
    (cd "$work" && "${cc_cmd[@]}" -shared -fPIC "${cflag_words[@]}" "${extra[@]}" -o "$1.so" "$1.c") \
        >"$tmp/cc-$1.log" 2>&1 || {
        show "$tmp/cc-$1.log"
        die "cannot build $1.so out of tree"
    }
    ok "built $work/$1.so"
}
build_plugin out_counter
build_plugin bad_abi

# ---- 3b. load it and count ---------------------------------------------------
step "run the installed rtproc with [plugins] path = out_counter.so"
csv=$src/conf/data/stocks_sample.csv
[[ -f $csv ]] || die "missing $csv"
# Data rows: non-empty lines after the header (the sample has no quoted newlines).
expected=$(awk 'NR > 1 && NF > 0 { n++ } END { print n + 0 }' "$csv")
# Long paths go through ${VAR}: libinih limits a line to 200 characters.
cat >"$tmp/counter.conf" <<'EOF'
[service]
log_level = info

[plugins]
path = ${SDK_WORK}/out_counter.so

[input.sample]
plugin      = csv
path        = ${SDK_CSV}
tag         = stocks
exit_on_eof = true

[output.counter]
match = stocks
path  = ${SDK_TMP}/count.txt
EOF
rc=0
SDK_WORK=$work SDK_CSV=$csv SDK_TMP=$tmp timeout 120 "$rtproc" -c "$tmp/counter.conf" \
    >"$tmp/counter.out" 2>"$tmp/counter.err" || rc=$?
if [[ $rc -ne 0 ]]; then
    show "$tmp/counter.err"
    fail "rtproc with out_counter.so exited with $rc (want 0)"
elif [[ ! -f $tmp/count.txt ]]; then
    show "$tmp/counter.err"
    fail "out_counter.so wrote no count file"
else
    got=$(tr -d '[:space:]' <"$tmp/count.txt")
    if [[ $got == "$expected" ]]; then
        ok "out_counter.so counted $got records = $expected data rows of $(basename "$csv")"
    else
        show "$tmp/counter.err"
        fail "out_counter.so counted '$got' records, the CSV has $expected data rows"
    fi
fi

# ---- 4. a plugin for another ABI major is refused -----------------------------
step "run the installed rtproc with [plugins] path = bad_abi.so"
version_h=$incdir/rtproc/version.h
major=$(sed -n 's/^#define RTP_ABI_MAJOR \([0-9]*\).*/\1/p' "$version_h")
minor=$(sed -n 's/^#define RTP_ABI_MINOR \([0-9]*\).*/\1/p' "$version_h")
[[ -n $major && -n $minor ]] || die "cannot read RTP_ABI_MAJOR/MINOR from $version_h"
cat >"$tmp/bad.conf" <<'EOF'
[plugins]
path = ${SDK_WORK}/bad_abi.so

[input.sample]
plugin      = csv
path        = ${SDK_CSV}
exit_on_eof = true

[output.null]
EOF
rc=0
SDK_WORK=$work SDK_CSV=$csv timeout 120 "$rtproc" -c "$tmp/bad.conf" \
    >"$tmp/bad.out" 2>"$tmp/bad.err" || rc=$?
show "$tmp/bad.err"
if [[ $rc -eq 2 ]]; then ok "exit status 2"; else fail "exit status $rc, want 2 (configuration error)"; fi
if grep -qF -- "$work/bad_abi.so" "$tmp/bad.err"; then
    ok "stderr names $work/bad_abi.so"
else
    fail "stderr does not name $work/bad_abi.so"
fi
for v in "$((major + 1)).$minor" "$major.$minor"; do
    if grep -qE -- "(^|[^0-9.])${v//./\\.}([^0-9]|\$)" "$tmp/bad.err"; then
        ok "stderr names ABI $v"
    else
        fail "stderr does not name ABI $v"
    fi
done

echo
if [[ $fails -gt 0 ]]; then
    echo "sdk.out_of_tree: $fails check(s) failed"
    exit 1
fi
echo "sdk.out_of_tree: all checks passed"
