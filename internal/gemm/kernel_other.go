//go:build !amd64

package gemm

var kernel = kernelGeneric

// Kernel names the kernel MulT uses.
func Kernel() string { return "generic" }
