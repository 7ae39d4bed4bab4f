package convert

// The lossy codecs register themselves; conversion looks them up by id.
import (
	_ "nwc/codec/neural"
	_ "nwc/codec/scalar"
)
