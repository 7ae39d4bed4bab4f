package main

import (
	"bytes"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	ggufparser "github.com/gpustack/gguf-parser-go"

	"github.com/nwcodec/nwc/internal/shareddata"
)

// TestDecodeGGUF converts stories260K losslessly and decodes it to GGUF,
// from the file and from an http URL, with its tokenizer.
func TestDecodeGGUF(t *testing.T) {
	in := shareddata.Path(t, "stories260K", "stories260K.safetensors")
	tok := shareddata.Path(t, "stories260K", "tok512.bin")
	dir := t.TempDir()
	nwcPath := filepath.Join(dir, "m.nwc")
	runOK(t, "convert", in, "-o", nwcPath, "--codec", "lossless")
	local := filepath.Join(dir, "local.gguf")
	runOK(t, "decode", "--quiet", nwcPath, "-o", local, "--dtype", "f16", "--tokenizer", tok, "--name", "s260k", "--alignment", "64")
	f, err := ggufparser.ParseGGUFFile(local)
	if err != nil {
		t.Fatal(err)
	}
	md := map[string]string{}
	for _, kv := range f.Header.MetadataKV {
		if kv.ValueType != ggufparser.GGUFMetadataValueTypeArray {
			md[kv.Key] = fmt.Sprint(kv.Value)
		}
	}
	if md["general.architecture"] != "llama" || md["general.name"] != "s260k" || md["general.alignment"] != "64" ||
		md["general.file_type"] != "1" || md["llama.block_count"] != "5" || len(f.TensorInfos) != 47 {
		t.Fatalf("metadata %v, %d tensors", md, len(f.TensorInfos))
	}

	srv := httptest.NewServer(http.FileServer(http.Dir(dir)))
	defer srv.Close()
	remote := filepath.Join(dir, "remote.gguf")
	runOK(t, "decode", "--quiet", srv.URL+"/m.nwc", "-o", remote, "--dtype", "f16", "--tokenizer", tok, "--name", "s260k", "--alignment", "64")
	a, _ := os.ReadFile(local)
	b, _ := os.ReadFile(remote)
	if len(a) == 0 || !bytes.Equal(a, b) {
		t.Fatal("the GGUF decoded from the URL differs from the local one")
	}

	var out, errb bytes.Buffer
	if code := run([]string{"decode", nwcPath, "-o", filepath.Join(dir, "x.safetensors"), "--tokenizer", tok}, &out, &errb); code != 2 {
		t.Fatalf("--tokenizer with a safetensors output: exit %d: %s", code, errb.String())
	}
	if code := run([]string{"decode", nwcPath, "-o", filepath.Join(dir, "x.gguf"), "--alignment", "48"}, &out, &errb); code == 0 {
		t.Fatal("--alignment 48 accepted")
	}
}
