package llama

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
)

// ConfigFile is the name of the Hugging Face configuration that sits next
// to a checkpoint's weights.
const ConfigFile = "config.json"

// maxConfigSize bounds the config.json Load reads: real ones are a few
// kilobytes.
const maxConfigSize = 1 << 20

// ConfigFromJSON reads a Hugging Face config.json as metadata for
// ConfigFromMetadata: numbers, booleans and strings become strings, null
// and nested values are dropped. It refuses, with ErrConfig, what the Go
// forward pass does not implement rather than compute something else: a
// model_type other than "llama", rope_scaling, an activation other than
// SiLU, attention or MLP biases, and a head_dim other than
// hidden_size/num_attention_heads.
func ConfigFromJSON(r io.Reader) (map[string]string, error) {
	data, err := io.ReadAll(io.LimitReader(r, maxConfigSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("%w: %s larger than %d bytes", ErrConfig, ConfigFile, maxConfigSize)
	}
	var raw map[string]any
	if err := json.Unmarshal(data, &raw); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrConfig, ConfigFile, err)
	}
	md := make(map[string]string, len(raw))
	for k, v := range raw {
		switch v := v.(type) {
		case float64:
			md[k] = strconv.FormatFloat(v, 'g', -1, 64)
		case bool:
			md[k] = strconv.FormatBool(v)
		case string:
			md[k] = v
		}
	}
	unsupported := func(what string) error {
		return fmt.Errorf("%w: %s: %s is not supported by the Llama forward pass", ErrConfig, ConfigFile, what)
	}
	if t, ok := raw["model_type"]; ok && t != "llama" {
		return nil, unsupported(fmt.Sprintf("model_type %v", t))
	}
	if v, ok := raw["rope_scaling"]; ok && v != nil {
		return nil, unsupported("rope_scaling")
	}
	if v, ok := raw["hidden_act"]; ok && v != "silu" {
		return nil, unsupported(fmt.Sprintf("hidden_act %v", v))
	}
	for _, k := range []string{"attention_bias", "mlp_bias"} {
		if v, ok := raw[k]; ok && v != false {
			return nil, unsupported(k)
		}
	}
	if hd, ok := raw["head_dim"].(float64); ok {
		h, _ := raw["hidden_size"].(float64)
		n, _ := raw["num_attention_heads"].(float64)
		if n == 0 || hd*n != h {
			return nil, unsupported(fmt.Sprintf("head_dim %v with hidden_size %v and %v heads", hd, h, n))
		}
	}
	return md, nil
}

// configBeside reads the config.json in dir, returning nil without error
// if there is none.
func configBeside(dir string) (map[string]string, error) {
	f, err := os.Open(filepath.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ConfigFromJSON(f)
}

// hasConfig reports whether metadata names a model's dimension, the mark
// of a configuration written into the checkpoint.
func hasConfig(md map[string]string) bool {
	_, _, ok := lookup(md, keysDim)
	return ok
}
