// Package pushapi is Plex's HTTP API (go-chi/chi v5): host discovery for
// devices, and push, online and edge queries for business services.
//
// Routes (bearer = "Authorization: Bearer <InnerPassword>"):
//
//	GET  /plex/v1/host          none    {"host","heartbeat","backoff"}: the least-loaded live edge
//	GET  /plex/v1/hosts         none    alias of /plex/v1/host (an older path of the original)
//	POST /plex/v1/push          bearer  {"uid"|"uids","uri","body","seq"}; ?wait=1 counts deliveries
//	GET  /plex/v1/online/{uid}  bearer  {"uid","online","conns"}
//	GET  /plex/v1/edges         bearer  {"edges":[...]}: the live edges and their stats
//	GET  /healthz               none    {"status","bus"}: 200 while the bus is connected, else 503
//	GET  /metrics               none    Prometheus text format
//
// Every error is JSON {"error": "..."} with a fitting status: 400 bad input,
// 401 missing or wrong bearer (with WWW-Authenticate), 404 unknown route,
// 405 wrong method (with Allow), 413 body or message too large, 503 bus
// unavailable or no edge, 504 edges did not answer in time. A panic in a
// handler is recovered into a JSON 500.
//
// The API holds no state of its own apart from the edge table: pushes are
// published on plex.user.<uid>, the online query is a Plex-Op: presence
// request answered by the edges holding the user, and ?wait=1 sums the
// edges' {"delivered": n} replies (see package bus).
//
// Host discovery: Edges keeps a table of the edges' plex.edge.stats
// messages. An edge is dropped after Missed (3) of its advertised
// intervals without stats. /plex/v1/host skips draining edges and edges at
// their max_conns and picks the least loaded of the others; load is the
// reported connection count plus the hand-outs since that report, so a burst
// of devices between two reports spreads over the edges instead of landing
// on one. When every candidate advertises max_conns, the fraction of max is
// compared instead, so a bigger edge takes more. Ties are broken at random.
// With no live edge, a configured OuterServers address is picked at random,
// as the original did; with neither, 503.
//
// Goroutines: the API starts none of its own beyond the request's. Edges
// holds one NATS subscription (its callback runs on nats.go's goroutine for
// that subscription) and expires entries lazily on read, so Close, which
// unsubscribes, is all it needs. A push with ?wait=1 to many uids waits for
// them in a bounded number of goroutines that the handler waits for.
//
// Wiring, as the binary does it:
//
//	edges, err := pushapi.WatchEdges(nc, pushapi.EdgesConfig{Logger: log})
//	defer edges.Close()
//	h, err := pushapi.New(pushapi.Config{InnerPassword: pw, Registerer: reg, Gatherer: reg}, nc, edges)
//	srv := pushapi.NewServer(":9579", h, cfg) // timeouts fitted to cfg
//	go srv.ListenAndServe()
//	<-ctx.Done()
//	srv.Shutdown(shutdownCtx) // then edges.Close(), then nc.Drain()
package pushapi
