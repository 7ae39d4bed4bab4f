package convert

// The lossy codecs register themselves; conversion looks them up by id.
import (
	_ "github.com/nwcodec/nwc/codec/neural"
	_ "github.com/nwcodec/nwc/codec/scalar"
)
