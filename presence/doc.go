// Package presence keeps a view of who is online, built only from what the
// edges publish on the bus: plex.presence (one event per authenticated
// connect and per disconnect, and resync re-announcements after an edge
// reconnected to NATS) and plex.edge.stats (each edge's heartbeat, every
// interval_ms).
//
// A Tracker maps each uid to its connections. Three rules keep the view
// honest when events are missing:
//
//   - An edge whose stats stopped for Missed (3) of its own intervals has
//     gone (SIGKILL, power loss, a partition): all its connections count as
//     offline from that moment, though no offline event came. Expiry is
//     evaluated on every read, so the bound holds without a timer goroutine.
//     If the same edge process speaks again (its stats resume with the same
//     start time), its connections count again: they were never closed.
//   - An edge whose stats carry a new start time has restarted: the
//     connections it announced before that time are offline.
//   - A resync event (after an edge reconnected to the bus) adds the
//     connection if the tracker lost it, so a consumer that missed events
//     during an outage rebuilds its view; a resync for a connection that
//     already ended is ignored.
//
// Point queries without a presence database stay available on the bus
// itself (bus.QueryPresence, the Plex-Op: presence request): use a Tracker
// when you need the whole view, a count, or a cheap local answer.
//
// A Tracker starts no goroutine. Watch subscribes on a NATS connection the
// caller owns; events are applied on nats.go's subscription goroutines
// under the Tracker's lock, and Close unsubscribes. A Tracker made with New
// is fed by hand with ObservePresence and ObserveStats (from a JetStream
// replay, say, or in tests).
package presence
