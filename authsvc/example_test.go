package authsvc_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/plexbus/plex/authsvc"
	"github.com/plexbus/plex/bus"
	"github.com/plexbus/plex/embeddednats"
)

// A business serves its own verifier: a function from the auth request to
// a uid, or a refusal with the reason the device is shown.
func Example() {
	// In production: nc, err := bus.Connect(bus.ConnConfig{URLs: "nats://..."})
	ns, err := embeddednats.Start(embeddednats.Config{DontListen: true})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer ns.Shutdown()
	nc, err := ns.Connect()
	if err != nil {
		fmt.Println(err)
		return
	}
	defer nc.Close()

	sessions := map[string]string{"s3cr3t-session": "42"} // e.g. a database lookup
	verify := authsvc.VerifierFunc(func(ctx context.Context, req bus.AuthRequest) (string, error) {
		uid, ok := sessions[req.Body]
		if !ok {
			return "", authsvc.Refuse("unknown session")
		}
		return uid, nil
	})
	svc, err := authsvc.New(authsvc.Config{Version: "1.0.0"}, nc, verify)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Stop()

	// What an edge does when a client sends /auth/server.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, body := range []string{"s3cr3t-session", "stolen-session"} {
		rep, err := bus.RequestAuth(ctx, nc, bus.AuthRequest{Body: body, Remote: "10.0.0.1:5555", Edge: "e1", Conn: "e1-1"})
		fmt.Printf("ok=%v uid=%q reason=%q err=%v\n", rep.OK, rep.UID, rep.Reason, err)
	}
	// Output:
	// ok=true uid="42" reason="" err=<nil>
	// ok=false uid="" reason="unknown session" err=<nil>
}

// SimpleFunc keeps the original framework's authFunc(body) (uid, ok) shape.
func ExampleSimpleFunc() {
	v := authsvc.SimpleFunc(func(body string) (string, bool) {
		uid, ok := strings.CutPrefix(body, "user:")
		return uid, ok
	})
	for _, body := range []string{"user:7", "nobody"} {
		uid, err := v.Verify(context.Background(), bus.AuthRequest{Body: body})
		fmt.Printf("uid=%q err=%v\n", uid, err)
	}
	// Output:
	// uid="7" err=<nil>
	// uid="" err=authsvc: refused: refused
}
