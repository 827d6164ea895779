package main

import (
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/plexbus/plex/authsvc"
)

// authFlags choose and configure the verifier of an auth service.
type authFlags struct {
	verifier      string
	allowDev      bool
	jwtAlg        string
	jwtSecret     string
	jwtSecretFile string
	jwtPublicKey  string
	jwtIssuer     string
	jwtAudience   string
	jwtLeeway     time.Duration
	webhookURL    string
	webhookHeader []string
	webhookTime   time.Duration
	maxConcurrent int
	verifyTimeout time.Duration
}

func (a *authFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&a.verifier, "verifier", "", "dev, jwt or webhook (default: jwt if a --jwt-* key is set, webhook if --webhook-url is)")
	fs.BoolVar(&a.allowDev, "allow-dev", false, "allow the dev verifier, which believes any claimed uid (never in production)")
	fs.StringVar(&a.jwtAlg, "jwt-alg", "", "JWT algorithm: HS256, RS256 or ES256 (default: HS256 with a secret, RS256/ES256 from the key type)")
	fs.StringVar(&a.jwtSecret, "jwt-secret", "", "HS256 shared secret, at least 32 bytes (prefer --jwt-secret-file)")
	fs.StringVar(&a.jwtSecretFile, "jwt-secret-file", "", "file holding the HS256 shared secret")
	fs.StringVar(&a.jwtPublicKey, "jwt-public-key", "", "PEM public key file for RS256 or ES256")
	fs.StringVar(&a.jwtIssuer, "jwt-issuer", "", "required iss claim (empty = not checked)")
	fs.StringVar(&a.jwtAudience, "jwt-audience", "", "required aud claim (empty = not checked)")
	fs.Var(dur(&a.jwtLeeway, 0), "jwt-leeway", "clock skew tolerated on exp, nbf and iat")
	fs.StringVar(&a.webhookURL, "webhook-url", "", "POST each login to this URL; 200 with {\"uid\"} accepts")
	fs.StringArrayVar(&a.webhookHeader, "webhook-header", nil, "header added to webhook calls, \"Name: value\" (repeatable)")
	fs.Var(dur(&a.webhookTime, authsvc.DefaultWebhookTimeout), "webhook-timeout", "bound on one webhook call")
	fs.IntVar(&a.maxConcurrent, "max-concurrent", authsvc.DefaultMaxConcurrent, "verifications running at once")
	fs.Var(dur(&a.verifyTimeout, authsvc.DefaultVerifyTimeout), "verify-timeout", "bound on one verification")
}

func (a *authFlags) build(log *slog.Logger, devAllowed bool) (authsvc.Verifier, string, error) {
	kind := a.verifier
	if kind == "" {
		switch {
		case a.jwtSecret != "" || a.jwtSecretFile != "" || a.jwtPublicKey != "":
			kind = "jwt"
		case a.webhookURL != "":
			kind = "webhook"
		case devAllowed:
			kind = "dev"
		default:
			return nil, "", usageErr("choose a verifier: --jwt-secret-file, --jwt-public-key, --webhook-url, or --verifier dev --allow-dev")
		}
	}
	switch kind {
	case "dev":
		if !devAllowed && !a.allowDev {
			return nil, "", usageErr("the dev verifier lets anyone log in as anyone: add --allow-dev to really use it")
		}
		v, err := authsvc.NewDev(authsvc.DevConfig{Insecure: true, Logger: log})
		return v, kind, err
	case "jwt":
		cfg := authsvc.JWTConfig{Algorithm: strings.ToUpper(a.jwtAlg), Issuer: a.jwtIssuer, Audience: a.jwtAudience, Leeway: a.jwtLeeway}
		switch {
		case a.jwtSecret != "" && a.jwtSecretFile != "":
			return nil, "", usageErr("--jwt-secret and --jwt-secret-file: give one")
		case a.jwtSecret != "":
			cfg.Secret = []byte(a.jwtSecret)
		case a.jwtSecretFile != "":
			s, err := authsvc.LoadSecretFile(a.jwtSecretFile)
			if err != nil {
				return nil, "", err
			}
			cfg.Secret = s
		}
		if a.jwtPublicKey != "" {
			if cfg.Secret != nil {
				return nil, "", usageErr("give a JWT secret or a public key, not both")
			}
			k, err := authsvc.LoadPublicKeyFile(a.jwtPublicKey)
			if err != nil {
				return nil, "", err
			}
			cfg.PublicKey = k
		}
		if cfg.Algorithm == "" {
			cfg.Algorithm = defaultJWTAlg(cfg)
		}
		v, err := authsvc.NewJWT(cfg)
		if err != nil {
			return nil, "", usageErr("jwt verifier: %v", err)
		}
		return v, kind + " " + cfg.Algorithm, nil
	case "webhook":
		h := http.Header{}
		for _, kv := range a.webhookHeader {
			k, v, ok := strings.Cut(kv, ":")
			if !ok {
				return nil, "", usageErr("--webhook-header %q: want \"Name: value\"", kv)
			}
			h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
		}
		v, err := authsvc.NewWebhook(authsvc.WebhookConfig{URL: a.webhookURL, Header: h, Timeout: a.webhookTime})
		if err != nil {
			return nil, "", usageErr("webhook verifier: %v", err)
		}
		return v, kind, nil
	}
	return nil, "", usageErr("--verifier %q: want dev, jwt or webhook", kind)
}

