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
