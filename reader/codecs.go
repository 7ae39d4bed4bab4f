package reader

// The lossy codecs' decoder packages register their decoders; a reader
// must know every codec a file may use. Their encoders live in other
// packages, which a reader does not link.
import (
	_ "github.com/nwcodec/nwc/codec/neural"
	_ "github.com/nwcodec/nwc/codec/scalar"
)