func defaultJWTAlg(cfg authsvc.JWTConfig) string {
	if cfg.Secret != nil {
		return authsvc.AlgHS256
	}
	if fmt.Sprintf("%T", cfg.PublicKey) == "*ecdsa.PublicKey" {
		return authsvc.AlgES256
	}
	return authsvc.AlgRS256
}

// start runs an auth service for v on nc, with metrics in reg.
func (a *authFlags) start(nc *nats.Conn, reg prometheus.Registerer, log *slog.Logger, v authsvc.Verifier) (*authsvc.Service, error) {
	results := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "plex_authsvc_results_total", Help: "Auth service answers by result.",
	}, []string{"result"})
	latency := prometheus.NewHistogram(prometheus.HistogramOpts{
		Name: "plex_authsvc_verify_seconds", Help: "Time from an auth request's receipt to its reply.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 4, 10),
	})
	for _, r := range authsvc.Results() {
		results.WithLabelValues(r)
	}
	if reg != nil {
		if err := reg.Register(results); err != nil {
			return nil, err
		}
		if err := reg.Register(latency); err != nil {
			return nil, err
		}
	}
	return authsvc.New(authsvc.Config{
		Version:       semver(version),
		MaxConcurrent: a.maxConcurrent,
		VerifyTimeout: a.verifyTimeout,
		Logger:        log.With("part", "auth"),
		OnResult: func(result string, d time.Duration) {
			results.WithLabelValues(result).Inc()
			latency.Observe(d.Seconds())
		},
	}, nc, v)
}

// semver turns the build version into what micro accepts.
func semver(v string) string {
	v = strings.TrimPrefix(v, "v")
	if v == "" || v == "dev" || strings.Count(v, ".") < 2 {
		return "0.0.0"
	}
	return v
}

func newAuthCmd(g *globals) *cobra.Command {
	var (
		af  authFlags
		bf  busFlags
		ops opsFlags
		pf  procsFlag
	)
	cmd := &cobra.Command{
		Use:   "auth",
		Short: "Run the auth service that answers edges' logins on plex.auth",
		Long: `Run a nats.go micro service in queue group plex-auth: run several for
capacity and failover. The verifier decides which uid a device is:
  jwt      a JWT (HS256, RS256 or ES256) whose sub is the uid; exp is required
  webhook  POST {"body","remote","edge","conn"} to your URL; 200 {"uid"} accepts
  dev      the body is the uid (insecure: development only)`,
		Example: `  plex auth --nats nats://127.0.0.1:4222 --jwt-secret-file /etc/plex/jwt.key --jwt-issuer https://id.example.com
  plex auth --jwt-public-key /etc/plex/jwt-rs256.pub
  plex auth --webhook-url https://api.example.com/plex/auth --webhook-header "Authorization: Bearer $TOKEN"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := g.logger(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			reg := newRegistry()
			v, kind, err := af.build(log, false)
			if err != nil {
				return err
			}
			nc, err := bf.connect("plex-auth", log)
			if err != nil {
				return err
			}
			defer nc.Close()
			svc, err := af.start(nc, reg, log, v)
			if err != nil {
				return err
			}
			stopOps, err := ops.start(reg, log, cmd.OutOrStdout())
			if err != nil {
				_ = svc.Stop()
				return err
			}
			defer stopOps()
			stopProcs := pf.start(cmd.Context(), log)
			defer stopProcs()
			fmt.Fprintf(cmd.OutOrStdout(), "auth service (%s verifier) answering plex.auth on %s\n", kind, nc.ConnectedUrlRedacted())
			<-cmd.Context().Done()
			err = svc.Stop()
			_ = nc.Drain()
			return err
		},
	}
	af.register(cmd.Flags())
	bf.register(cmd.Flags(), "nats://127.0.0.1:4222")
	ops.register(cmd.Flags())
	pf.register(cmd)
	return cmd
}
