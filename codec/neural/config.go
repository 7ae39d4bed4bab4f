package neural

import (
	"errors"
	"fmt"
	"math"
)

// NumLevels is the number of importance levels; a chunk's level selects its
// step multiplier and the embedding its networks multiply in.
const NumLevels = 4

// LevelCost is the paper's weight of a bit at each importance level
// (level 3 = most important, so its bits are cheapest). The equal-slope
// rule for a uniform quantizer, Δ² ∝ cost, turns it into the step
// multipliers of [StepMultiplier].
var LevelCost = [NumLevels]float64{3.4, 1.2, 0.1, 0.05}

// StepMultiplier returns m_q = sqrt(LevelCost[q]/LevelCost[0]), rounded to
// float32 so that the encoder and every decoder derive the same step.
func StepMultiplier(q int) float32 {
	return float32(math.Sqrt(LevelCost[q] / LevelCost[0]))
}

// A Config fixes the shape of a model. The paper's model is Chunk 16,
// Latent 16, Width 512, Blocks 4 (without the LayerNorm, which the fixed
// decode arithmetic leaves out); the built-in default is far smaller so
// that decoding runs at memory speed.
type Config struct {
	Chunk  int // weights per chunk: consecutive rows of one column
	Latent int // latents per chunk; Latent == Chunk makes both networks residual
	Width  int // hidden width of the encoder and decoder
	Blocks int // residual blocks x + ReLU(Wx+b), each followed by the level embedding
}

// DefaultConfig is the architecture of the built-in codec.
var DefaultConfig = Config{Chunk: 16, Latent: 16, Width: 32, Blocks: 1}

// Limits on a Config, so that a hostile blob cannot request a huge model.
const (
	maxChunk  = 64
	maxWidth  = 1024
	maxBlocks = 16
)

// ErrConfig reports an invalid model configuration.
var ErrConfig = errors.New("neural: invalid model configuration")

// Validate checks the configuration against the limits of the format.
func (c Config) Validate() error {
	switch {
	case c.Chunk < 1 || c.Chunk > maxChunk:
		return fmt.Errorf("%w: chunk %d not in [1, %d]", ErrConfig, c.Chunk, maxChunk)
	case c.Latent < 1 || c.Latent > maxChunk:
		return fmt.Errorf("%w: latent %d not in [1, %d]", ErrConfig, c.Latent, maxChunk)
	case c.Width < 1 || c.Width > maxWidth:
		return fmt.Errorf("%w: width %d not in [1, %d]", ErrConfig, c.Width, maxWidth)
	case c.Blocks < 0 || c.Blocks > maxBlocks:
		return fmt.Errorf("%w: blocks %d not in [0, %d]", ErrConfig, c.Blocks, maxBlocks)
	}
	return nil
}
