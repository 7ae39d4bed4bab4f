package mlp

import (
	"bytes"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
)

// addSeeds adds every serialized network in testdata to the corpus.
func addSeeds(f *testing.F) {
	paths, err := filepath.Glob("testdata/*.mlp")
	if err != nil || len(paths) == 0 {
		f.Fatalf("no seed networks in testdata: %v", err)
	}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
}

// FuzzParse feeds arbitrary bytes to the parser. Whatever it accepts must
// re-serialize to the same bytes and evaluate identically on every kernel
// and in the reference.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		n, used, err := Parse(data)
		if err != nil {
			if n != nil {
				t.Fatal("Parse returned a network and an error")
			}
			return
		}
		b, err := n.MarshalBinary()
		if err != nil {
			t.Fatalf("parsed network does not marshal: %v", err)
		}
		if !bytes.Equal(b, data[:used]) {
			t.Fatal("re-serialized network differs from the parsed bytes")
		}
		if params := len(data) / 4; params > 1<<16 {
			return // keep each iteration fast
		}
		r := rand.New(rand.NewPCG(uint64(len(data)), 1))
		batch := 5
		src := randomInputs(r, batch, n.In(), true)
		levels := make([]uint8, batch)
		for i := range levels {
			levels[i] = uint8(r.IntN(n.Levels()))
		}
		checkAgainstSpec(t, n, src, levels, batch)
	})
}

// FuzzForward evaluates the golden network on arbitrary input bits and
// levels and compares every kernel with the reference.
func FuzzForward(f *testing.F) {
	golden, err := os.ReadFile(goldenNet)
	if err != nil {
		f.Fatal(err)
	}
	var n Net
	if err := n.UnmarshalBinary(golden); err != nil {
		f.Fatal(err)
	}
	// Seeds: stretches of the stored weights (realistic magnitudes) and
	// the IEEE specials.
	f.Add(golden[24 : 24+64*5])
	special := make([]byte, 0, 4*len(specials))
	for _, s := range specials {
		special = binary.LittleEndian.AppendUint32(special, s)
	}
	f.Add(special)
	f.Fuzz(func(t *testing.T, data []byte) {
		rowBytes := 4*n.In() + 1
		batch := min(len(data)/rowBytes, 64)
		src := make([]float32, batch*n.In())
		levels := make([]uint8, batch)
		for i := range batch {
			row := data[i*rowBytes:]
			levels[i] = row[0] % uint8(n.Levels())
			for k := range n.In() {
				src[i*n.In()+k] = math.Float32frombits(binary.LittleEndian.Uint32(row[1+4*k:]))
			}
		}
		checkAgainstSpec(t, &n, src, levels, batch)
	})
}
