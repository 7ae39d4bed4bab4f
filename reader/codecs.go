package reader

// The lossy codecs register themselves; a reader must know every codec a
// file may use.
import (
	_ "github.com/nwcodec/nwc/codec/neural"
	_ "github.com/nwcodec/nwc/codec/scalar"
)
