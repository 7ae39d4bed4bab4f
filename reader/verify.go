package reader

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/nwcodec/nwc/format"
)

// VerifyOptions configure Reader.Verify. The zero value (or nil) checks
// checksums, blob digests and padding only.
type VerifyOptions struct {
	// Deep also decodes every tensor, group by group, finding what only
	// decoding can: codec parameters or payloads that are well-formed
	// sections but invalid data.
	Deep bool
}

// Verify checks what opening the file did not: the CRC32C of every
// section, the SHA-256 of every stored blob and that every padding byte is
// zero, so that any damaged byte of the file is found. With opts.Deep it
// also decodes every tensor, holding no more than Options.Concurrency
// chunk groups at once. It returns all problems found, joined in the order
// of FORMAT.md §6 (file order, then tensors), so that the first one
// decides format.Class; each names the section or tensor and offset. ctx
// is checked between sections and groups; when it is done Verify returns
// its error alone.
func (rd *Reader) Verify(ctx context.Context, opts *VerifyOptions) error {
	if rd.set != nil {
		return rd.set.verify(ctx, opts)
	}
	var o VerifyOptions
	if opts != nil {
		o = *opts
	}
	var errs []error
	secs := rd.index.Sections()
	sort.Slice(secs, func(i, j int) bool { return secs[i].Offset < secs[j].Offset })
	blobAt := map[uint64]int{} // section offset → blob index; offsets are unique after Validate
	for i, b := range rd.index.Blobs {
		if b.Section != nil {
			blobAt[b.Section.Offset] = i
		}
	}
	prevEnd := uint64(format.PreambleLen)
	for _, s := range secs {
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := rd.checkZero(prevEnd, s.Offset); err != nil {
			errs = append(errs, err)
		}
		blob, isBlob := blobAt[s.Offset]
		if err := rd.checkSection(s, blob, isBlob); err != nil {
			errs = append(errs, err)
		}
		prevEnd = s.End()
	}
	if err := rd.checkZero(prevEnd, rd.trailer.IndexOffset); err != nil {
		errs = append(errs, err)
	}
	if o.Deep {
		for _, t := range rd.tensors {
			err := t.decodeRange(ctx, 0, t.e.NumElements(), sink{})
			if ctxErr := ctx.Err(); ctxErr != nil {
				return ctxErr
			}
			if err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkSection streams a section through CRC32C without holding it whole
// and, for blob i (isBlob), through SHA-256: FORMAT.md §6 checks a blob's
// digest right after its CRC.
func (rd *Reader) checkSection(s format.Located, i int, isBlob bool) error {
	h := crc32.New(format.CastagnoliTable)
	var w io.Writer = h
	d := sha256.New()
	if isBlob {
		w = io.MultiWriter(h, d)
	}
	if _, err := io.Copy(w, io.NewSectionReader(rd.r, int64(s.Offset), int64(s.Length))); err != nil {
		return fmt.Errorf("nwc: reading %s: %w", s.What, err)
	}
	if got := h.Sum32(); got != s.CRC {
		return &format.ChecksumError{What: s.What, Off: int64(s.Offset), Want: s.CRC, Got: got}
	}
	if !isBlob {
		return nil
	}
	var sum [32]byte
	d.Sum(sum[:0])
	return checkBlobSum(i, rd.index.Blobs[i], sum)
}

// checkZero checks that the padding [from, to) is all zero. Validate has
// made sure it is shorter than one alignment unit.
func (rd *Reader) checkZero(from, to uint64) error {
	if to <= from {
		return nil
	}
	b := make([]byte, to-from)
	if err := rd.readAt(b, int64(from)); err != nil {
		return err
	}
	for i, c := range b {
		if c != 0 {
			return format.Errorf(int64(from)+int64(i), "padding byte is %#02x, want 0", c)
		}
	}
	return nil
}
