package format

// Metadata keys that converters add to a file's metadata (FORMAT.md §5.1)
// beside the source checkpoint's own. They start with "nwc.", which no
// checkpoint this project knows of uses.
const (
	// MetaShardMetadata holds, for a checkpoint sharded over several
	// safetensors files, a JSON object mapping each shard's file name to
	// its __metadata__ object (only shards that have one).
	MetaShardMetadata = "nwc.shard_metadata"
	// MetaFiles holds a JSON array describing the checkpoint's companion
	// files found beside its weights (configuration, tokenizer): one
	// object per file, {"name", "bytes", "sha256" (hex), "stored" (bool)}.
	MetaFiles = "nwc.files"
	// MetaFilePrefix followed by a companion file's name holds that
	// file's contents, verbatim, when it is valid UTF-8 and at most
	// MaxStoredFileBytes long ("nwc.file.config.json").
	MetaFilePrefix = "nwc.file."
	// MaxStoredFileBytes bounds the companion files stored whole.
	MaxStoredFileBytes = 256 << 10
)
