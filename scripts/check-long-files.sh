#!/usr/bin/env bash
# No source file over 800 lines (issue 24): every crates/*/src and crates/*/tests .rs file.
# Files still being split are listed in scripts/long-files.allow. Fails for a long file missing
# from the list, and for a listed file that is no longer long, so the list only shrinks.
# Prints every long file with its line count. scripts/test.sh runs it first (needs nothing).
set -Eeuo pipefail
cd "$(dirname "$0")/.."
export LC_ALL=C
limit=800
allow=scripts/long-files.allow

long=$(find crates -regextype posix-basic -regex 'crates/[^/]*/\(src\|tests\)/.*\.rs' -type f \
  -exec awk -v limit="$limit" 'FNR == limit + 1 { print FILENAME }' {} + | sort)
allowed=$(sed -e 's/#.*//' -e 's/[[:space:]]*$//' -e '/^$/d' "$allow" | sort -u)
unlisted=$(comm -23 <(printf '%s\n' "$long") <(printf '%s\n' "$allowed") | sed '/^$/d')
shrunk=$(comm -13 <(printf '%s\n' "$long") <(printf '%s\n' "$allowed") | sed '/^$/d')

for f in $long; do
  printf '%6d %s\n' "$(awk 'END { print NR }' "$f")" "$f" >&2
done
status=0
if [ -n "$unlisted" ]; then
  printf 'over %d lines and not in %s (split it; do not list it):\n%s\n' \
    "$limit" "$allow" "$unlisted" >&2
  status=1
fi
if [ -n "$shrunk" ]; then
  printf 'listed in %s but no longer over %d lines (remove its line):\n%s\n' \
    "$allow" "$limit" "$shrunk" >&2
  status=1
fi
exit "$status"
