package reader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/nwcodec/nwc/format"
)

// Sharded files. Open accepts, besides a .nwc file, a sharded set's index
// (model.nwc.index.json, see format.ShardIndex) or a directory holding
// one, and returns a Reader with the same API over all the parts:
//
//   - Opening reads the index and the preamble, trailer and index of every
//     part, and nothing else, as opening one file does. Parts are opened
//     together rather than on first use because Tensors, Index and
//     Metadata have no error result, and a set with a missing part, or a
//     part from another plan, should fail when opened rather than at its
//     hundredth tensor. Opening checks that every part is present, that
//     every tensor is in the part the weight map names and in no other,
//     that no part holds a tensor the weight map lacks, and that every
//     part was made from the set's plan (format.MetaPlan) as part I of N
//     (format.MetaPart); a set that fails any of these is an error
//     wrapping format.ErrFormat.
//   - Tensor routes to the part holding the tensor, Tensors lists the parts'
//     tensors in part order (the order nwc merge writes them in), and the
//     Tensor values are those of the parts: Tensor.Entry's offsets and
//     blob number are within its own part file.
//   - Metadata is the parts' metadata without format.MetaPart: that of the
//     file one process or nwc merge writes from the same plan.
//   - Index is the set's index as one table: that metadata, the first
//     part's sources, the distinct blobs of all parts (tensors' Blob fields
//     renumbered to match), and every tensor's entry; section offsets stay
//     those within each tensor's own part (Parts names the files).
//   - Size is the sum of the parts' sizes; Version and Alignment are the
//     first part's (every part is written with the same options);
//     SourceHeader reads the first part's sources; Mapped reports whether
//     every part is mapped.
//   - Verify verifies every part; Close closes them all.

// A partSet is the parts of a sharded Reader.
type partSet struct {
	index *format.ShardIndex
	paths []string
	parts []*ReadCloser
}

// openSet opens path as a sharded set when it is an index file or a
// directory holding one; ok is false when path is a single .nwc file (or a
// directory holding exactly one, then returned as file).
func openSet(path string, opts *Options) (rc *ReadCloser, file string, ok bool, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, path, false, nil // opening it reports the error
	}
	if fi.IsDir() {
		ents, err := os.ReadDir(path)
		if err != nil {
			return nil, "", true, err
		}
		var idx, nwc []string
		for _, e := range ents {
			switch n := e.Name(); {
			case !e.Type().IsRegular():
			case strings.HasSuffix(n, format.ShardIndexSuffix):
				idx = append(idx, n)
			case strings.HasSuffix(n, ".nwc"):
				nwc = append(nwc, n)
			}
		}
		switch {
		case len(idx) == 1:
			path = filepath.Join(path, idx[0])
		case len(idx) > 1:
			return nil, "", true, fmt.Errorf("nwc: directory %s holds %d sharded indexes (%s); name one", path, len(idx), strings.Join(idx, ", "))
		case len(nwc) == 1:
			return nil, filepath.Join(path, nwc[0]), false, nil
		default:
			return nil, "", true, fmt.Errorf("nwc: directory %s holds no %s and %d .nwc files; name one", path, format.ShardIndexSuffix, len(nwc))
		}
	} else if !strings.HasSuffix(path, ".json") {
		return nil, path, false, nil
	}
	rc, err = OpenSet(path, opts)
	return rc, "", true, err
}

