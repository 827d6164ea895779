package pushapi

import (
	"crypto/sha256"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"
)

// TestBearerCompareTiming checks that requireBearer's answer time does not
// depend on where a wrong token differs from the password, nor on whether
// the password's length is the token's, so the password cannot be guessed
// byte by byte (or its length learned) through timing.
//
// HTTP round trips are far too noisy to see a string compare, so it times
// the middleware itself with a 1 MiB password, interleaving the two tokens
// of a pair over many runs. A plain == (or bytes.Equal) stops at the first
// difference: on 1 MiB, a token wrong at its last byte takes tens of
// microseconds longer than one wrong at its first, which costs almost
// nothing. The hash compare costs the same SHA-256 of the token either way.
//
// The machine is shared and noisy (two runs of the same call differ by
// hundreds of microseconds), so the statistic is the fast end of each
// distribution (its 10th percentile), and the gap is taken relative to it:
// a leak makes one side many times the other (for ==, ~100 times); the
// hash compare keeps them within a few percent, and the test allows 25%. The same harness first times a plain ==, to prove
// it sees that leak here.
func TestBearerCompareTiming(t *testing.T) {
	const size = 1 << 20
	rng := rand.New(rand.NewPCG(1, 2))
	pw := make([]byte, size)
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	for i := range pw {
		pw[i] = alphabet[rng.IntN(len(alphabet))]
	}
	password := string(pw)
	wrongAt := func(i int) string {
		b := []byte(password)
		b[i] ^= 0x01 // stays a printable character
		return "Bearer " + string(b)
	}
	first, last := wrongAt(0), wrongAt(size-1)

	bearer := func(password string) http.Handler {
		a := &api{
			cfg:          Config{InnerPassword: password},
			passwordHash: sha256.Sum256([]byte(password)),
			metrics:      newMetrics(func() float64 { return 0 }),
		}
		return a.requireBearer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	}
	real := bearer(password)
	// longerPW is a password one byte longer than the tokens: the same
	// token against it must take as long (a compare that returns early on
	// a length mismatch would tell an attacker the password's length).
	longerPW := bearer(password + "x")
	// leaky is what requireBearer must not be: the token compared with ==.
	leaky := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, ok := bearerToken(r.Header.Get("Authorization"))
		if !ok || tok != password {
			w.WriteHeader(http.StatusUnauthorized)
		}
	})

	// Sanity: the real check refuses the wrong tokens and admits the password.
	for _, h := range []string{first, last, "", "Bearer x"} {
		if code := serve(real, h); code != http.StatusUnauthorized {
			t.Fatalf("token %.20q…: status %d, want 401", h, code)
		}
	}
	if code := serve(real, "Bearer "+password); code != http.StatusOK {
		t.Fatalf("the password itself: status %d", code)
	}

	ref := timePair(leaky, first, leaky, last, 2000)
	t.Logf("plain ==, 1 MiB: wrong at first byte %v, at last byte %v (p10 of 2000 runs each)", ref.a, ref.b)
	if ref.b-ref.a < 5*time.Microsecond || ref.rel() < 1 {
		t.Fatalf("the harness cannot see a plain =='s leak here: %v vs %v", ref.a, ref.b)
	}
	for _, tc := range []struct {
		name   string
		ha, hb http.Handler
		a, b   string
	}{
		{"token wrong at first byte vs at last byte", real, real, first, last},
		{"password of the token's length vs one byte longer", real, longerPW, last, last},
	} {
		p := timePair(tc.ha, tc.a, tc.hb, tc.b, 300)
		t.Logf("requireBearer, %s: %v vs %v (p10 of 300 runs each), gap %.1f%%", tc.name, p.a, p.b, 100*p.rel())
		if p.rel() > 0.25 {
			t.Errorf("requireBearer, %s: %v vs %v: the time depends on the password "+
				"(a plain == shows %v vs %v)", tc.name, p.a, p.b, ref.a, ref.b)
		}
	}
}

// serve runs one request with the given Authorization header through h.
func serve(h http.Handler, auth string) int {
	req := httptest.NewRequest(http.MethodGet, "/plex/v1/edges", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec.Code
}

// pairTimes are the 10th percentiles of the times of two requests.
type pairTimes struct{ a, b time.Duration }

// rel is |b-a| relative to the faster of the two.
func (p pairTimes) rel() float64 {
	lo, hi := min(p.a, p.b), max(p.a, p.b)
	return float64(hi-lo) / float64(max(lo, 1))
}

// timePair times ha with Authorization a and hb with b, interleaved (and
// alternating which goes first, so drift and cache effects fall on both),
// n times each, and returns the 10th percentile of each.
func timePair(ha http.Handler, a string, hb http.Handler, b string, n int) pairTimes {
	reqA := httptest.NewRequest(http.MethodGet, "/plex/v1/edges", nil)
	reqA.Header.Set("Authorization", a)
	reqB := httptest.NewRequest(http.MethodGet, "/plex/v1/edges", nil)
	reqB.Header.Set("Authorization", b)
	once := func(h http.Handler, r *http.Request) time.Duration {
		rec := httptest.NewRecorder()
		start := time.Now()
		h.ServeHTTP(rec, r)
		return time.Since(start)
	}
	for range 20 { // warm up
		once(ha, reqA)
		once(hb, reqB)
	}
	ta, tb := make([]time.Duration, n), make([]time.Duration, n)
	for i := range n {
		if i%2 == 0 {
			ta[i] = once(ha, reqA)
			tb[i] = once(hb, reqB)
		} else {
			tb[i] = once(hb, reqB)
			ta[i] = once(ha, reqA)
		}
	}
	slices.Sort(ta)
	slices.Sort(tb)
	return pairTimes{ta[n/10], tb[n/10]}
}
