// Package rawconn dials TCP connections whose reads and writes skip the Go
// runtime's syscall bookkeeping.
//
// A read or write through package net enters the runtime's syscall state,
// and the first one after the process has been idle wakes the sysmon
// thread, which then polls every 20 µs for a while. A push gateway at a
// moderate rate goes idle between almost every pair of messages, so on a
// virtual machine where each thread wake-up is expensive that churn cost
// about a fifth of the edge's CPU. These connections do non-blocking reads
// and writes with raw system calls and wait in Go's netpoller only when the
// socket is not ready, so deadlines, Close and the netpoller work as usual.
//
// On systems other than Linux, Dial returns a plain *net.TCPConn.
package rawconn
