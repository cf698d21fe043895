package proxy

import (
	"strings"

	"github.com/rs/zerolog"
)

// stdLogWriter adapts zerolog to a log.Logger (httputil.ReverseProxy.ErrorLog).
type stdLogWriter struct{ log zerolog.Logger }

func (w stdLogWriter) Write(p []byte) (int, error) {
	w.log.Warn().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}
