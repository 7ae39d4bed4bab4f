package format

// A DType names an element type with the spelling safetensors uses.
type DType string

// The element types a .nwc file can hold.
const (
	F64    DType = "F64"
	F32    DType = "F32"
	F16    DType = "F16"
	BF16   DType = "BF16"
	F8E4M3 DType = "F8_E4M3"
	F8E5M2 DType = "F8_E5M2"
	I64    DType = "I64"
	I32    DType = "I32"
	I16    DType = "I16"
	I8     DType = "I8"
	U64    DType = "U64"
	U32    DType = "U32"
	U16    DType = "U16"
	U8     DType = "U8"
	Bool   DType = "BOOL"

	// F8E8M0 is the OCP microscaling block scale: an unsigned power of
	// two, 2^(e−127), with 0xFF for NaN. Checkpoints in MX formats store
	// their scales with it.
	F8E8M0 DType = "F8_E8M0"
	// F8E4M3FNUZ and F8E5M2FNUZ are the 8-bit floats of AMD's
	// accelerators: exponent bias 8 and 16, no infinities, no negative
	// zero, 0x80 is NaN.
	F8E4M3FNUZ DType = "F8_E4M3FNUZ"
	F8E5M2FNUZ DType = "F8_E5M2FNUZ"
	// C64 is a complex number of two F32 (real part first).
	C64 DType = "C64"
)

// DTypes lists every known element type.
var DTypes = []DType{F64, F32, F16, BF16, F8E4M3, F8E5M2, I64, I32, I16, I8, U64, U32, U16, U8, Bool,
	F8E8M0, F8E4M3FNUZ, F8E5M2FNUZ, C64}

// Bits returns the bits per element: 8 × Size for the types a .nwc file
// holds, 4 or 6 for safetensors' sub-byte types F4, F6_E2M3 and F6_E3M2
// (OCP MX FP4 and FP6), and 0 for an unknown type. Valid is false for the
// sub-byte types: their rows need not start on a byte, and every codec and
// reader API addresses elements by whole bytes.
func (d DType) Bits() int {
	switch d {
	case "F4":
		return 4
	case "F6_E2M3", "F6_E3M2":
		return 6
	}
	return 8 * d.Size()
}

// Size returns the bytes per element, or 0 for an unknown type.
func (d DType) Size() int {
	switch d {
	case F64, I64, U64, C64:
		return 8
	case F32, I32, U32:
		return 4
	case F16, BF16, I16, U16:
		return 2
	case F8E4M3, F8E5M2, F8E8M0, F8E4M3FNUZ, F8E5M2FNUZ, I8, U8, Bool:
		return 1
	}
	return 0
}

// Valid reports whether d is a known element type.
func (d DType) Valid() bool { return d.Size() != 0 }

// IsFloat reports whether d is a real floating-point type that values
// convert to and from float32, which is what lossy codecs and dtype
// conversion need. F8_E8M0 (block scales, which must stay exact), the FNUZ
// types (FORMAT.md defines no rounding into them) and C64 are not: codecs
// keep them bit for bit.
func (d DType) IsFloat() bool {
	switch d {
	case F64, F32, F16, BF16, F8E4M3, F8E5M2:
		return true
	}
	return false
}
