package reader

// The lossy codecs register themselves; a reader must know every codec a
// file may use.
import (
	_ "nwc/codec/neural"
	_ "nwc/codec/scalar"
)
