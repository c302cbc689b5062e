// Package app builds the running service from a config.Config and runs it:
// New wires the models, the stores, the FHIR and DICOMweb clients, the use
// case, the CDS engine, authentication, the precompute queue and the HTTP
// server; Run serves until its context ends, then shuts down in a fixed
// order with a bound on every wait. It is the one package that knows every
// adapter (store, fhir, auth), and it holds no domain logic. The model
// runtime (inference/onnx, the one package that needs cgo) reaches it
// through Runtime, passed in by cmd/orthotriage, so that app builds
// without cgo.
package app

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/orthotriage/orthotriage/analysis"
	"github.com/orthotriage/orthotriage/api"
	"github.com/orthotriage/orthotriage/config"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// App is the service, built and ready to Run.
type App struct {
	cfg config.Config
	log *slog.Logger

	models    []Model
	rdb       redis.UniversalClient // nil: everything is kept in this process
	cached    *analysis.Cached
	writeBack *analysis.WriteBack // nil: write-back off
	queue     precomputeQueue
	worklist  analysis.Worklist // the studies the use case noted, for the SMART app's worklist
	precomp   analysis.Handler
	readiness *api.Readiness
	server    *http.Server
	listener  net.Listener
	drains    drains
}

// drains bound the shutdown's waits after the HTTP drain
// (http.shutdown_timeout): the precompute workers to stop, the analyses
// under way to return once cancelled, the write-backs under way to finish
// (then they are cancelled). The defaults fit the chart's 30 s grace
// period with the 20 s default HTTP drain.
type drains struct {
	workers, analyses, writeBacks time.Duration
}

var defaultDrains = drains{workers: 3 * time.Second, analyses: 3 * time.Second, writeBacks: 3 * time.Second}

// New builds the service from cfg: it loads the models with rt (side by
// side), connects the stores, reads the keys and issuers, and listens on
// cfg.Listen (so that Addr is known before Run). Metrics are registered in
// reg, which /metrics serves. On error nothing stays open.
func New(ctx context.Context, cfg config.Config, log *slog.Logger, reg *prometheus.Registry, rt Runtime) (_ *App, err error) {
	a := &App{cfg: cfg, log: log, drains: defaultDrains}
	defer func() {
		if err != nil {
			a.release()
		}
	}()
	if a.models, err = loadModels(rt, cfg.ONNXRuntime, log); err != nil {
		return nil, err
	}
	st, err := openStores(ctx, cfg, log)
	if err != nil {
		return nil, err
	}
	a.rdb, a.queue, a.worklist = st.rdb, st.queue, st.worklist
	handler, err := a.wire(ctx, st, reg)
	if err != nil {
		return nil, err
	}
	a.listener, a.server, err = listen(cfg, handler, log)
	return a, err
}

// Addr is the address the service listens on.
func (a *App) Addr() net.Addr { return a.listener.Addr() }

// Run serves until ctx ends or the server fails, then shuts down (see
// shutdown). It returns the server's failure and the shutdown's errors,
// joined; nil after a clean stop.
func (a *App) Run(ctx context.Context) error {
	a.readiness.Refresh(ctx) // once before answering, then in the background
	bg := a.startBackground(context.WithoutCancel(ctx))
	served := make(chan error, 1)
	go func() { served <- a.serve() }()
	a.log.Info("listening", "addr", a.Addr().String(), "scheme", a.scheme())

	var serveErr error
	select {
	case err := <-served:
		serveErr = fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	err := errors.Join(serveErr, a.shutdown(bg))
	if err != nil {
		a.log.Error("stopped", "err", err)
		return err
	}
	a.log.Info("stopped")
	return nil
}

// background is what runs beside the server until shutdown: the readiness
// checks and the precompute workers.
type background struct {
	stopChecking, stopWorkers context.CancelFunc
	checked, worked           <-chan struct{}
}

func (a *App) startBackground(ctx context.Context) background {
	checking, stopChecking := context.WithCancel(ctx)
	working, stopWorkers := context.WithCancel(ctx)
	bg := background{stopChecking: stopChecking, stopWorkers: stopWorkers,
		checked: goDone(func() { a.readiness.Run(checking) }),
		worked:  goDone(func() { a.queue.Work(working, a.cfg.Precompute.Workers, a.precomp) })}
	a.log.Info("precompute workers started", "workers", a.cfg.Precompute.Workers, "queue", fmt.Sprintf("%T", a.queue))
	return bg
}

func (a *App) serve() error {
	if a.cfg.HTTP.TLSCertFile != "" {
		return a.server.ServeTLS(a.listener, a.cfg.HTTP.TLSCertFile, a.cfg.HTTP.TLSKeyFile)
	}
	return a.server.Serve(a.listener)
}

func (a *App) scheme() string {
	if a.cfg.HTTP.TLSCertFile != "" {
		return "https"
	}
	return "http"
}

// goDone runs f in a goroutine and returns a channel closed when it ends.
func goDone(f func()) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	return done
}
