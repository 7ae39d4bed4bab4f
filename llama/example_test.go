package llama_test

import (
	"context"
	"fmt"
	"log"

	"github.com/nwcodec/nwc/llama"
)

func Example() {
	m, err := llama.LoadBin("testdata/tiny.bin")
	if err != nil {
		log.Fatal(err)
	}
	cfg := m.Config()
	fmt.Printf("dim %d, %d layers, %d/%d heads, vocab %d\n", cfg.Dim, cfg.NLayers, cfg.NHeads, cfg.NKVHeads, cfg.VocabSize)

	// Documents start with BOS (token 1); windows of 8 tokens.
	docs := [][]int{{1, 4, 9, 2, 7, 7, 3, 12, 5, 6, 11}, {1, 8, 8, 8}}
	r, err := llama.EvalNLL(m, docs, 8)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%d tokens, mean NLL %.3f nats\n", r.Tokens, r.MeanNLL())

	ids, err := llama.Greedy(m, []int{1, 4}, 5)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("greedy:", ids)
	// Output:
	// dim 8, 2 layers, 2/1 heads, vocab 16
	// 14 tokens, mean NLL 2.949 nats
	// greedy: [1 4 4 4 4 4 4]
}

func ExampleCalibrate() {
	m, err := llama.LoadBin("testdata/tiny.bin")
	if err != nil {
		log.Fatal(err)
	}
	hs, err := llama.Calibrate(context.Background(), m, [][]int{{1, 4, 9, 2, 7, 7, 3}}, 8, 0)
	if err != nil {
		log.Fatal(err)
	}
	for _, name := range hs.Names() {
		h, _ := hs.Get(name)
		fmt.Printf("%s: %dx%d over %d tokens\n", name, h.N, h.N, h.Count)
	}
	// Output:
	// layers.0.attention.wo.weight: 8x8 over 7 tokens
	// layers.0.attention.wq.weight: 8x8 over 7 tokens
	// layers.0.feed_forward.w1.weight: 8x8 over 7 tokens
	// layers.0.feed_forward.w2.weight: 12x12 over 7 tokens
	// layers.1.attention.wo.weight: 8x8 over 7 tokens
	// layers.1.attention.wq.weight: 8x8 over 7 tokens
	// layers.1.feed_forward.w1.weight: 8x8 over 7 tokens
	// layers.1.feed_forward.w2.weight: 12x12 over 7 tokens
	// tok_embeddings.weight: 8x8 over 7 tokens
}
