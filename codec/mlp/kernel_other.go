//go:build !amd64

package mlp

// activeKernel is the kernel Forward uses. Tests call the kernels directly
// (see kernels) so that every one runs in the default build.
var activeKernel kernelFunc = kernelGeneric

// kernels lists every kernel this build can run on this CPU, by name.
func kernels() map[string]kernelFunc {
	return map[string]kernelFunc{"generic": kernelGeneric}
}

// Kernel names the kernel [Packed.Forward] uses on this machine: "avx2" or
// "generic".
func Kernel() string { return "generic" }
