// Package hostile holds the tests of Plex against hostile or broken
// clients: thousands of connections that never log in or drip one byte at
// a time (slowloris), floods of connections, bad logins and frames,
// garbage on the wire, clients that stop reading while they are pushed
// to, TLS on the edge listener, and timing of the HTTP API's bearer check
// (that one lives in pushapi, beside the unexported function it times).
//
// The tests drive real sockets against an edge that runs either as a
// `plex edge` subprocess (built once per run with go build; memory is
// measured as its VmRSS and its limits are read from its --metrics-addr)
// or in process (where goroutines, file descriptors and edge.NumConns can
// be checked against a baseline). NATS is embedded in the test process,
// with an auth responder that logs token "uid:<x>" in as x and refuses
// anything else.
//
// Each test logs what it measured (memory per idle connection, login and
// push latencies during an attack) with t.Logf; run with -v to see the
// figures. The package has no non-test code.
package hostile
