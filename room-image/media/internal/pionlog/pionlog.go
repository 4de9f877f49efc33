// Package pionlog routes pion's logs to log/slog.
package pionlog

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/pion/logging"
)

// Factory is a logging.LoggerFactory writing to a slog.Logger, with the pion scope as attribute.
//
// pion's levels are shifted down: its warnings are mostly about routine events (a check before
// candidates arrived, a read on a connection being closed), so they are logged at debug level,
// and its errors as warnings. Its info, debug and trace messages go to debug-4.
type Factory struct {
	Logger *slog.Logger
}

// NewLogger implements logging.LoggerFactory.
func (f Factory) NewLogger(scope string) logging.LeveledLogger {
	return &logger{l: f.Logger.With("pion", scope)}
}

const levelVerbose = slog.LevelDebug - 4

type logger struct{ l *slog.Logger }

func (l *logger) log(level slog.Level, msg string) {
	if l.l.Enabled(context.Background(), level) {
		l.l.Log(context.Background(), level, msg)
	}
}

func (l *logger) logf(level slog.Level, format string, args ...any) {
	if l.l.Enabled(context.Background(), level) {
		l.l.Log(context.Background(), level, fmt.Sprintf(format, args...))
	}
}

func (l *logger) Trace(msg string)                  { l.log(levelVerbose, msg) }
func (l *logger) Tracef(format string, args ...any) { l.logf(levelVerbose, format, args...) }
func (l *logger) Debug(msg string)                  { l.log(levelVerbose, msg) }
func (l *logger) Debugf(format string, args ...any) { l.logf(levelVerbose, format, args...) }
func (l *logger) Info(msg string)                   { l.log(levelVerbose, msg) }
func (l *logger) Infof(format string, args ...any)  { l.logf(levelVerbose, format, args...) }
func (l *logger) Warn(msg string)                   { l.log(slog.LevelDebug, msg) }
func (l *logger) Warnf(format string, args ...any)  { l.logf(slog.LevelDebug, format, args...) }
func (l *logger) Error(msg string)                  { l.log(slog.LevelWarn, msg) }
func (l *logger) Errorf(format string, args ...any) { l.logf(slog.LevelWarn, format, args...) }
