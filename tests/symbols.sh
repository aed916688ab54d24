#!/bin/sh
# The library boundary, checked on the built libraries:
#   1. libredline.so exports (nm -D) only rdl_/RDL_ names: the API marked RDL_EXTERN;
#   2. libredline.a defines (nm -g) no global name without that prefix: a name shared between
#      the library's files is static or rdl__<module>_<what>;
#   3. every function and variable the public headers declare is exported by libredline.so
#      (a definition in a file that does not include its header would be hidden), and no
#      declaration lacks RDL_EXTERN (scripts/extern-api.pl would change nothing).
# usage: symbols.sh libredline.so libredline.a source-dir
set -u
so=$1 archive=$2 src=$3
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
status=0

fail() {
    echo "FAIL: $1"
    sed 's/^/    /' "$2"
    status=1
}

nm -D --defined-only "$so" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/so"
nm -g --defined-only "$archive" | awk 'NF == 3 { print $3 }' | sort -u >"$tmp/a"
[ -s "$tmp/so" ] || { echo "FAIL: nm found no symbols in $so"; exit 1; }
[ -s "$tmp/a" ] || { echo "FAIL: nm found no symbols in $archive"; exit 1; }

grep -Ev '^(rdl_|RDL_)' "$tmp/so" >"$tmp/so-bad"
[ -s "$tmp/so-bad" ] && fail "$so exports names without the rdl_ prefix (make them static or rdl__*, hidden):" "$tmp/so-bad"

grep -Ev '^(rdl_|RDL_)' "$tmp/a" >"$tmp/a-bad"
[ -s "$tmp/a-bad" ] && fail "$archive defines global names without the rdl_ prefix (static, or rdl__<module>_<what>):" "$tmp/a-bad"

# The name each RDL_EXTERN declaration declares: the rdl_ word before its first '(' or '['.
cat "$src"/include/redline/*.h "$(dirname "$archive")"/include/redline/version.h |
    sed -n 's/^RDL_EXTERN[^([;]*[^A-Za-z0-9_]\(rdl_[A-Za-z0-9_]*\) *[([;].*/\1/p' | sort -u >"$tmp/api"
[ -s "$tmp/api" ] || { echo "FAIL: no RDL_EXTERN declarations found under $src/include/redline"; exit 1; }
comm -23 "$tmp/api" "$tmp/so" >"$tmp/api-missing"
[ -s "$tmp/api-missing" ] && fail "public headers declare names $so does not export (no definition, or defined without its header):" "$tmp/api-missing"

mkdir "$tmp/h"
cp "$src"/include/redline/*.h "$tmp/h/"
perl "$src/scripts/extern-api.pl" "$tmp"/h/*.h || status=1
for h in "$tmp"/h/*.h; do
    if ! cmp -s "$h" "$src/include/redline/$(basename "$h")"; then
        diff -u "$src/include/redline/$(basename "$h")" "$h" >"$tmp/diff"
        fail "$(basename "$h") has a public declaration without RDL_EXTERN (perl scripts/extern-api.pl include/redline/*.h):" "$tmp/diff"
    fi
done

[ $status -eq 0 ] && echo "ok: $(wc -l <"$tmp/so") exported names, $(wc -l <"$tmp/api") declared"
exit $status
