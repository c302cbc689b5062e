#!/usr/bin/env bash
# Checks every relative Markdown link in README.md, CONTRIBUTING.md and
# docs/*.md (or the files given): the file it names must exist in the
# repository, and a #fragment must match a heading of that file (GitHub's
# anchor rule: lower case, punctuation dropped, spaces to hyphens). Links
# inside code blocks and absolute URLs are not checked. Prints each broken
# link as FILE:LINE: TARGET (why) and exits 1 when there is one.
set -euo pipefail
cd "$(dirname "$0")/.."
files=("$@")
[ ${#files[@]} -gt 0 ] || files=(README.md CONTRIBUTING.md docs/*.md)

# anchors FILE: the heading anchors of a Markdown file, one a line.
anchors() {
  awk '/^```/ { code = !code; next } !code && /^#+ / {
    h = $0; sub(/^#+ +/, "", h); h = tolower(h)
    gsub(/[^a-z0-9 _-]/, "", h); gsub(/ /, "-", h); print h }' "$1"
}

broken=0 checked=0
for f in "${files[@]}"; do
  dir=$(dirname "$f")
  # FILE LINE TARGET for every ](target) outside code blocks and code spans.
  while IFS=$'\t' read -r line target; do
    checked=$((checked + 1))
    path=${target%%#*} frag=""
    [[ $target == *"#"* ]] && frag=${target#*#}
    if [ -z "$path" ]; then
      resolved=$f
    else
      resolved=$(realpath -m --relative-to=. "$dir/$path")
    fi
    if [[ $resolved == ../* ]]; then
      echo "$f:$line: $target (outside the repository)"; broken=$((broken + 1)); continue
    fi
    if [ ! -e "$resolved" ]; then
      echo "$f:$line: $target (no such file: $resolved)"; broken=$((broken + 1)); continue
    fi
    if [ -n "$frag" ] && [[ $resolved == *.md ]] && ! anchors "$resolved" | grep -qxF -- "$frag"; then
      echo "$f:$line: $target (no heading #$frag in $resolved)"; broken=$((broken + 1))
    fi
  done < <(awk '/^```/ { code = !code; next } !code {
      l = $0; gsub(/`[^`]*`/, "", l)
      while (match(l, /\]\([^)]+\)/)) {
        t = substr(l, RSTART + 2, RLENGTH - 3); l = substr(l, RSTART + RLENGTH)
        if (t !~ /^(https?|mailto):/) printf "%d\t%s\n", NR, t
      }
    }' "$f")
done
echo "check-links: $checked relative links in ${#files[@]} files, $broken broken"
[ "$broken" -eq 0 ]
