#!/usr/bin/env bash
# Long fuzzing campaign: every fuzz target of the module until it has made
# EXECS executions (default 10000000) or run for DURATION (default 30m),
# whichever comes first, the parsers of untrusted files first, one after
# another. SKIP lists pkg:Target specs already done. Each target's output
# goes to $LOGDIR/fuzz-PKG-TARGET.log and a line per target (exit status,
# last execs count; 124 means DURATION ended it) to
# $LOGDIR/fuzz-campaign.log. Crashers land in the package's testdata/fuzz
# as regression cases.
#
#   scripts/fuzz-all.sh [DURATION]        e.g. nice -n 19 scripts/fuzz-all.sh 30m
set -uo pipefail
cd "$(dirname "$0")/.."
duration=${1:-30m}
logdir=${LOGDIR:-/tmp}
first="reader:FuzzReader safetensors:FuzzReader codec/neural:FuzzCodecFile codec/neural:FuzzBlob
codec/neural:FuzzDecode codec/lossless:FuzzBlockHeaders codec/rans:FuzzParseTable format:FuzzParseShardIndex
safetensors:FuzzIndex conformance:FuzzDifferential"
all=$(grep -rn '^func Fuzz' --include='*_test.go' . |
  sed -E 's#^\./([^:]*)/[^/:]*:[0-9]+:func (Fuzz[A-Za-z0-9]*).*#\1:\2#' | sort -u)
rest=$(echo "$all" | grep -v -x -F -f <(echo $first | tr ' ' '\n'))
execs=${EXECS:-10000000}
for spec in $first $rest; do
  case " ${SKIP:-} " in *" $spec "*) continue ;; esac
  pkg=${spec%%:*} fn=${spec##*:}
  log=$logdir/fuzz-$(echo "$pkg" | tr / _)-$fn.log
  echo "=== $(date -u +%FT%T) $pkg $fn" >> "$logdir/fuzz-campaign.log"
  # SIGINT makes the fuzzing engine stop and report, like Ctrl-C.
  timeout -s INT -k 2m "$duration" \
    go test "./$pkg" -run '^$' -fuzz "^$fn\$" -fuzztime "${execs}x" > "$log" 2>&1
  echo "exit $? $(date -u +%T) $(grep -E 'execs' "$log" | tail -1)" >> "$logdir/fuzz-campaign.log"
done
