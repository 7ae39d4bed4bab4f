package llama

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

func TestBinRoundTrip(t *testing.T) {
	untied := tinyConfig
	untied.TiedEmbeddings = false
	untied.NKVHeads = 2
	for _, cfg := range []Config{tinyConfig, untied} {
		m := randomModel(t, cfg, 20)
		var buf bytes.Buffer
		if err := WriteBin(&buf, m); err != nil {
			t.Fatal(err)
		}
		wantSize := binHeaderSize + 4*(len(flatten(m))+cfg.SeqLen*cfg.HeadDim())
		if buf.Len() != wantSize {
			t.Errorf("tied=%v: wrote %d bytes, want %d", cfg.TiedEmbeddings, buf.Len(), wantSize)
		}
		got, err := ReadBin(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if got.Config() != cfg {
			t.Errorf("config = %+v, want %+v", got.Config(), cfg)
		}
		if !slices.Equal(got.Names(), m.Names()) || !slices.Equal(flatten(got), flatten(m)) {
			t.Errorf("tied=%v: weights differ after round trip", cfg.TiedEmbeddings)
		}
	}
}

// flatten concatenates the model's tensors in .bin order.
func flatten(m *Model) []float32 {
	var all []float32
	walkBin(m.cfg, func(name string, _ []int64) error {
		all = append(all, m.weights[name]...)
		return nil
	}, func(int) error { return nil })
	return all
}

func TestBinLayout(t *testing.T) {
	// The first weights after the header are the embedding, then all
	// layers' attention norms, then all layers' wq: check the offsets.
	m := randomModel(t, tinyConfig, 21)
	var buf bytes.Buffer
	if err := WriteBin(&buf, m); err != nil {
		t.Fatal(err)
	}
	b := buf.Bytes()
	at := func(floatIndex int) float32 {
		var v float32
		binary.Read(bytes.NewReader(b[binHeaderSize+4*floatIndex:]), binary.LittleEndian, &v)
		return v
	}
	c := tinyConfig
	emb := c.VocabSize * c.Dim
	if at(emb+c.Dim) != m.weights[LayerName(1, "attention_norm")][0] {
		t.Error("layer 1 attention norm not right after layer 0's")
	}
	if at(emb+c.NLayers*c.Dim) != m.weights[LayerName(0, "attention.wq")][0] {
		t.Error("wq of layer 0 not right after the attention norms")
	}
}

func TestReadBinErrors(t *testing.T) {
	good, err := os.ReadFile(filepath.Join("testdata", "tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	header := func(vals ...int32) []byte {
		var b bytes.Buffer
		binary.Write(&b, binary.LittleEndian, vals)
		return b.Bytes()
	}
	tests := []struct {
		name     string
		data     []byte
		wantOff  int64
		wantConf bool // also an ErrConfig
	}{
		{"empty", nil, 0, false},
		{"short-header", good[:20], 20, false},
		{"magic", append(header(0x616b3432, 1), good[8:]...), 0, false},
		{"zero-dim", header(0, 12, 2, 2, 1, 16, 16), 0, true},
		{"heads", header(8, 12, 2, 3, 1, 16, 16), 0, true},
		{"huge", header(1<<30, 1<<30, 1<<30, 1, 1, 1<<30, 1<<30), 0, true},
		{"no-weights", good[:binHeaderSize], binHeaderSize, false},
		{"truncated-embedding", good[:binHeaderSize+100], binHeaderSize + 100, false},
		{"truncated-rope", good[:len(good)-4], int64(len(good)) - 4*int64(tinyConfig.SeqLen*tinyConfig.HeadDim()), false},
		{"trailing", append(slices.Clone(good), 0), int64(len(good)), false},
		{"untied-missing-classifier", append(header(8, 12, 2, 2, 1, -16, 16), good[binHeaderSize:]...), int64(len(good)), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadBin(bytes.NewReader(tt.data))
			var fe *FormatError
			if !errors.As(err, &fe) || !errors.Is(err, ErrFormat) {
				t.Fatalf("err = %v, want a FormatError", err)
			}
			if fe.Offset != tt.wantOff {
				t.Errorf("offset = %d, want %d (%v)", fe.Offset, tt.wantOff, err)
			}
			if errors.Is(err, ErrConfig) != tt.wantConf {
				t.Errorf("errors.Is(err, ErrConfig) = %v, want %v", !tt.wantConf, tt.wantConf)
			}
		})
	}
	if _, err := LoadBin(filepath.Join("testdata", "missing.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadBin(missing) = %v, want ErrNotExist", err)
	}
}

func TestLoadBinFixture(t *testing.T) {
	m, err := LoadBin(filepath.Join("testdata", "tiny.bin"))
	if err != nil {
		t.Fatal(err)
	}
	want := randomModel(t, tinyConfig, 1)
	if !slices.Equal(flatten(m), flatten(want)) {
		t.Error("tiny.bin weights differ from the generator's")
	}
}

// FuzzReadBin checks that arbitrary input yields a model or an ErrFormat,
// never a panic, and that accepted input survives a write/read round trip.
func FuzzReadBin(f *testing.F) {
	good, err := os.ReadFile(filepath.Join("testdata", "tiny.bin"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(good)
	f.Add(good[:binHeaderSize])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ReadBin(bytes.NewReader(data))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("error %v is not ErrFormat", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := WriteBin(&buf, m); err != nil {
			t.Fatal(err)
		}
		// The rotary tables are regenerated, so compare everything else.
		m2, err := ReadBin(&buf)
		if err != nil {
			t.Fatal(err)
		}
		a, b := flatten(m), flatten(m2)
		for i := range a {
			if a[i] != b[i] && !(a[i] != a[i] && b[i] != b[i]) {
				t.Fatalf("weight %d changed from %v to %v", i, a[i], b[i])
			}
		}
		// A model that loads must also run without panicking.
		if _, err := m.NewState().Forward([]int{0}); err != nil {
			t.Fatal(err)
		}
	})
}
