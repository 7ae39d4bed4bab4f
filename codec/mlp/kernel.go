package mlp

import (
	"fmt"
	"os"
)

// KernelEnv names the environment variable that selects the pure-Go kernel
// at start-up when set to "generic", to compare paths or rule out a
// CPU-specific problem. Every kernel gives the same bits.
const KernelEnv = "NWC_MLP_KERNEL"

func envGeneric() bool { return os.Getenv(KernelEnv) == "generic" }

// Kernel names the kernel [Packed.Forward] uses: "avx2" or "generic".
func Kernel() string { return activeName }

// SetKernel selects the kernel by name ("generic", or "avx2" where the CPU
// has it) and returns the previous one's name. It is for tests and
// diagnostics and must not be called while Forward runs.
func SetKernel(name string) (string, error) {
	k, ok := kernels()[name]
	if !ok {
		return activeName, fmt.Errorf("mlp: kernel %q is not available on this machine", name)
	}
	prev := activeName
	activeKernel, activeName = k, name
	return prev, nil
}
