// Package bench is the load generator behind `plex bench`: devices that
// connect, log in and hold connections (conns, auth), and a push load with
// per-user in-flight limits, latency histograms and delivery checks (push).
// It measures a running Plex from the outside, as a user sizing a
// deployment would; nothing here is imported by the gateway itself.
package bench
