#!/usr/bin/env bash
# arm64-check.sh: show that the decoder MLP is bit-identical on arm64.
#
# It cross-compiles the codec/mlp and spec test binaries for linux/arm64, runs
# their portability tests under qemu-user (installing it with apt-get if
# missing), and checks the generated code of the pure-Go paths for fused
# multiply-add instructions, which FORMAT.md (Appendix A.2) forbids. Run from
# anywhere in the module; it exits non-zero on the first failure.
set -euo pipefail

cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

if ! command -v qemu-aarch64 >/dev/null 2>&1; then
	echo "installing qemu-user"
	apt-get update -qq
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
fi

# Go's arm64 compiler fuses x*y + z into FMADD/FMSUB unless the product is
# converted explicitly; amd64 does so only from GOAMD64=v3. Neither may
# appear in the arithmetic of the reference or the portable kernel.
echo "checking for fused multiply-add in generated code"
GOARCH=arm64 go build -gcflags=-S ./codec/mlp ./codec/neural ./codec/scalar ./codec/trellis ./codec/chunk ./dtype ./spec >"$tmp/arm64.s" 2>&1
# Encoders and training may fuse (they need not be bit-identical across
# platforms); everything on the decode path may not.
encoder='codec/neural/(loss|model|train|encode|feedback|dataset)\.go'
if grep -E '\b(FMADD|FMSUB|FNMADD|FNMSUB|VFMLA|VFMLS)[SD]?\b' "$tmp/arm64.s" | grep -Ev "$encoder"; then
	echo "FAIL: fused multiply-add in arm64 code" >&2
	exit 1
fi
GOARCH=amd64 GOAMD64=v3 go build -gcflags=-S ./codec/mlp ./codec/neural ./codec/scalar ./codec/trellis ./codec/chunk ./dtype ./spec >"$tmp/amd64v3.s" 2>&1
if grep -E '\bVFN?M(ADD|SUB)' "$tmp/amd64v3.s" | grep -Ev "$encoder"; then
	echo "FAIL: fused multiply-add in amd64 v3 code" >&2
	exit 1
fi
echo "ok: no FMA in arm64 or amd64/v3 code"

GOARCH=arm64 go test -c -o "$tmp/mlp.test" ./codec/mlp
GOARCH=arm64 go test -c -o "$tmp/spec.test" ./spec
# The tests read testdata relative to their package directory.
(cd codec/mlp && qemu-aarch64 "$tmp/mlp.test" -test.run 'Golden|MatchesSpec|RandomWidths|NoFused|ReLUAndNaN' -test.v) |
	grep -E '^(--- |ok|PASS|FAIL)|sha256'
(cd spec && qemu-aarch64 "$tmp/spec.test" -test.v) | grep -E '^(--- |ok|PASS|FAIL)'
# The whole decode path: the nwc codec's golden file and every golden of
# the conformance suite must decode to their pinned SHA-256 on arm64 too.
GOARCH=arm64 go test -c -o "$tmp/neural.test" ./codec/neural
GOARCH=arm64 go test -c -o "$tmp/conformance.test" ./conformance
GOARCH=arm64 go test -c -o "$tmp/scalar.test" ./codec/scalar
(cd codec/neural && qemu-aarch64 "$tmp/neural.test" -test.run 'GoldenEveryKernel|Spec' -test.v) | grep -E '^(--- |ok|PASS|FAIL)'
(cd conformance && qemu-aarch64 "$tmp/conformance.test" -test.run 'TestGoldens|TestGenerated' -test.v) | grep -E '^(--- |ok|PASS|FAIL)'
# The scalar codecs' golden (ecsq, tcq, rtn, q4k) pins encoder and decoder.
(cd codec/scalar && qemu-aarch64 "$tmp/scalar.test" -test.run 'TestGolden|TestTCQ' -test.v) | grep -E '^(--- |ok|PASS|FAIL)'
echo "ok: arm64 output matches the golden hashes"
