package atomicfile

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// A Leftover is a temporary file for a target that this process did not
// create: either another process is writing the target now (Live), or a
// process that was killed before it could clean up (SIGKILL, a crash, a
// power cut) left it behind. It is never the target: a reader finds it
// only by its hidden temporary name.
type Leftover struct {
	Name string // path of the temporary file
	Size int64
	// PID is the process that created the file, 0 when the name does not
	// record one (a file from before names carried it).
	PID int
	// Live reports that process PID still exists, so the file may be in
	// use. Process ids are reused: a dead writer's id taken by an
	// unrelated process makes its file look live, never the reverse, so
	// a file not Live can be deleted. Processes in another pid namespace
	// (another container sharing the directory) look dead.
	Live bool
}

// Leftovers lists the temporary files next to path (after following
// symbolic links, as Create does) that were not created by this process.
func Leftovers(path string) ([]Leftover, error) {
	target, err := Target(path)
	if err != nil {
		return nil, err
	}
	dir, base := filepath.Split(target)
	if dir == "" {
		dir = "."
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	prefix := tempPrefix(base)
	var out []Leftover
	for _, e := range ents {
		rest, ok := strings.CutPrefix(e.Name(), prefix)
		if !ok || !e.Type().IsRegular() {
			continue
		}
		// "PID-RANDOM", or "RANDOM" from before names carried the pid;
		// anything else is the temporary file of another target whose
		// name starts like this one's (".a.tmp-x.tmp-1-2" for "a.tmp-x").
		p, r, withPID := strings.Cut(rest, "-")
		if !digits(p) || withPID && !digits(r) {
			continue
		}
		name := filepath.Join(dir, e.Name())
		pending.Lock()
		ours := pending.names[name]
		pending.Unlock()
		if ours {
			continue
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		l := Leftover{Name: name, Size: fi.Size()}
		if withPID {
			if pid, err := strconv.Atoi(p); err == nil && pid > 0 {
				l.PID = pid
				l.Live = pid != os.Getpid() && processExists(pid)
			}
		}
		out = append(out, l)
	}
	return out, nil
}

func digits(s string) bool {
	for _, c := range []byte(s) {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}
