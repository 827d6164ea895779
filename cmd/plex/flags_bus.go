package main

import (
	"log/slog"

	"github.com/nats-io/nats.go"
	"github.com/spf13/pflag"

	"github.com/plexbus/plex/bus"
)

// busFlags say how a part reaches NATS.
type busFlags struct {
	urls                      string
	user, password, token     string
	creds                     string
	caFile, certFile, keyFile string
	noRandomize               bool
	inboxPrefix               string
}

func (b *busFlags) register(fs *pflag.FlagSet, defURL string) {
	fs.StringVar(&b.urls, "nats", defURL, "NATS server URLs, comma-separated (a cluster: the client fails over between them)")
	fs.StringVar(&b.user, "nats-user", "", "NATS user name")
	fs.StringVar(&b.password, "nats-password", "", "NATS password")
	fs.StringVar(&b.token, "nats-token", "", "NATS token")
	fs.StringVar(&b.creds, "nats-creds", "", "NATS credentials file (.creds)")
	fs.StringVar(&b.caFile, "nats-ca", "", "CA file to verify NATS servers' TLS certificates")
	fs.StringVar(&b.certFile, "nats-cert", "", "client certificate for NATS TLS (with --nats-key)")
	fs.StringVar(&b.keyFile, "nats-key", "", "client key for NATS TLS")
	fs.BoolVar(&b.noRandomize, "nats-no-randomize", false, "connect to the --nats servers in the order given (default: shuffled)")
	fs.StringVar(&b.inboxPrefix, "nats-inbox-prefix", "", "prefix of reply subjects instead of _INBOX, so permissions can confine a role to its own replies")
}

func (b *busFlags) config(name string, log *slog.Logger) bus.ConnConfig {
	return bus.ConnConfig{
		URLs: b.urls, Name: name,
		User: b.user, Password: b.password, Token: b.token, CredsFile: b.creds,
		CAFile: b.caFile, CertFile: b.certFile, KeyFile: b.keyFile,
		NoRandomize: b.noRandomize, InboxPrefix: b.inboxPrefix,
		Logger: log,
	}
}

func (b *busFlags) connect(name string, log *slog.Logger, extra ...nats.Option) (*nats.Conn, error) {
	return bus.Connect(b.config(name, log), extra...)
}
