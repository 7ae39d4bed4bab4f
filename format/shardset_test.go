package format

import (
	"errors"
	"strings"
	"testing"
)

const testPlan = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestPartNames(t *testing.T) {
	for _, tc := range []struct {
		i, n int
		name string
	}{{1, 1, "model-00001-of-00001.nwc"}, {7, 12, "model-00007-of-00012.nwc"}, {99999, 99999, "model-99999-of-99999.nwc"}} {
		if got := PartName(tc.i, tc.n); got != tc.name {
			t.Errorf("PartName(%d, %d) = %q, want %q", tc.i, tc.n, got, tc.name)
		}
		if i, n, ok := ParsePartName(tc.name); !ok || i != tc.i || n != tc.n {
			t.Errorf("ParsePartName(%q) = %d, %d, %v", tc.name, i, n, ok)
		}
		if i, n, ok := ParsePart(FormatPart(tc.i, tc.n)); !ok || i != tc.i || n != tc.n {
			t.Errorf("ParsePart(FormatPart(%d, %d)) = %d, %d, %v", tc.i, tc.n, i, n, ok)
		}
	}
	for _, bad := range []string{"model-00000-of-00001.nwc", "model-00002-of-00001.nwc", "model-1-of-2.nwc",
		"../model-00001-of-00001.nwc", "model-00001-of-00001.nwcx", "model-00001-of-00001.safetensors"} {
		if _, _, ok := ParsePartName(bad); ok {
			t.Errorf("ParsePartName(%q) accepted", bad)
		}
	}
	for _, bad := range []string{"", "1", "0/1", "2/1", "1/", "/1", "a/b", "1/100000"} {
		if _, _, ok := ParsePart(bad); ok {
			t.Errorf("ParsePart(%q) accepted", bad)
		}
	}
}

func TestParseShardIndex(t *testing.T) {
	good := `{"metadata": {"total_size": 48, "nwc_plan": "` + testPlan + `", "nwc_parts": 2},
	 "weight_map": {"a": "model-00001-of-00002.nwc", "b": "model-00002-of-00002.nwc", "c": "model-00002-of-00002.nwc"}}`
	x, err := ParseShardIndex([]byte(good))
	if err != nil {
		t.Fatal(err)
	}
	if x.Metadata.Parts != 2 || x.Metadata.TotalSize != 48 || len(x.WeightMap) != 3 {
		t.Fatalf("parsed %+v", x)
	}
	b, err := x.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if y, err := ParseShardIndex(b); err != nil || y.Metadata != x.Metadata || len(y.WeightMap) != 3 {
		t.Fatalf("round trip: %+v, %v", y, err)
	}
	bad := map[string]string{
		"empty":            ``,
		"array":            `[]`,
		"trailing":         good + `{}`,
		"no plan":          strings.Replace(good, testPlan, "", 1),
		"upper-case plan":  strings.Replace(good, testPlan, strings.ToUpper(testPlan), 1),
		"no parts":         strings.Replace(good, `"nwc_parts": 2`, `"nwc_parts": 0`, 1),
		"too many parts":   strings.Replace(good, `"nwc_parts": 2`, `"nwc_parts": 100000`, 1),
		"wrong count":      strings.Replace(good, `"nwc_parts": 2`, `"nwc_parts": 3`, 1),
		"empty map":        `{"metadata": {"nwc_plan": "` + testPlan + `", "nwc_parts": 1}, "weight_map": {}}`,
		"empty part":       strings.Replace(good, `"a": "model-00001-of-00002.nwc"`, `"a": "model-00002-of-00002.nwc"`, 1),
		"directory":        strings.Replace(good, `"a": "model`, `"a": "sub/model`, 1),
		"safetensors":      `{"metadata": {"total_size": 4}, "weight_map": {"a": "model-00001-of-00001.safetensors"}}`,
		"negative size":    strings.Replace(good, `48`, `-48`, 1),
		"string part file": strings.Replace(good, `"model-00001-of-00002.nwc"`, `1`, 1),
	}
	for name, s := range bad {
		if _, err := ParseShardIndex([]byte(s)); !errors.Is(err, ErrFormat) {
			t.Errorf("%s: err = %v, want ErrFormat", name, err)
		}
	}
	if _, err := ParseShardIndex(make([]byte, MaxShardIndexSize+1)); !errors.Is(err, ErrLimit) {
		t.Errorf("oversized index: err = %v, want ErrLimit", err)
	}
}

// FuzzParseShardIndex: any input parses to a valid index, whose
// re-marshalled form parses to the same, or fails with a typed error.
func FuzzParseShardIndex(f *testing.F) {
	f.Add([]byte(`{"metadata": {"total_size": 48, "nwc_plan": "` + testPlan + `", "nwc_parts": 1}, "weight_map": {"a": "model-00001-of-00001.nwc"}}`))
	f.Add([]byte(`{"metadata": {}, "weight_map": {"a": "x.safetensors"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		x, err := ParseShardIndex(b)
		if err != nil {
			if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrLimit) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		m, err := x.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		y, err := ParseShardIndex(m)
		if err != nil || y.Metadata != x.Metadata || len(y.WeightMap) != len(x.WeightMap) {
			t.Fatalf("round trip of %q: %+v, %v", m, y, err)
		}
	})
}
