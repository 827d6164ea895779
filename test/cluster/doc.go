// Package cluster holds Plex's scale-out tests: many edges on a NATS
// cluster behaving as one system. It has no code of its own; the tests
// build the topology of the design's "Scale-out" section and check every
// promise it makes.
//
// In the default `go test` run:
//
//   - TestCluster builds three embedded nats-servers joined by routes on
//     loopback, three edges (each attached to a different node, failing over
//     to the others), an auth service and the HTTP API in this process, and
//     covers pushes, presence, online queries and kick-old across nodes,
//     host balancing, the loss of a NATS node and the loss of an edge (a
//     crash and a graceful shutdown).
//   - TestClusterProcesses does the same with the plex binary: `plex nats`
//     nodes with --cluster-name/--routes, `plex edge`, `plex auth` and
//     `plex api` with --nats URL lists, and SIGKILL for the losses.
//   - TestDevJoinsCluster: `plex dev` with the cluster flags joins a
//     `plex nats` node.
//   - TestDeployPermissions: the per-role NATS users of docs/deploy.md (its
//     plex-accounts.conf block, read from the file) let every part do its
//     job, on a hub node and a leaf node, and refuse what each role must
//     not do.
//   - TestEdgeNATSOrder: `plex edge --nats a,b,c --nats-no-randomize`
//     attaches to a, then fails over in that order. It fails until plex
//     has that flag.
//
// Behind the build tag clusterbench (see bench_test.go) are the
// measurements recorded in BENCHMARKS.md: the extra latency of a push that
// crosses a route, and the re-subscribe time of 15,000 users after their
// edge's NATS node is lost:
//
//	go test -tags clusterbench -run 'Bench' -v -count=1 -timeout 15m ./test/cluster/
package cluster
