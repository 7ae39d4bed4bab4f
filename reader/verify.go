package reader

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sort"

	"github.com/nwcodec/nwc/format"
)

// Verify checks what opening the file did not: the CRC32C of every section
// and that every padding byte is zero, so that any damaged byte of the
// file is found. With deep set it also decodes every tensor. It returns
// all problems found, joined; each names the section or tensor and offset.
func (rd *Reader) Verify(deep bool) error {
	var errs []error
	secs := rd.index.Sections()
	sort.Slice(secs, func(i, j int) bool { return secs[i].Offset < secs[j].Offset })
	prevEnd := uint64(format.PreambleLen)
	for _, s := range secs {
		if err := rd.checkZero(prevEnd, s.Offset); err != nil {
			errs = append(errs, err)
		}
		if err := rd.checkCRC(s); err != nil {
			errs = append(errs, err)
		}
		prevEnd = s.End()
	}
	if err := rd.checkZero(prevEnd, rd.trailer.IndexOffset); err != nil {
		errs = append(errs, err)
	}
	if deep {
		for _, t := range rd.tensors {
			if _, err := t.Bytes(); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// checkCRC streams a section through CRC32C without holding it whole.
func (rd *Reader) checkCRC(s format.Located) error {
	h := crc32.New(format.CastagnoliTable)
	if _, err := io.Copy(h, io.NewSectionReader(rd.r, int64(s.Offset), int64(s.Length))); err != nil {
		return fmt.Errorf("nwc: reading %s: %w", s.What, err)
	}
	if got := h.Sum32(); got != s.CRC {
		return &format.ChecksumError{What: s.What, Off: int64(s.Offset), Want: s.CRC, Got: got}
	}
	return nil
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
