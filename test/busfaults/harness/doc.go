// Package harness runs Plex as an operator does, for the fault and soak
// tests: the plex binary built once, its parts as subprocesses that can be
// signalled and killed, raw protocol clients, and a Fleet that holds tens of
// thousands of device connections in one test process without a goroutine
// per connection.
//
// Everything listens on loopback and on ports chosen free at run time;
// every process and connection is cleaned up with the test.
//
// The Fleet needs Linux (epoll), and RSS and fd counts read /proc; the rest
// builds everywhere, so tests elsewhere can share the process helpers.
package harness
