// Package busfaults holds the fault tests of issue 6: the bus going away
// and coming back, the auth service down, slow or answering garbage, edge
// shutdown with SIGTERM and death with SIGKILL, and the bus's security
// (TLS, credentials, no secrets in logs).
//
// The tests run Plex as an operator does: the plex binary, built once per
// run, as subprocesses (nats, auth, edge, api) on loopback ports chosen
// free at run time, with devices as raw protocol connections held by the
// test process (see harness.Fleet). They need Linux (epoll, /proc).
package busfaults
