package procs

import (
	"context"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestAdjuster(t *testing.T) {
	cfg := Config{Max: 8, LowerAfter: 3}.withDefaults()
	a := newAdjuster(cfg)
	steps := []struct {
		cores float64
		want  int
	}{
		{0.2, 1},
		{0.85, 1},
		{0.9, 2}, // one P kept 90 % busy: double
		{1.8, 4},
		{3.7, 8},
		{7.9, 8}, // at Max
		{3.9, 8}, // not under 0.5 × 4
		{1.9, 8}, // low 1
		{1.9, 8}, // low 2
		{2.5, 8}, // not low: the count starts again
		{1.0, 8},
		{1.0, 8},
		{1.0, 4}, // third low interval in a row: halve
		{1.0, 4}, // not under 0.5 × 2: stays
	}
	for i, s := range steps {
		got, _ := a.observe(s.cores)
		if got != s.want {
			t.Fatalf("step %d: %.2f cores used → %d Ps, want %d", i, s.cores, got, s.want)
		}
	}
}

func TestAdjusterNoFlapping(t *testing.T) {
	// A steady load between the thresholds settles and stays.
	a := newAdjuster(Config{Max: 2, LowerAfter: 2}.withDefaults())
	changes := 0
	for i := 0; i < 100; i++ {
		// 0.95 cores: too much for 1 P (0.9), and not under 0.5 at 2 Ps.
		if _, changed := a.observe(0.95); changed {
			changes++
		}
	}
	if changes != 1 || a.procs != 2 {
		t.Fatalf("%d changes, ended at %d Ps; want one change to 2", changes, a.procs)
	}
	// The load falls to 0.3 cores: after LowerAfter intervals, back to 1.
	a.observe(0.3)
	if n, _ := a.observe(0.3); n != 1 {
		t.Fatalf("after a quiet spell %d Ps, want 1", n)
	}
}

// fakeClock is a process CPU clock and GOMAXPROCS setter for Run.
type fakeClock struct {
	mu    sync.Mutex
	cpu   time.Duration
	procs int
	sets  []int
	rate  float64 // cores used per second of wall time
	last  time.Time
}

func (f *fakeClock) read() (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := time.Now()
	if !f.last.IsZero() {
		f.cpu += time.Duration(f.rate * float64(now.Sub(f.last)))
	}
	f.last = now
	return f.cpu, true
}

func (f *fakeClock) set(n int) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	old := f.procs
	if n > 0 {
		f.procs = n
		f.sets = append(f.sets, n)
	}
	return old
}

func (f *fakeClock) get() (int, []int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.procs, append([]int(nil), f.sets...)
}

func TestRunRaisesAndRestores(t *testing.T) {
	f := &fakeClock{procs: 4, rate: 3.5}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		Run(ctx, Config{Interval: 5 * time.Millisecond, set: f.set, cpu: f.read})
	}()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if n, _ := f.get(); n == 4 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Run never raised the Ps under load")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	n, sets := f.get()
	if sets[0] != 1 {
		t.Fatalf("Run started at %d Ps, want Min = 1 (sets %v)", sets[0], sets)
	}
	if n != 4 {
		t.Fatalf("after Run, %d Ps; want the original 4 restored", n)
	}
}

func TestRunWithOneCPUChangesNothing(t *testing.T) {
	f := &fakeClock{procs: 1}
	Run(context.Background(), Config{set: f.set, cpu: f.read}) // returns at once: Min == Max
	if _, sets := f.get(); len(sets) != 0 {
		t.Fatalf("Run changed GOMAXPROCS on a 1-CPU process: %v", sets)
	}
}

// With the real runtime: Run lowers GOMAXPROCS at once and puts it back.
func TestRunRealRuntime(t *testing.T) {
	orig := runtime.GOMAXPROCS(0)
	if orig < 2 {
		t.Skip("needs 2 CPUs")
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); Run(ctx, Config{Interval: time.Hour}) }()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.GOMAXPROCS(0) != 1 {
		if time.Now().After(deadline) {
			t.Fatal("GOMAXPROCS not lowered to 1")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	if got := runtime.GOMAXPROCS(0); got != orig {
		t.Fatalf("GOMAXPROCS %d after Run, want %d", got, orig)
	}
}
