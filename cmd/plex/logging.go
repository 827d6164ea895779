package main

import (
	"context"
	"log/slog"
)

// quietNATS gives the embedded NATS server a logger that passes only
// warnings and errors, unless --log-level debug asks for everything: its
// info lines would bury the banner.
func quietNATS(g *globals, log *slog.Logger) *slog.Logger {
	if g.logLevel == "debug" {
		return log
	}
	return slog.New(minLevel{h: log.Handler(), min: slog.LevelWarn})
}

type minLevel struct {
	h   slog.Handler
	min slog.Level
}

func (m minLevel) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= m.min && m.h.Enabled(ctx, l)
}
func (m minLevel) Handle(ctx context.Context, r slog.Record) error { return m.h.Handle(ctx, r) }
func (m minLevel) WithAttrs(a []slog.Attr) slog.Handler {
	return minLevel{h: m.h.WithAttrs(a), min: m.min}
}
func (m minLevel) WithGroup(name string) slog.Handler {
	return minLevel{h: m.h.WithGroup(name), min: m.min}
}
