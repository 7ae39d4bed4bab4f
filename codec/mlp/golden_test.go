package mlp

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/nwcodec/nwc/spec"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// Golden files. golden.mlp is a serialized default-size decoder with an
// embedding; golden-forward.sha256 is the SHA-256 of the little-endian
// output bytes of goldenInputs through it. scripts/arm64-check.sh runs
// TestGolden on arm64 to show the hash is the same there.
const (
	goldenNet  = "testdata/golden.mlp"
	goldenHash = "testdata/golden-forward.sha256"
	goldenRows = 4000
)

// goldenInputs returns the golden batch: ordinary values with one in eight
// replaced by an IEEE special, and levels cycling through all four.
func goldenInputs() ([]float32, []uint8) {
	r := rand.New(rand.NewPCG(2024, 7))
	src := randomInputs(r, goldenRows, 16, true)
	levels := make([]uint8, goldenRows)
	for i := range levels {
		levels[i] = uint8(r.IntN(4))
	}
	return src, levels
}

func goldenNetwork() *Net {
	r := rand.New(rand.NewPCG(2024, 6))
	return randomNet(r, netShape{[]int{16, 32, 32, 32, 16}, []bool{false, true, true, false}, []bool{true, true, true, false}, 4}, odd)
}

func TestGolden(t *testing.T) {
	if *update {
		b, err := goldenNetwork().MarshalBinary()
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(goldenNet, b, 0o644); err != nil {
			t.Fatal(err)
		}
		// A second, tiny seed network for the fuzz targets.
		small := randomNet(rand.New(rand.NewPCG(2024, 8)), netShape{[]int{3, 5, 5, 2}, []bool{false, true, false}, []bool{true, false, false}, 2}, plain)
		if b, err = small.MarshalBinary(); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/small.mlp", b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	data, err := os.ReadFile(goldenNet)
	if err != nil {
		t.Fatal(err)
	}
	var n Net
	if err := n.UnmarshalBinary(data); err != nil {
		t.Fatal(err)
	}
	// The stored network must be the one the seed generates, so the
	// float-from-integer generator is itself portable.
	if b, _ := goldenNetwork().MarshalBinary(); !bytes.Equal(b, data) {
		t.Fatalf("%s differs from the network generated from its seed", goldenNet)
	}
	src, levels := goldenInputs()
	p := Pack(&n)
	var sums []string
	ref := make([]float32, 0, goldenRows*16)
	for i := range goldenRows {
		ref = append(ref, spec.MLPForward(specLayers(&n), n.Embed, int(levels[i]), src[i*16:(i+1)*16])...)
	}
	sums = append(sums, hashFloats(ref))
	t.Logf("spec: sha256 %s", sums[0])
	for name, kern := range kernels() {
		dst := make([]float32, goldenRows*16)
		if err := p.forward(dst, src, levels, goldenRows, new(Scratch), kern); err != nil {
			t.Fatal(err)
		}
		sums = append(sums, hashFloats(dst))
		t.Logf("kernel %s: sha256 %s", name, sums[len(sums)-1])
	}
	if *update {
		if err := os.WriteFile(goldenHash, []byte(sums[0]+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(goldenHash)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		if s != strings.TrimSpace(string(want)) {
			t.Fatalf("output hash %s, want %s (from %s)", s, strings.TrimSpace(string(want)), filepath.Base(goldenHash))
		}
	}
}

// hashFloats returns the hex SHA-256 of the little-endian bytes of v.
func hashFloats(v []float32) string {
	raw := make([]byte, 0, 4*len(v))
	for _, x := range v {
		raw = binary.LittleEndian.AppendUint32(raw, math.Float32bits(x))
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// TestGoldenOutputIsVaried guards the golden test against a degenerate
// batch: most outputs must be ordinary numbers, and the specials must
// produce some NaNs and infinities too.
func TestGoldenOutputIsVaried(t *testing.T) {
	src, levels := goldenInputs()
	dst := make([]float32, goldenRows*16)
	if err := Pack(goldenNetwork()).Forward(dst, src, levels, goldenRows, nil); err != nil {
		t.Fatal(err)
	}
	var nan, inf, zero, sub int
	for _, v := range dst {
		switch {
		case v != v:
			nan++
		case math.IsInf(float64(v), 0):
			inf++
		case v == 0:
			zero++
		case math.Abs(float64(v)) < 0x1p-126:
			sub++
		}
	}
	t.Logf("%d outputs: %d NaN, %d ±Inf, %d zero, %d subnormal", len(dst), nan, inf, zero, sub)
	if nan == 0 || inf == 0 || nan+inf+zero > len(dst)/2 {
		t.Fatalf("degenerate golden output: %d NaN, %d ±Inf, %d zero of %d", nan, inf, zero, len(dst))
	}
}
