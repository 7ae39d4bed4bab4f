package rans_test

import (
	"fmt"
	"log"

	"github.com/nwcodec/nwc/codec/rans"
)

func Example() {
	// Quantized weights: mostly small values, one outlier.
	syms := []int32{0, 1, -1, 0, 0, 2, 0, -1, 1, 0, 0, 0, -2, 0, 1, 0, 100000}

	// Fit a table to the data (here the data itself) and store it with the
	// stream; the outlier lies beyond the MaxSymbols-wide range and is escaped.
	tab, err := rans.Build(syms, rans.DefaultPrecision)
	if err != nil {
		log.Fatal(err)
	}
	header, _ := tab.MarshalBinary()
	stream, err := rans.Encode(nil, syms, []*rans.Table{tab})
	if err != nil {
		log.Fatal(err)
	}

	// The decoder reads the table back and needs the symbol count.
	tab2, _, err := rans.ParseTable(header)
	if err != nil {
		log.Fatal(err)
	}
	got := make([]int32, len(syms))
	if err := rans.Decode(stream, []*rans.Table{tab2}, got); err != nil {
		log.Fatal(err)
	}
	fmt.Println("range:", tab.Min(), "to", tab.Min()+int32(tab.Len())-1)
	fmt.Println("escape frequency:", tab.EscapeFreq())
	fmt.Println("decoded:", got)
	fmt.Printf("cost of 0: %.2f bits, of 100000: %.2f bits\n", tab.Cost(0), tab.Cost(100000))
	// Output:
	// range: -2 to 2
	// escape frequency: 964
	// decoded: [0 1 -1 0 0 2 0 -1 1 0 0 0 -2 0 1 0 100000]
	// cost of 0: 0.92 bits, of 100000: 28.09 bits
}

func ExampleNormalize() {
	// Histogram of the values 10, 11, 12 and 13, plus 2 values that will be
	// escaped.
	counts := []uint64{500, 300, 0, 198}
	freqs, esc, err := rans.Normalize(counts, 2, 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(freqs, esc)
	tab, err := rans.NewTable(10, freqs, esc, 10)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println(tab.Freq(12), tab.Freq(13))
	// Output:
	// [512 307 0 203] 2
	// 0 203
}
