package llama

import (
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/nwcodec/nwc/tokenizer"
)

// Result is the outcome of a likelihood evaluation.
type Result struct {
	Tokens   int     // number of scored tokens
	TotalNLL float64 // sum of their negative log-likelihoods, in nats
}

// MeanNLL returns the mean negative log-likelihood per scored token in
// nats, or NaN if no token was scored.
func (r Result) MeanNLL() float64 {
	if r.Tokens == 0 {
		return math.NaN()
	}
	return r.TotalNLL / float64(r.Tokens)
}

// Perplexity returns exp(MeanNLL).
func (r Result) Perplexity() float64 { return math.Exp(r.MeanNLL()) }

// ErrContext reports an evaluation window or a prompt longer than the
// model's context.
var ErrContext = errors.New("llama: sequence exceeds context length")

// windows splits doc into the forward passes of the evaluation protocol:
// chunks of size tokens starting every size-1 tokens, so consecutive
// chunks share one token, with doc[0] (BOS) prepended to every chunk after
// the first so that each pass starts from start-of-text. Every prediction
// in a pass is scored; the shared token is thus scored twice, once with
// the previous chunk as context and once right after BOS.
func windows(doc []int, size int) [][]int {
	var ws [][]int
	for start := 0; start+1 < len(doc); start += size - 1 {
		end := min(start+size, len(doc))
		if start == 0 {
			ws = append(ws, doc[:end])
			continue
		}
		w := make([]int, 0, end-start+1)
		w = append(w, doc[0])
		w = append(w, doc[start:end]...)
		ws = append(ws, w)
	}
	return ws
}

func checkWindow(m *Model, window int) error {
	if window < 2 || window > m.cfg.SeqLen {
		return fmt.Errorf("%w: window %d out of range [2, %d]", ErrContext, window, m.cfg.SeqLen)
	}
	return nil
}

// EvalNLL returns the negative log-likelihood of docs under m. Each
// document is a token sequence starting with BOS. It is cut into chunks of
// window tokens starting every window-1 tokens; each chunk is run from an
// empty cache, those after the first with the document's first token
// prepended (so they take window+1 positions, one more than a window of
// SeqLen leaves room for), and every next-token prediction inside a pass is
// scored. This is the reference protocol of the project's published
// perplexities: each token after the first is scored once, except the
// first token of every later chunk, which is scored a second time right
// after BOS. Windows run concurrently; the result does not depend on the
// number of CPUs.
func EvalNLL(m *Model, docs [][]int, window int) (Result, error) {
	if err := checkWindow(m, window); err != nil {
		return Result{}, err
	}
	tokens, total, err := sumWindows(docs, window, func() func(int, []int) (float64, error) {
		s := m.NewState()
		return func(_ int, w []int) (float64, error) {
			s.Reset()
			return windowNLL(s, w)
		}
	})
	return Result{Tokens: tokens, TotalNLL: total}, err
}

// sumWindows cuts docs into the windows of the evaluation protocol, runs
// them concurrently through workers (newWorker is called once per
// goroutine, so a worker may keep its own model state) and returns the
// number of scored positions and the sum of what the workers returned,
// added in window order so that the result does not depend on the number
// of CPUs. A worker is given each window's number j in that order, and
// the window.
func sumWindows(docs [][]int, window int, newWorker func() func(j int, w []int) (float64, error)) (int, float64, error) {
	var jobs [][]int
	for _, d := range docs {
		jobs = append(jobs, windows(d, window)...)
	}
	return sumJobs(jobs, newWorker)
}

// sumJobs is sumWindows for the windows jobs.
func sumJobs(jobs [][]int, newWorker func() func(j int, w []int) (float64, error)) (int, float64, error) {
	vals := make([]float64, len(jobs))
	errs := make([]error, len(jobs))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(runtime.GOMAXPROCS(0), len(jobs)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			work := newWorker()
			for j := range next {
				vals[j], errs[j] = work(j, jobs[j])
			}
		}()
	}
	for j := range jobs {
		next <- j
	}
	close(next)
	wg.Wait()

	tokens, total := 0, 0.0
	for j, w := range jobs {
		if errs[j] != nil {
			return 0, 0, errs[j]
		}
		tokens += len(w) - 1
		total += vals[j]
	}
	return tokens, total, nil
}

// windowNLL runs w from s's current position and returns the summed
// negative log-likelihood of w[1:].
func windowNLL(s *State, w []int) (float64, error) {
	logits, err := s.Forward(w)
	if err != nil {
		return 0, err
	}
	v := s.m.cfg.VocabSize
	var total float64
	for p := 0; p+1 < len(w); p++ {
		total += nll(logits[p*v:(p+1)*v], w[p+1])
	}
	return total, nil
}

// nll returns -log softmax(logits)[target], in float64.
func nll(logits []float32, target int) float64 {
	z, m := logSumExp(logits)
	return z + m - float64(logits[target])
}

// ReadDocs reads evaluation documents from r: every line that is not
// blank after strings.TrimSpace is one document, encoded as BOS followed
// by tok.Encode of the trimmed line (with its dummy-prefix space) and no
// EOS.
func ReadDocs(r io.Reader, tok *tokenizer.Tokenizer) ([][]int, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	var docs [][]int
	for line := range strings.Lines(string(data)) {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		docs = append(docs, tok.Encode(line, true, false))
	}
	return docs, nil
}

// LoadDocs reads evaluation documents from the text file at path, as
// ReadDocs does.
func LoadDocs(path string, tok *tokenizer.Tokenizer) ([][]int, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return ReadDocs(f, tok)
}

// Greedy extends prompt by up to n tokens, each the most likely next
// token (the lowest id on ties), and returns prompt followed by them. Like
// run.c it stops early after producing BOS, which llama2.c models emit
// between stories, or when the context is full.
func Greedy(m *Model, prompt []int, n int) ([]int, error) {
	return Sample(m, prompt, n, SampleOptions{Stop: []int{tokenizer.BOS}}, nil)
}

// Generate encodes prompt after BOS, extends it greedily by up to n
// tokens and returns the decoded text, prompt included, as run.c prints
// it.
func Generate(m *Model, tok *tokenizer.Tokenizer, prompt string, n int) (string, error) {
	ids, err := Greedy(m, tok.Encode(prompt, true, false), n)
	if err != nil {
		return "", err
	}
	return tok.DecodeAll(ids), nil
}
