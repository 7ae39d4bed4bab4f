//go:build !amd64

package gemm

var kernel = kernelGeneric

var (
	kernelAdd = kernelAddGeneric
	kernel64  = kernel64Generic
)

// Kernel names the kernel MulT uses.
func Kernel() string { return "generic" }