// OpenSet opens the sharded .nwc whose index file is at path; the parts
// are the files the index names, in its directory. Open calls it for a
// path ending in .json or a directory holding a *.nwc.index.json.
func OpenSet(path string, opts *Options) (*ReadCloser, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	raw, err := io.ReadAll(io.LimitReader(f, format.MaxShardIndexSize+1))
	f.Close()
	if err != nil {
		return nil, err
	}
	x, err := format.ParseShardIndex(raw)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	s := &partSet{index: x}
	n := x.Metadata.Parts
	dir := filepath.Dir(path)
	for i := 1; i <= n; i++ {
		p := filepath.Join(dir, format.PartName(i, n))
		s.paths = append(s.paths, p)
		part, err := Open(p, opts)
		if errors.Is(err, os.ErrNotExist) {
			err = format.Errorf(-1, "part %d of %d (%s) is missing", i, n, format.PartName(i, n))
		}
		if err != nil {
			s.close()
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		s.parts = append(s.parts, part)
	}
	rd, err := s.reader()
	if err != nil {
		s.close()
		return nil, err
	}
	return &ReadCloser{Reader: rd}, nil
}

// reader checks the parts against the index and each other and builds the
// set's Reader.
func (s *partSet) reader() (*Reader, error) {
	x := s.index
	n := len(s.parts)
	first := s.parts[0].Reader
	rd := &Reader{
		r:        first.r,
		preamble: first.preamble,
		opts:     first.opts,
		byName:   map[string]*Tensor{},
		blobs:    map[int]*blobEntry{},
		set:      s,
	}
	rd.index = &format.Index{Sources: first.index.Clone().Sources}
	if md := first.Metadata(); md != nil {
		delete(md, format.MetaPart)
		rd.index.Metadata = md
	}
	blobOf := map[format.Blob]int{}
	for i, p := range s.parts {
		name := format.PartName(i+1, n)
		md := p.index.Metadata
		if got := md[format.MetaPlan]; got != x.Metadata.Plan {
			return nil, format.Errorf(-1, "part %s was made from plan %.12q, the set from %.12s", name, got, x.Metadata.Plan)
		}
		if got := md[format.MetaPart]; got != format.FormatPart(i+1, n) {
			return nil, format.Errorf(-1, "part %s says it is part %q, not %s", name, got, format.FormatPart(i+1, n))
		}
		if p.preamble != first.preamble {
			return nil, format.Errorf(-1, "part %s has version or alignment unlike part 1's", name)
		}
		rd.size += p.size
		for _, t := range p.tensors {
			tn := t.e.Name
			if want, ok := x.WeightMap[tn]; !ok {
				return nil, format.TensorErrorf(tn, -1, "in part %s but not in the weight map", name)
			} else if want != name {
				return nil, format.TensorErrorf(tn, -1, "in part %s but mapped to %s", name, want)
			}
			if _, dup := rd.byName[tn]; dup {
				return nil, format.TensorErrorf(tn, -1, "stored twice in part %s", name)
			}
			rd.byName[tn] = t
			rd.tensors = append(rd.tensors, t)
			e := t.e.Clone()
			if e.Blob >= 0 {
				b := p.index.Blobs[e.Blob]
				key := format.Blob{Codec: b.Codec, SHA256: b.SHA256}
				j, ok := blobOf[key]
				if !ok {
					j = len(rd.index.Blobs)
					blobOf[key] = j
					if b.Section != nil {
						sec := *b.Section
						b.Section = &sec
					}
					rd.index.Blobs = append(rd.index.Blobs, b)
				}
				e.Blob = j
			}
			rd.index.Tensors = append(rd.index.Tensors, e)
		}
	}
	if len(rd.byName) != len(x.WeightMap) {
		for tn, f := range x.WeightMap {
			if _, ok := rd.byName[tn]; !ok {
				return nil, format.TensorErrorf(tn, -1, "in the weight map (%s) but in no part", f)
			}
		}
	}
	return rd, nil
}

func (s *partSet) close() error {
	var errs []error
	for _, p := range s.parts {
		errs = append(errs, p.Close())
	}
	return errors.Join(errs...)
}

// Parts returns the paths of a sharded Reader's part files in order, nil
// for a single file.
func (rd *Reader) Parts() []string {
	if rd.set == nil {
		return nil
	}
	return append([]string(nil), rd.set.paths...)
}

// ShardIndex returns a copy of a sharded Reader's index file, nil for a
// single file.
func (rd *Reader) ShardIndex() *format.ShardIndex {
	if rd.set == nil {
		return nil
	}
	x := *rd.set.index
	x.WeightMap = make(map[string]string, len(rd.set.index.WeightMap))
	for k, v := range rd.set.index.WeightMap {
		x.WeightMap[k] = v
	}
	return &x
}

// verifySet verifies every part, naming the part in each problem.
func (s *partSet) verify(ctx context.Context, opts *VerifyOptions) error {
	var errs []error
	for i, p := range s.parts {
		err := p.Verify(ctx, opts)
		if ctxErr := ctx.Err(); ctxErr != nil {
			return ctxErr
		}
		if err == nil {
			continue
		}
		name := filepath.Base(s.paths[i])
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				errs = append(errs, fmt.Errorf("%s: %w", name, e))
			}
		} else {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	return errors.Join(errs...)
}

func (s *partSet) mapped() bool {
	for _, p := range s.parts {
		if !p.Mapped() {
			return false
		}
	}
	return true
}
