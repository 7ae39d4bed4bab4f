package tokenizer_test

import (
	"fmt"
	"log"

	"github.com/nwcodec/nwc/tokenizer"
)

func Example() {
	tok, err := tokenizer.Load("testdata/tiny.tok")
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("hello the q", true, false)
	for _, id := range ids {
		fmt.Printf("%d %q\n", id, tok.Piece(id))
	}
	fmt.Printf("%q\n", tok.DecodeAll(ids))
	// Output:
	// 1 "\n<s>\n"
	// 267 " hello"
	// 263 " the"
	// 272 " "
	// 116 "<0x71>"
	// "hello the q"
}

// A Hugging Face tokenizer.json is read by the same Load; this small
// hand-written one has a Metaspace pre-tokenizer, BPE merges and added
// tokens.
func Example_tokenizerJSON() {
	tok, err := tokenizer.Load("testdata/hf-features.json")
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.EncodeSpecial("abc ab d")
	for _, id := range ids {
		fmt.Printf("%d %q\n", id, tok.Piece(id))
	}
	fmt.Printf("%q\n", tok.DecodeAll(ids))
	// Output:
	// 1 "<s>"
	// 10 "▁ab"
	// 6 "c"
	// 10 "▁ab"
	// 13 "▁d"
	// 2 "</s>"
	// "abc ab d"
}
