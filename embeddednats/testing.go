package embeddednats

import "testing"

// RunTest starts a server for a test and shuts it down in t.Cleanup.
// It fails the test at once if the server cannot start.
func RunTest(t testing.TB, cfg Config) *Server {
	t.Helper()
	s, err := Start(cfg)
	if err != nil {
		t.Fatalf("embeddednats: %v", err)
	}
	t.Cleanup(s.Shutdown)
	return s
}
