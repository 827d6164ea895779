package authsvc

import "sync"

// pool runs functions on at most n goroutines at once. Go blocks while all
// n are busy, so a flood of requests pushes back on the caller (the micro
// endpoint's subscription) instead of piling up goroutines.
type pool struct {
	sem chan struct{} // one token per running function

	mu     sync.Mutex
	closed bool // guarded by mu; once set, Go runs nothing more

	wg sync.WaitGroup // running functions; Add only under mu while !closed
}

func newPool(n int) *pool {
	return &pool{sem: make(chan struct{}, n)}
}

// Go runs fn on its own goroutine once a slot is free, blocking until then.
// It reports false, without running fn, once the pool is closed.
func (p *pool) Go(fn func()) bool {
	p.sem <- struct{}{}
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		<-p.sem
		return false
	}
	p.wg.Add(1)
	p.mu.Unlock()
	go func() {
		defer p.wg.Done()
		defer func() { <-p.sem }()
		fn()
	}()
	return true
}

// Running is how many functions run now.
func (p *pool) Running() int { return len(p.sem) }

// Close stops the pool from starting functions and waits for the running
// ones to return. It is idempotent.
func (p *pool) Close() {
	p.mu.Lock()
	p.closed = true
	p.mu.Unlock()
	p.wg.Wait()
}
