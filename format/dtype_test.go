package format

import "testing"

func TestDTypeBits(t *testing.T) {
	tests := []struct {
		d     DType
		bits  int
		valid bool
	}{
		{F64, 64, true}, {C64, 64, true}, {F32, 32, true}, {BF16, 16, true}, {U16, 16, true},
		{F8E4M3, 8, true}, {F8E8M0, 8, true}, {F8E4M3FNUZ, 8, true}, {F8E5M2FNUZ, 8, true}, {Bool, 8, true},
		{"F4", 4, false}, {"F6_E2M3", 6, false}, {"F6_E3M2", 6, false},
		{"F8_E3M4", 0, false}, {"f32", 0, false}, {"", 0, false},
	}
	for _, tt := range tests {
		if got := tt.d.Bits(); got != tt.bits {
			t.Errorf("%q.Bits() = %d, want %d", tt.d, got, tt.bits)
		}
		if got := tt.d.Valid(); got != tt.valid {
			t.Errorf("%q.Valid() = %v, want %v", tt.d, got, tt.valid)
		}
	}
	for _, d := range DTypes {
		if !d.Valid() || d.Bits() != 8*d.Size() {
			t.Errorf("%s: Valid %v, Bits %d, Size %d", d, d.Valid(), d.Bits(), d.Size())
		}
	}
}
