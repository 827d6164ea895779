// Package edge is the TCP side of Plex: it accepts device connections,
// authenticates them through the auth service on the bus, keeps them alive
// on heartbeats, holds one bus subscription per online user, writes pushes
// to sockets, publishes presence and stats, and drains on shutdown.
//
// One connection's life: accept → (MaxConnections check) → frames read
// under the auth deadline → /auth/server sent to the auth service over the
// bus (bounded in flight) → registered under its uid, subscribed, then
// /auth/success → pushes and heartbeats until EOF, an error, the idle
// deadline, a kick, a slow-consumer close or shutdown → unregistered
// (unsubscribing the user's subject with its last connection) → offline
// presence.
//
// Goroutines: the accept loop, one reader per connection (or the epoll
// loops, which hold none per idle connection), the dispatchers, the
// deadline sweeper, the stats loop and the bus watcher are owned by
// Server.Run and waited for before it returns; auth requests and write
// flushers are short-lived and counted in the same WaitGroup.
//
// Lock order: Server.connsMu, then registry.mu, then conn.wmu. Nothing
// holds a lock across a bus request or a blocking socket write.
package edge
