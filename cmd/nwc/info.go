package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"path/filepath"
	"slices"
	"strings"

	"github.com/nwcodec/nwc/format"
	"github.com/nwcodec/nwc/reader"
)

type tensorInfo struct {
	Name          string   `json:"name"`
	DType         string   `json:"dtype"`
	Shape         []uint64 `json:"shape"`
	Codec         string   `json:"codec"`
	Bytes         uint64   `json:"bytes"`
	BitsPerWeight float64  `json:"bits_per_weight"`
}

type fileInfo struct {
	FileBytes int64  `json:"file_bytes"`
	Version   string `json:"version"`
	// BitsPerWeight counts the whole file honestly: (file size − bytes of
	// tensors of rank < 2) × 8 / elements of tensors of rank ≥ 2, so the
	// index, blobs, scales and padding all count.
	BitsPerWeight float64           `json:"bits_per_weight"`
	MatrixWeights uint64            `json:"matrix_weights"`
	BlobBytes     uint64            `json:"blob_bytes"`
	Metadata      map[string]string `json:"metadata,omitempty"`
	// Breakdown splits BitsPerWeight into where the bytes go, in bits per
	// matrix weight: "payload" (the matrices' chunk groups), "aux:NAME"
	// for each kind of auxiliary data (scales, tables, ...), "blobs", and
	// "index+framing" (index, preamble, trailer, source headers, padding).
	Breakdown map[string]float64 `json:"breakdown,omitempty"`
	Tensors   []tensorInfo       `json:"tensors"`
	// Parts lists the files of a sharded .nwc; FileBytes and the rates
	// then count them all, each with its own index (and blob, whose
	// copies after the first count as index+framing).
	Parts []string `json:"parts,omitempty"`
}

func runInfo(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("info", stderr)
	asJSON := fs.Bool("json", false, "print one JSON object")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("want one input file")
	}
	r, closeR, err := openNWC(context.Background(), pos[0], stderr)
	if err != nil {
		return explainNWCErr(pos[0], "info", err)
	}
	defer closeR()
	fi := describe(r)
	if *asJSON {
		enc := json.NewEncoder(stdout)
		return enc.Encode(fi)
	}
	tw := newTable(stdout)
	fmt.Fprintln(tw, "name\tdtype\tshape\tcodec\tbytes\tbits/weight\t")
	for _, t := range fi.Tensors {
		fmt.Fprintf(tw, "%s\t%s\t%v\t%s\t%d\t%.3f\t\n", t.Name, t.DType, t.Shape, t.Codec, t.Bytes, t.BitsPerWeight)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "%d tensors, %d bytes (format %s), blobs %d bytes; %.4f bits per weight over %d matrix weights\n",
		len(fi.Tensors), fi.FileBytes, fi.Version, fi.BlobBytes, fi.BitsPerWeight, fi.MatrixWeights)
	if len(fi.Parts) > 0 {
		fmt.Fprintf(stdout, "sharded: %d parts (%s … %s), plan %.12s\n", len(fi.Parts), filepath.Base(fi.Parts[0]),
			filepath.Base(fi.Parts[len(fi.Parts)-1]), fi.Metadata[format.MetaPlan])
	}
	if len(fi.Breakdown) > 0 {
		keys := slices.Sorted(maps.Keys(fi.Breakdown))
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = fmt.Sprintf("%s %.4f", k, fi.Breakdown[k])
		}
		fmt.Fprintf(stdout, "bits per weight by part: %s\n", strings.Join(parts, ", "))
	}
	return nil
}

// describe summarizes a file from its index alone.
func describe(r *reader.Reader) fileInfo {
	major, minor := r.Version()
	fi := fileInfo{FileBytes: r.Size(), Version: fmt.Sprintf("%d.%d", major, minor), Metadata: r.Metadata(), Tensors: []tensorInfo{}, Parts: r.Parts()}
	small := uint64(0)
	parts := map[string]uint64{}
	for _, t := range r.Tensors() {
		n := t.NumElements()
		ti := tensorInfo{Name: t.Name(), DType: string(t.DType()), Shape: t.Shape(), Codec: t.Codec(), Bytes: t.StoredBytes()}
		if n > 0 {
			ti.BitsPerWeight = float64(ti.Bytes) * 8 / float64(n)
		}
		if len(ti.Shape) < 2 {
			small += ti.Bytes
		} else {
			fi.MatrixWeights += n
			e := t.Entry()
			for _, g := range e.Groups {
				parts["payload"] += g.Length
			}
			for _, a := range e.Aux {
				parts["aux:"+a.Name] += a.Len()
			}
		}
		fi.Tensors = append(fi.Tensors, ti)
	}
	for _, b := range r.Index().Blobs {
		if b.Section != nil {
			fi.BlobBytes += b.Section.Length
		}
	}
	if fi.MatrixWeights > 0 {
		total := uint64(fi.FileBytes) - small
		fi.BitsPerWeight = float64(total) * 8 / float64(fi.MatrixWeights)
		parts["blobs"] = fi.BlobBytes
		fi.Breakdown = map[string]float64{}
		rest := int64(total)
		for k, v := range parts {
			rest -= int64(v)
			fi.Breakdown[k] = float64(v) * 8 / float64(fi.MatrixWeights)
		}
		// Inline aux data sits inside the (compressed) index: the rest is
		// what the index, headers and padding cost beyond it, negative
		// if compressing the index saved more than they cost.
		fi.Breakdown["index+framing"] = float64(rest) * 8 / float64(fi.MatrixWeights)
	}
	return fi
}
