//go:build linux

package busfaults

import (
	"encoding/json"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/plexbus/plex/test/busfaults/harness"
	"github.com/plexbus/plex/wire"
)

// secrets of a secured deployment, each a string no log line has any
// other reason to contain.
type secrets struct {
	natsUser, natsPassword string
	innerPassword          string
	jwtSecret              string
	goodToken              string // a valid device JWT
	forgedToken            string // signed with another key
	expiredToken           string
	badToken               string // not a JWT at all
	wrongInner             string // a wrong inner password
	wrongBearer            string // a wrong API bearer
	pushSecret             string // private data in a push body
}

func newSecrets(t *testing.T) secrets {
	s := secrets{
		natsUser:      "plexbus",
		natsPassword:  "natsPW-7f3c1e9a5b",
		innerPassword: "innerPW-4d8b2a6c0e",
		jwtSecret:     "jwtSECRET-0123456789abcdefghijklmnopqrstuvwxyz",
		badToken:      "badTOKEN-9e1f5a3c7b",
		wrongInner:    "wrongINNER-2c6e0a4b8d",
		wrongBearer:   "wrongBEARER-5b9d3f7a1c",
		pushSecret:    "pushSECRET-8a2c6e0b4d",
	}
	sign := func(key, sub string, exp time.Duration) string {
		tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
			"sub": sub, "exp": time.Now().Add(exp).Unix(),
		}).SignedString([]byte(key))
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	s.goodToken = sign(s.jwtSecret, "alice", time.Hour)
	s.forgedToken = sign("another-key-with-at-least-32-bytes-xx", "alice", time.Hour)
	s.expiredToken = sign(s.jwtSecret, "alice", -time.Hour)
	return s
}

// all lists the secret strings to look for, with the signature part of
// each token (a log could print a token cut short).
func (s secrets) all() map[string]string {
	out := map[string]string{
		"NATS password": s.natsPassword, "inner password": s.innerPassword, "JWT secret": s.jwtSecret,
		"bad token": s.badToken, "wrong inner password": s.wrongInner, "wrong bearer": s.wrongBearer,
		"push body": s.pushSecret,
	}
	for name, tok := range map[string]string{"good JWT": s.goodToken, "forged JWT": s.forgedToken, "expired JWT": s.expiredToken} {
		out[name] = tok
		out[name+" signature"] = tok[strings.LastIndex(tok, ".")+1:]
	}
	return out
}

