// Package reader reads .nwc files: the container of FORMAT.md (at the root
// of this module), version 1.x of any minor version; a newer minor version
// only adds index fields, which this package skips.
//
// Opening a file reads its preamble, trailer and index and nothing else
// (NewReader from any io.ReaderAt, Open from a path, OpenURL from an http
// or https URL through range requests). A tensor's bytes are
// read when asked for, one chunk group at a time: every group is an
// independently decodable run of the tensor's elements in row-major order
// of its 2-D view, so a row range reads only the groups that hold it, and
// the groups of one call are decoded in parallel (Options.Concurrency).
//
// Open also opens a sharded .nwc — parts written from one conversion plan
// and their model.nwc.index.json, given as that file or the directory
// holding it — as one Reader with the same API (OpenSet; multi.go says
// what Metadata, Index and Size mean for a set).
//
// A tensor decodes to the caller's buffer (DecodeInto, Float32Into, BF16Into,
// F16Into and the row-range forms), to a new slice (Bytes, Float32, RowBytes, RowFloat32),
// or as a stream (Tensor.Open) that holds a few groups at a time. Output is
// the tensor's own element type or F32, F16 or BF16, converted as package
// dtype documents: exact widening, else round to nearest even, once. A
// file opened with Options.Mmap hands out raw tensors without a copy
// (Tensor.RawBytes); such slices are read-only and valid until Close.
//
// Every section's CRC32C is checked before its bytes are used; a tensor
// whose data is damaged returns an error wrapping format.ErrChecksum.
// Reader.Verify checks the whole file, and with VerifyOptions.Deep decodes
// every tensor.
//
// Calls that may take long (decoding a tensor, Verify, Tensor.Open for the
// stream's life) take a context.Context first and check it between chunk
// groups; Bytes, Float32, RowBytes and RowFloat32 are shorthands that use
// context.Background.
//
// A Reader and its Tensors are safe for concurrent use by multiple
// goroutines; a stream returned by Tensor.Open is not.
//
// Limits: a hostile file cannot make the reader allocate more than
// Options.Limits allow (index size, tensor count, rank, name length,
// decoded bytes of one tensor); sizes read from the file are checked
// against the file's size before they drive an allocation. Errors for bad
// input wrap format.ErrFormat, ErrChecksum, ErrUnsupported or ErrLimit;
// a missing tensor wraps format.ErrNotFound.
package reader
