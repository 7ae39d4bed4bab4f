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

// A Hugging Face tokenizer.json is read by the same Load; this one is
// tok512.bin converted by WriteHF.
func Example_tokenizerJSON() {
	tok, err := tokenizer.Load("testdata/tok512.json")
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.EncodeSpecial("Lily saw a dog.")
	for _, id := range ids {
		fmt.Printf("%d %q\n", id, tok.Piece(id))
	}
	fmt.Printf("%q\n", tok.DecodeAll(ids))
	// Output:
	// 1 "<s>"
	// 317 "▁Lily"
	// 394 "▁saw"
	// 261 "▁a"
	// 400 "▁do"
	// 428 "g"
	// 426 "."
	// "Lily saw a dog."
}
