package app

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"

	"github.com/gin-gonic/gin"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/cds"
	"github.com/orthotriage/orthotriage/config"
	"github.com/prometheus/client_golang/prometheus"
)

// edge is what the router serves besides the settings.
type edge struct {
	engine       *cds.Engine
	readiness    *api.Readiness
	authenticate authenticator
	jwks         []byte
	precompute   *api.Precompute
	app          *api.App
}

// newRouter is the service's HTTP handler.
func newRouter(cfg config.Config, e edge, reg *prometheus.Registry, log *slog.Logger) http.Handler {
	gin.SetMode(gin.ReleaseMode)
	return api.NewRouter(api.Options{
		Log:            log,
		Registry:       reg,
		CDS:            e.engine,
		Ready:          e.readiness,
		BodyLimit:      cfg.HTTP.BodyLimitBytes,
		RequestTimeout: cfg.HTTP.RequestTimeout,
		AllowedOrigins: cfg.CORS.AllowedOrigins,
		Authenticate:   e.authenticate,
		PublicBaseURL:  cfg.Auth.PublicBaseURL,
		PerIP:          api.RateLimit{Rate: cfg.HTTP.RatePerIP, Burst: cfg.HTTP.BurstPerIP},
		JWKS:           e.jwks,
		PerIssuer:      api.RateLimit{Rate: cfg.HTTP.RatePerIssuer, Burst: cfg.HTTP.BurstPerIssuer},
		Precompute:     e.precompute,
		App:            e.app,
	})
}

// listen opens cfg.Listen (":0" picks a free port) and the server over it,
// with read, write and idle timeouts.
func listen(cfg config.Config, handler http.Handler, log *slog.Logger) (net.Listener, *http.Server, error) {
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, nil, fmt.Errorf("listen %s: %w", cfg.Listen, err)
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: cfg.HTTP.ReadTimeout,
		ReadTimeout:       cfg.HTTP.ReadTimeout,
		WriteTimeout:      cfg.HTTP.WriteTimeout,
		IdleTimeout:       cfg.HTTP.IdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	return ln, srv, nil
}
