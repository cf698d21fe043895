package proxy

import (
	"fmt"
	"strings"

	"github.com/rs/zerolog"
)

// goproxyLogger routes goproxy's Printf logging into zerolog: its warnings at
// warn level, everything else at debug.
type goproxyLogger struct{ log zerolog.Logger }

// Printf implements goproxy.Logger.
func (l goproxyLogger) Printf(format string, v ...any) {
	msg := strings.TrimSpace(fmt.Sprintf(format, v...))
	if strings.Contains(msg, "WARN: ") {
		l.log.Warn().Msg(msg)
		return
	}
	l.log.Debug().Msg(msg)
}

// stdLogWriter adapts zerolog to a log.Logger (httputil.ReverseProxy.ErrorLog).
type stdLogWriter struct{ log zerolog.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
