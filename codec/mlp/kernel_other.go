//go:build !amd64

package mlp

// activeKernel is the kernel Forward uses, named activeName.
var (
	activeKernel kernelFunc = kernelGeneric
	activeName              = "generic"
)

// kernels lists every kernel this build can run on this CPU, by name.
func kernels() map[string]kernelFunc {
	return map[string]kernelFunc{"generic": kernelGeneric}
}
