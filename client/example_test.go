package client_test

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"os"
	"os/signal"
	"time"

	"github.com/plexbus/plex/client"
)

// A device that connects to one edge, prints every push and reconnects on
// its own until interrupted.
func Example() {
	c, err := client.New(client.Config{
		Addr: "push.example.com:9578",
		Auth: os.Getenv("PLEX_TOKEN"),
		OnConnect: func(ci client.ConnectInfo) {
			log.Printf("online as %s on %s", ci.UID, ci.Addr)
		},
		OnMessage: func(m client.Message) {
			log.Printf("push %d %s: %s", m.Seq, m.URI, m.Body)
		},
		OnDisconnect: func(d client.DisconnectInfo) {
			log.Printf("offline: %v (retry in %s)", d.Err, d.Delay)
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := c.Run(ctx); err != nil {
		log.Fatal(err) // the policy gave up, e.g. the token was refused
	}
}

// Host discovery with a token that is refreshed before every connection.
// After a refusal the client asks for a token once more and retries only if
// it changed, so an expired token is renewed but a revoked one stops the
// client instead of hammering the server.
func Example_hostDiscovery() {
	tokens := newTokenSource()
	c, err := client.New(client.Config{
		HostURL:  "https://api.example.com/plex/v1/host",
		Addr:     "push.example.com:9578", // used when discovery fails
		AuthFunc: tokens.Token,
		Logger:   slog.Default(),
		OnMessage: func(m client.Message) {
			fmt.Println(m.URI, m.Body)
		},
		OnAuthFailed: func(d client.DisconnectInfo) {
			if ae, ok := errors.AsType[*client.AuthError](d.Err); ok && ae.Kicked() {
				log.Print("signed in on another device")
			}
			if !d.Reconnect {
				tokens.Invalidate()
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	err = c.Run(context.Background())
	if errors.Is(err, client.ErrAuthFailed) {
		log.Print("please sign in again")
	}
}

// An IoT device on a poor link: small heartbeats to notice a dead
// connection within a minute, a short backoff cap, and no reconnect after a
// refusal.
func ExampleConfig_poorNetwork() {
	c, err := client.New(client.Config{
		Addr:           "10.0.0.1:9578",
		Auth:           "device-7f3a",
		Heartbeat:      25 * time.Second, // dead after 50 s of silence
		ConnectTimeout: 20 * time.Second,
		Reconnect:      client.ReconnectOnFailure,
		Backoff:        client.Backoff{Base: 2 * time.Second, Max: time.Minute},
		OnMessage:      func(m client.Message) { handle(m) },
	})
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		time.Sleep(time.Hour)
		c.Close() // stops Run; no callback runs after Close returns
	}()
	_ = c.Run(context.Background())
}

// Send writes an application frame, here an acknowledgement from inside
// the message callback.
func ExampleClient_Send() {
	var c *client.Client
	c, err := client.New(client.Config{
		Addr: "push.example.com:9578",
		Auth: "token",
		OnMessage: func(m client.Message) {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			if err := c.Send(ctx, "/ack", fmt.Sprint(m.Seq)); err != nil {
				log.Printf("ack %d: %v", m.Seq, err) // ErrNotConnected while offline
			}
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	_ = c.Run(context.Background())
}

func ExampleParseReconnectPolicy() {
	for _, s := range []string{"", "on-failure", "never"} {
		p, err := client.ParseReconnectPolicy(s)
		fmt.Println(p, err)
	}
	// Output:
	// always <nil>
	// on-failure <nil>
	// never <nil>
}

func handle(client.Message) {}

// tokenSource stands in for an app's own token cache.
type tokenSource struct{}

func newTokenSource() *tokenSource                             { return &tokenSource{} }
func (*tokenSource) Token(ctx context.Context) (string, error) { return "token", nil }
func (*tokenSource) Invalidate()                               {}