// TestSecuredBus: `plex nats` requires a user and password over TLS (a CA
// made here); `plex auth`, `plex edge` and `plex api` connect with
// --nats-user/--nats-password (or the password in the URL) and --nats-ca,
// and the system works end to end: a device logs in with a JWT, pushes
// from the API and from an inner push client arrive. Every secret is fed
// through good and bad logins, pushes and errors, at --log-level info,
// warn and error, and none appears in any output.
func TestSecuredBus(t *testing.T) {
	t.Parallel()
	for _, lv := range []struct{ level, format string }{{"info", "text"}, {"warn", "json"}, {"error", "text"}} {
		t.Run(lv.level, func(t *testing.T) {
			s := newSecrets(t)
			certs := harness.NewCerts(t)
			logArgs := []string{"--log-level", lv.level, "--log-format", lv.format}
			busArgs := []string{"--nats-user", s.natsUser, "--nats-ca", certs.CA}

			natsProc, url := harness.StartNATS(t, nil, append([]string{"--nats-port", "0",
				"--nats-server-user", s.natsUser, "--nats-server-password", s.natsPassword,
				"--nats-tls-cert", certs.Cert, "--nats-tls-key", certs.Key}, logArgs...)...)
			hostPort := url[strings.Index(url, "://")+3:]
			tlsURL := "tls://" + hostPort

			// Secrets by flag, by environment variable and inside the URL.
			auth := harness.StartAuth(t, []string{"PLEX_JWT_SECRET=" + s.jwtSecret, "PLEX_NATS_PASSWORD=" + s.natsPassword},
				append(append([]string{"--nats", tlsURL}, busArgs...), logArgs...)...)
			edge := harness.StartEdge(t, nil, append(append([]string{"--nats", tlsURL, "--nats-password", s.natsPassword,
				"--inner-password", s.innerPassword}, busArgs...), logArgs...)...)
			api, apiURL := harness.StartAPI(t, []string{"PLEX_INNER_PASSWORD=" + s.innerPassword},
				append([]string{"--nats", "tls://" + s.natsUser + ":" + s.natsPassword + "@" + hostPort, "--nats-ca", certs.CA}, logArgs...)...)
			procs := []*harness.Proc{natsProc, auth, edge.Proc, api}

			// Bad logins first, so the good ones show the edge still serving.
			for _, bad := range []struct{ token, reason string }{
				{s.badToken, ""}, {s.forgedToken, ""}, {s.expiredToken, ""},
			} {
				uri, body, _ := loginResult(t, edge.Addr, bad.token, 5*time.Second)
				if uri != wire.URIAuthFailed || wire.TemporaryFailure(body) {
					t.Fatalf("bad token: %s %q, want a refusal", uri, body)
				}
			}
			inner := harness.Dial(t, edge.Addr)
			inner.Send(wire.URIInnerAuth, s.wrongInner)
			if m := inner.Expect(wire.URIAuthFailed, 5*time.Second); m.Body != wire.FailInnerRefused {
				t.Fatalf("wrong inner password: %q", m.Body)
			}
			if code, body, _ := harness.HTTPPost(apiURL+"/plex/v1/push", s.wrongBearer, `{"uid":"alice","body":"x"}`); code != http.StatusUnauthorized {
				t.Fatalf("push with a wrong bearer: %d %s", code, body)
			}
			if code, body, _ := harness.HTTPPost(apiURL+"/plex/v1/push", s.innerPassword, `{"uid":"alice","body":"`+s.pushSecret); code != http.StatusBadRequest {
				t.Fatalf("malformed push: %d %s", code, body)
			}

			device := harness.Dial(t, edge.Addr)
			device.Login(s.goodToken)
			code, body, err := harness.HTTPPost(apiURL+"/plex/v1/push?wait=1", s.innerPassword,
				`{"uid":"alice","uri":"/secret","body":"`+s.pushSecret+`"}`)
			if err != nil || code != http.StatusOK || !strings.Contains(body, `"delivered":1`) {
				t.Fatalf("push over the secured bus: %d %s %v", code, body, err)
			}
			if m := device.Expect("/secret", 5*time.Second); m.Body != s.pushSecret {
				t.Fatalf("device got %q", m.Body)
			}
			pusher := harness.Dial(t, edge.Addr)
			pusher.Send(wire.URIInnerAuth, s.innerPassword)
			pusher.Expect(wire.URIAuthSuccess, 5*time.Second)
			msg, _ := json.Marshal(map[string]string{"uid": "alice", "uri": "/inner", "body": s.pushSecret})
			pusher.Send(wire.URIInnerSend, string(msg))
			if m := device.Expect("/inner", 5*time.Second); m.Body != s.pushSecret {
				t.Fatalf("inner push: device got %q", m.Body)
			}

			// A part with the wrong password fails, and says so without it.
			wrong := s
			wrong.natsPassword = "wrongNATS-3e7a1c5f9b"
			_, errOut, code := harness.Run(t, 15*time.Second, nil, append([]string{"edge", "--port", "0", "--nats", tlsURL,
				"--nats-password", wrong.natsPassword}, append(busArgs, logArgs...)...)...)
			if code != 1 || strings.Contains(errOut, wrong.natsPassword) {
				t.Fatalf("edge with a wrong NATS password: exit %d, stderr %q", code, errOut)
			}

			// Stop in the operator's order: the bus last.
			for _, p := range []*harness.Proc{api, edge.Proc, auth, natsProc} {
				p.Signal(syscall.SIGTERM)
				if code, _ := p.Wait(15 * time.Second); code != 0 {
					t.Errorf("%s: exit %d after SIGTERM", p.Name, code)
				}
			}
			found := false
			for _, p := range procs {
				out := p.Output()
				for name, secret := range s.all() {
					if strings.Contains(out, secret) {
						t.Errorf("%s at --log-level %s printed the %s:\n%s", p.Name, lv.level, name, out)
						found = true
					}
				}
				if lv.level == "info" && len(out) == 0 {
					t.Errorf("%s printed nothing at info: the scan proves nothing", p.Name)
				}
			}
			if testing.Verbose() && lv.level == "info" {
				for _, p := range procs {
					t.Logf("%s output:\n%s", p.Name, p.Output())
				}
			}
			if !found {
				t.Logf("log level %s (%s): %d processes, %d bytes of output, no secret found", lv.level, lv.format, len(procs), outputBytes(procs))
			}
		})
	}
}

