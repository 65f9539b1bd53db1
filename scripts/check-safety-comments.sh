#!/usr/bin/env bash
# Every reinterpret_cast needs a "// SAFETY:" comment on the same line or within the three lines
# above it, saying which invariants make the cast sound (STYLE.md section 5), in every folder
# with C++ that touches raw memory: the library, the VMM glue, the CLI, the live fuzzer, the
# benchmarks and the tests. Prints each offender; exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
folders=(src restrictions vmm-glue cli fuzz bench tests)
status=0
while IFS=: read -r file line _; do
  start=$(( line > 3 ? line - 3 : 1 ))
  if ! sed -n "${start},${line}p" "$file" | grep -q "SAFETY"; then
    echo "$file:$line: reinterpret_cast without a // SAFETY: comment" >&2
    status=1
  fi
done < <(grep -rn --include='*.h' --include='*.cc' "reinterpret_cast" "${folders[@]}" || true)
[[ $status -eq 0 ]] && echo "check-safety-comments: every reinterpret_cast in ${folders[*]} has a SAFETY comment"
exit $status
