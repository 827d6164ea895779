// Package client is the Go SDK for devices and programs that receive Plex
// pushes: it connects to an edge, logs in, keeps the connection alive with
// heartbeats and reconnects on its own when the network or the edge fails.
//
// # Use
//
//	c, err := client.New(client.Config{
//		HostURL:   "http://api.example.com:9579/plex/v1/host",
//		AuthFunc:  fetchToken,
//		OnMessage: func(m client.Message) { ... },
//	})
//	...
//	err = c.Run(ctx) // until ctx ends, Close, or the policy gives up
//
// # Lifecycle
//
// Run owns the connection. Each attempt: take the auth data (Config.Auth,
// or Config.AuthFunc, called every time so a token can be refreshed); ask
// the host URL for an edge if one is configured (else, or when discovery
// fails, dial Config.Addr); dial; TLS if configured; send /auth/server and
// wait for /auth/success, all within ConnectTimeout. Once logged in, a
// reader goroutine reads frames and a heartbeat goroutine sends /heartbeat
// every interval. The connection counts as dead when nothing (pushes or
// heartbeat replies) arrives for two intervals, on any read or write error,
// and when the edge sends /reconnect (it is shutting down) or /auth/failed
// (for example "kicked: logged in elsewhere"). Run then closes the socket,
// joins both goroutines, and applies the ReconnectPolicy.
//
// # Reconnecting
//
// Failed attempts in a row wait Backoff delays that grow by Factor up to Max,
// each randomised by Jitter; a connection that stayed up for a heartbeat
// interval starts the backoff over. After /reconnect from an edge that was
// serving the client, Run reconnects at once (only a small random spread)
// through the host URL, which sends it to another edge. Temporary
// refusals ("server busy", "auth unavailable") are retried with backoff. A
// refusal of the auth data is never retried with the same data, under any
// policy: with ReconnectAlways, Run asks AuthFunc once more and retries
// only if the data changed; otherwise Run returns the *AuthError.
//
// # Callbacks
//
// The Config.On* functions are the API for events and messages. Run calls
// them one at a time, in order, on the goroutine that called Run: OnConnect,
// then OnMessage for each push, then OnDisconnect, for each connection;
// OnConnectFailed or OnAuthFailed for attempts that fail. A callback may
// call Send and Close. While a callback runs, no message is delivered and
// after a few dozen pushes the reader stops reading, so keep them short
// and hand long work to your own goroutine. Once Close is called or Run's
// context ends, no further callback starts, and none runs after Close
// returns.
//
// # Errors
//
// Why a connection ended is reported as an error in DisconnectInfo.Err:
// match it with errors.Is against ErrHeartbeatTimeout, ErrServerReconnect,
// ErrConnectionLost, ErrProtocol, ErrAuthFailed, ErrUnavailable or
// ErrNoHost, or use errors.As for an *AuthError and its reason.
package client
