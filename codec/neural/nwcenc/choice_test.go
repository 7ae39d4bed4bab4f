package nwcenc

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/neural"
	"github.com/nwcodec/nwc/format"
)

// TestChoiceReused checks that an encoding given its own Choice back codes
// exactly as the one that chose, byte for byte, on every path (chosen on a
// sample while streamed or loaded whole, chosen on the whole matrix, with
// LDLQ) and for every coding; and that at another step it keeps the kind of
// coding that was chosen.
func TestChoiceReused(t *testing.T) {
	ldlq, _ := ldlqTensor(96, 64, 5)
	type tc struct {
		name  string
		t     *codec.Tensor
		force int
		round bool
		load  bool
		opts  codec.EncodeOptions
	}
	big := llmTensor(t, 2003, 300, format.BF16, 3)
	small := llmTensor(t, 200, 96, format.F32, 4)
	cases := []tc{
		{"streamed-auto", big, forceAuto, false, false, codec.EncodeOptions{Step: 0.3}},
		{"streamed-trellis", big, forcePlain, false, false, codec.EncodeOptions{Step: 0.25}},
		{"streamed-round", big, forcePlain, true, false, codec.EncodeOptions{Step: 0.25}},
		{"streamed-learned", big, forceLearned, false, false, codec.EncodeOptions{Step: 0.3}},
		{"loaded-auto", big, forceAuto, false, true, codec.EncodeOptions{Step: 0.2}},
		{"whole-auto", small, forceAuto, false, false, codec.EncodeOptions{Step: 0.3}},
		{"whole-trellis", small, forcePlain, false, false, codec.EncodeOptions{Step: 0.5}},
		{"whole-round", small, forcePlain, true, false, codec.EncodeOptions{Step: 0.5}},
		{"whole-learned", small, forceLearned, false, false, codec.EncodeOptions{Step: 0.3}},
		{"ldlq-trellis", ldlq, forcePlain, false, false, codec.EncodeOptions{Step: 0.4, Hessian: sharedHessian(64, 256, 6), LDLQBlock: 16}},
		{"ldlq-round", ldlq, forcePlain, true, false, codec.EncodeOptions{Step: 0.4, Hessian: sharedHessian(64, 256, 6), LDLQBlock: 16}},
		{"ldlq-learned", ldlq, forceLearned, false, false, codec.EncodeOptions{Step: 0.4, Hessian: sharedHessian(64, 256, 6), LDLQBlock: 16}},
	}
	for _, k := range cases {
		t.Run(k.name, func(t *testing.T) {
			c := forced(t, k.force)
			c.roundPlain, c.loadWhole = k.round, k.load
			o := k.opts
			chose, err := c.Encode(k.t, &o)
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := parseChoice(chose.Choice); !ok {
				t.Fatalf("Encoded.Choice %x is not a choice", chose.Choice)
			}
			o.Choice = chose.Choice
			reused, err := c.Encode(k.t, &o)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(chose, reused); d != "" {
				t.Errorf("reusing the choice changed the encoding (-chose +reused):\n%s", d)
			}
			o.Step *= 1.3
			other, err := c.Encode(k.t, &o)
			if err != nil {
				t.Fatal(err)
			}
			if a, b := kindOf(t, chose), kindOf(t, other); a != b {
				t.Errorf("at step ×1.3 the reused choice coded %s, not %s", b, a)
			}
		})
	}
}

// kindOf names the coding e's parameters record.
func kindOf(t *testing.T, e *codec.Encoded) string {
	t.Helper()
	p, err := neural.ParseParams(e.Params)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case !p.Plain:
		return "learned"
	case p.Trellis:
		return "trellis"
	}
	return "rounding"
}

// TestChoiceIgnored checks that a choice the encoder cannot use is
// ignored: garbage, another version's, a learned one for a file without
// a blob, and one whose shifted step is out of range.
func TestChoiceIgnored(t *testing.T) {
	tn := llmTensor(t, 200, 96, format.F32, 4)
	c := forced(t, forceAuto)
	o := codec.EncodeOptions{Step: 0.3, NoBlob: true}
	want, err := c.Encode(tn, &o)
	if err != nil {
		t.Fatal(err)
	}
	learned := choice{kind: kindLearned}.marshal()
	old := choice{kind: kindRound}.marshal()
	old[1] = 0
	for name, b := range map[string][]byte{
		"garbage":    []byte("not a choice"),
		"version":    old,
		"learned":    learned,
		"big-shift":  choice{kind: kindRound, shift: 2}.marshal(),
		"bad-kind":   choice{kind: 9}.marshal(),
		"bad-offset": choice{kind: kindTrellis, offset: neural.MaxOffset + 1}.marshal(),
		"truncated":  learned[:11],
	} {
		t.Run(name, func(t *testing.T) {
			o := o
			o.Choice = b
			got, err := c.Encode(tn, &o)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(want, got); d != "" {
				t.Errorf("an unusable choice changed the encoding:\n%s", d)
			}
		})
	}
	// A step the shift would push below what float32 holds.
	if _, ok := c.reuse(choice{kind: kindRound, shift: -1}.marshal(), false, 1e-45, neural.Params{}, false); ok {
		t.Error("a choice shifted to a step too small for float32 was used")
	}
}
