package pushapi_test

import (
	"fmt"
	"io"
	"log"
	"net/http/httptest"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/plexbus/plex/embeddednats"
	"github.com/plexbus/plex/pushapi"
)

// The API over an embedded bus. No edge publishes stats yet, so host
// discovery answers from OuterServers.
func ExampleNew() {
	ns, err := embeddednats.Start(embeddednats.Config{})
	if err != nil {
		log.Fatal(err)
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()

	edges, err := pushapi.WatchEdges(nc, pushapi.EdgesConfig{})
	if err != nil {
		log.Fatal(err)
	}
	defer edges.Close()
	reg := prometheus.NewRegistry()
	h, err := pushapi.New(pushapi.Config{
		InnerPassword: "change-me",
		OuterServers:  []string{"203.0.113.7:9578"},
		Registerer:    reg,
	}, nc, edges)
	if err != nil {
		log.Fatal(err)
	}
	srv := httptest.NewServer(h) // a binary: pushapi.NewServer(addr, h, cfg).ListenAndServe()
	defer srv.Close()

	for _, path := range []string{"/plex/v1/host", "/healthz", "/plex/v1/edges"} {
		res, err := srv.Client().Get(srv.URL + path)
		if err != nil {
			log.Fatal(err)
		}
		body, _ := io.ReadAll(res.Body)
		res.Body.Close()
		fmt.Printf("%s %d %s", path, res.StatusCode, body)
	}
	// Output:
	// /plex/v1/host 200 {"host":"203.0.113.7:9578","heartbeat":60,"backoff":{"base":1.0,"factor":1.8,"jitter":0.3,"max":300}}
	// /healthz 200 {"status":"ok","bus":"connected"}
	// /plex/v1/edges 401 {"error":"missing bearer token"}
}
