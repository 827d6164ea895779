package embeddednats

import (
	"context"
	"fmt"
	"log/slog"
)

// slogAdapter routes nats-server's printf-style log into slog.
type slogAdapter struct{ log *slog.Logger }

func (a *slogAdapter) logf(level slog.Level, format string, v ...any) {
	if a.log.Enabled(context.Background(), level) {
		a.log.Log(context.Background(), level, fmt.Sprintf(format, v...), "component", "nats")
	}
}

func (a *slogAdapter) Noticef(format string, v ...any) { a.logf(slog.LevelInfo, format, v...) }
func (a *slogAdapter) Warnf(format string, v ...any)   { a.logf(slog.LevelWarn, format, v...) }
func (a *slogAdapter) Fatalf(format string, v ...any)  { a.logf(slog.LevelError, format, v...) }
func (a *slogAdapter) Errorf(format string, v ...any)  { a.logf(slog.LevelError, format, v...) }
func (a *slogAdapter) Debugf(format string, v ...any)  { a.logf(slog.LevelDebug, format, v...) }
func (a *slogAdapter) Tracef(format string, v ...any)  { a.logf(slog.LevelDebug-4, format, v...) }
