package convert

import "testing"

// TestSplitParts checks that parts are contiguous, in order, non-empty
// and, where tensor sizes allow, balanced by weight count.
func TestSplitParts(t *testing.T) {
	items := func(sizes ...uint64) []*item {
		var its []*item
		for _, n := range sizes {
			its = append(its, &item{numel: n})
		}
		return its
	}
	tests := []struct {
		name  string
		items []*item
		n     int
		want  []int
	}{
		{"one part", items(5, 5, 5), 1, []int{1, 1, 1}},
		{"even", items(10, 10, 10, 10), 2, []int{1, 1, 2, 2}},
		{"a part per tensor", items(1, 100, 1), 3, []int{1, 2, 3}},
		{"big first tensor", items(100, 1, 1, 1), 2, []int{1, 2, 2, 2}},
		{"big last tensor", items(1, 1, 1, 100), 3, []int{1, 1, 2, 3}},
		{"vectors count as one", items(0, 0, 10, 10), 2, []int{1, 1, 1, 2}},
		{"llama-like", items(64, 16, 16, 16, 16, 16, 16, 16, 16, 64), 4, []int{1, 2, 2, 2, 2, 3, 3, 3, 3, 4}},
	}
	for _, tc := range tests {
		got := splitParts(tc.items, tc.n)
		for k := range got {
			if got[k] != tc.want[k] {
				t.Errorf("%s: parts %v, want %v", tc.name, got, tc.want)
				break
			}
		}
	}
	// Any split of any sizes is contiguous, starts at 1, ends at n and
	// skips no part.
	for n := 1; n <= 7; n++ {
		its := items(3, 1000, 1, 1, 50, 2, 2, 2, 900, 7)
		p := splitParts(its, n)
		if p[0] != 1 || p[len(p)-1] != n {
			t.Errorf("n %d: %v", n, p)
		}
		for k := 1; k < len(p); k++ {
			if d := p[k] - p[k-1]; d != 0 && d != 1 {
				t.Errorf("n %d: %v skips or reorders parts", n, p)
			}
		}
	}
}
