// Package soak holds the soak test of the edge: minutes of 10,000 device
// connections with churn, pushes at a steady rate and one NATS restart in
// the middle, checking at the end that nothing leaked (goroutines, memory)
// and that no push was lost for a device that stayed connected while the
// bus was up. It is behind the build tag soak:
//
//	go test -tags soak -run TestSoak -timeout 20m -v ./test/soak/
//
// PLEX_SOAK_DURATION (3m), PLEX_SOAK_CONNS (10000), PLEX_SOAK_PUSH_RATE
// (2000 pushes/s) and PLEX_SOAK_CHURN_RATE (100 reconnects/s) change the
// shape. It needs Linux, like the fault tests whose harness it uses.
package soak
