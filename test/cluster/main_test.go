package cluster

import (
	"os"
	"path/filepath"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.Cleanup(func(int) {
		if dir := builtDir.Load(); dir != nil {
			_ = os.RemoveAll(filepath.Clean(*dir))
		}
	}))
}
