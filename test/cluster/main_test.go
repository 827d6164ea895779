package cluster

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/plexbus/plex/test/busfaults/harness"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) { harness.Cleanup() }))
}