func outputBytes(procs []*harness.Proc) int {
	n := 0
	for _, p := range procs {
		n += len(p.Output())
	}
	return n
}

// TestWrongBusCredentials: each part started against a secured NATS with
// a wrong password, a CA that did not sign the server's certificate, or no
// credentials exits 1 at once with one clear line on stderr, which does
// not repeat the password.
func TestWrongBusCredentials(t *testing.T) {
	t.Parallel()
	s := newSecrets(t)
	certs := harness.NewCerts(t)
	_, url := harness.StartNATS(t, nil, "--nats-port", "0",
		"--nats-server-user", s.natsUser, "--nats-server-password", s.natsPassword,
		"--nats-tls-cert", certs.Cert, "--nats-tls-key", certs.Key)
	const wrongPW = "wrongNATS-6b0d4f8a2c"
	parts := map[string][]string{
		"edge": {"edge", "--port", "0"},
		"auth": {"auth", "--jwt-secret", s.jwtSecret},
		"api":  {"api", "--http-port", "0", "--inner-password", s.innerPassword},
	}
	cases := map[string]struct {
		args []string
		want string // in the error line
	}{
		"wrong password": {args: []string{"--nats-user", s.natsUser, "--nats-password", wrongPW, "--nats-ca", certs.CA}, want: "authorization violation"},
		"unknown CA":     {args: []string{"--nats-user", s.natsUser, "--nats-password", s.natsPassword, "--nats-ca", certs.OtherCA}, want: "certificate"},
		"no credentials": {args: []string{"--nats-ca", certs.CA}, want: "authorization violation"},
	}
	for part, partArgs := range parts {
		for name, tc := range cases {
			t.Run(part+"/"+name, func(t *testing.T) {
				args := append(append(append([]string{}, partArgs...), "--nats", url), tc.args...)
				start := time.Now()
				stdout, stderr, code := harness.Run(t, 15*time.Second, nil, args...)
				took := time.Since(start)
				line := strings.TrimSpace(stderr)
				if code != 1 || strings.Count(line, "\n") != 0 || !strings.HasPrefix(line, "plex: ") ||
					!strings.Contains(strings.ToLower(line), tc.want) {
					t.Fatalf("exit %d after %s, stderr:\n%s\nwant exit 1 and one line with %q", code, took, stderr, tc.want)
				}
				t.Logf("%s", line)
				if took > 10*time.Second {
					t.Fatalf("took %s to give up", took)
				}
				for _, secret := range []string{wrongPW, s.natsPassword, s.jwtSecret, s.innerPassword} {
					if strings.Contains(stdout+stderr, secret) {
						t.Fatalf("output repeats a secret: %s%s", stdout, stderr)
					}
				}
			})
		}
	}
}
