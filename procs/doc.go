// Package procs sizes GOMAXPROCS to the process's load.
//
// Every hand-off between goroutines on different Ps can wake an idle
// thread, and on a virtual machine each wake-up costs as much as a small
// system call. A gateway that spends most of its time below one core of
// work therefore runs cheaper on one P: at 10,000 pushes/s the edge used
// about half the CPU per push with GOMAXPROCS=1 that it used with 2 on the
// 2-core machine of BENCHMARKS.md, at no loss of throughput there. Run
// starts a process on Min Ps and doubles them, up to Max, once the process
// keeps its Ps busy; it halves them again when the load has dropped well
// below what the smaller count can carry.
package procs
