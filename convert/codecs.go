package convert

// The lossy codecs' encoder packages register the encoders (and, by
// importing them, the decoders); conversion looks them up by id.
import (
	_ "github.com/nwcodec/nwc/codec/neural/nwcenc"
	_ "github.com/nwcodec/nwc/codec/scalar/scalarenc"
)
