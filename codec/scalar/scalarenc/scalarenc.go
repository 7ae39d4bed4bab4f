// Package scalarenc implements the encoders of the lossy scalar codecs of
// package scalar (ecsq, tcq, rtn, q4k) and registers them with package
// codec. It brings in LDLQ error compensation (package ldlq, and with it
// linear algebra) that programs which only read files do not need.
//
// Import the package for its side effect to make the encoders available:
//
//	import _ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
package scalarenc

import (
	"errors"
	"fmt"

	"github.com/nwcodec/nwc/codec"
	"github.com/nwcodec/nwc/codec/scalar"
	"github.com/nwcodec/nwc/ldlq"
)

func init() {
	codec.RegisterEncoder(scalar.ECSQ, ecsqEncoder{})
	codec.RegisterEncoder(scalar.TCQ, ecsqEncoder{trellis: true})
	codec.RegisterEncoder(scalar.RTN, rtnEncoder{})
	codec.RegisterEncoder(scalar.Q4K, q4kEncoder{})
}

var (
	// ErrNoLDLQ reports an encoding asked to use a Hessian (LDLQ error
	// compensation) by a codec that cannot: q4k, whose super-blocks fit
	// their scales to whole blocks at once. Callers may retry without the
	// Hessian. It wraps codec.ErrOptions.
	ErrNoLDLQ = fmt.Errorf("%w: LDLQ error compensation is not available", codec.ErrOptions)

	// ErrRange reports finite weights too large for a codec's format: q4k
	// cannot store magnitudes whose super-block scales overflow fp16.
	// (ecsq and rtn saturate instead, as their formats document.)
	ErrRange = errors.New("scalarenc: weights out of the codec's range")
)

// DefaultLDLQBlock is the number of columns per LDLQ block unless
// configured.
const DefaultLDLQBlock = 128

// drive quantizes the columns of m in blocks through quant: in order
// without a Hessian, else with LDLQ error compensation (package ldlq),
// which updates the columns not yet coded so they absorb the output error
// of those already coded. A Hessian that cannot be used (wrong size,
// non-finite, not positive definite after damping) is an option error.
func drive(m []float32, rows, cols int, o *codec.EncodeOptions, quant func(c0, c1 int) error) error {
	if o.Hessian != nil && len(o.Hessian) != cols*cols {
		return fmt.Errorf("%w: Hessian has %d entries, want %d×%d", codec.ErrOptions, len(o.Hessian), cols, cols)
	}
	// A negative block size has always meant the default here.
	err := ldlq.Drive(m, rows, cols, o.Hessian, max(o.LDLQBlock, 0), o.Interruptible(quant))
	if errors.Is(err, ldlq.ErrInvalid) || errors.Is(err, ldlq.ErrNotPositiveDefinite) {
		return fmt.Errorf("%w: %w", codec.ErrOptions, err)
	}
	return err
}

// options returns a copy of opts with nil meaning the zero value.
func options(opts *codec.EncodeOptions) codec.EncodeOptions {
	if opts == nil {
		return codec.EncodeOptions{}
	}
	return *opts
}
