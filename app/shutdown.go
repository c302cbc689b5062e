package app

import (
	"context"
	"errors"
	"fmt"
)

// shutdown stops the service in an order that leaves nothing using what is
// closed already, each wait bounded:
//
//  1. the precompute workers are told to stop (a job cut short is given
//     back to the queue), and HTTP stops accepting and drains the requests
//     in flight (http.shutdown_timeout);
//  2. the readiness checks stop, and the workers are waited for
//     (drains.workers);
//  3. the analyses under way (hooks' background computations, jobs') are
//     cancelled and waited for (drains.analyses);
//  4. the write-backs under way finish, or are cancelled
//     (drains.writeBacks);
//  5. the model sessions are closed, unless an analysis is still running:
//     then they are left open, a leak rather than a use after free, and
//     the log and the error say so;
//  6. Redis is closed.
//
// The errors of every step are joined.
func (a *App) shutdown(bg background) error {
	bg.stopWorkers()
	a.log.Info("shutting down: draining in-flight requests", "timeout", a.cfg.HTTP.ShutdownTimeout.String())
	var errs []error
	sctx, cancel := context.WithTimeout(context.Background(), a.cfg.HTTP.ShutdownTimeout)
	defer cancel()
	if err := a.server.Shutdown(sctx); err != nil {
		errs = append(errs, fmt.Errorf("shutdown: %w", err))
	}
	bg.stopChecking()
	wctx, wcancel := context.WithTimeout(context.Background(), a.drains.workers)
	defer wcancel()
	errs = append(errs, a.await(wctx, "precompute workers", bg.worked), a.await(wctx, "readiness checks", bg.checked))
	analysesDone := true
	if err := a.stopAnalyses(); err != nil {
		analysesDone = false
		errs = append(errs, err)
	}
	errs = append(errs, a.stopWriteBacks())
	if analysesDone {
		errs = append(errs, a.closeModels())
	} else {
		a.log.Error("model sessions left open: analyses still running after being cancelled", "bound", a.drains.analyses.String())
		errs = append(errs, errors.New("shutdown: model sessions left open under running analyses"))
	}
	if a.rdb != nil {
		if err := a.rdb.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close redis: %w", err))
		}
	}
	errs = append(errs, a.checkSessions())
	return errors.Join(errs...)
}

// await waits for done until ctx ends; an error names what did not stop.
func (a *App) await(ctx context.Context, what string, done <-chan struct{}) error {
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		a.log.Warn("shutdown: still running, going on without waiting", "what", what, "bound", a.drains.workers.String())
		return fmt.Errorf("shutdown: %s still running after %s", what, a.drains.workers)
	}
}

// stopAnalyses cancels the analyses under way and waits for them; an error
// means some still run (and hold their model sessions).
func (a *App) stopAnalyses() error {
	ctx, cancel := context.WithTimeout(context.Background(), a.drains.analyses)
	defer cancel()
	if err := a.cached.Shutdown(ctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// stopWriteBacks lets the write-backs under way finish within their bound.
func (a *App) stopWriteBacks() error {
	if a.writeBack == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.drains.writeBacks)
	defer cancel()
	if err := a.writeBack.Shutdown(ctx); err != nil {
		a.log.Warn("shutdown: write-backs cancelled", "err", err)
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// closeModels destroys the model sessions.
func (a *App) closeModels() error {
	var errs []error
	for _, m := range a.models {
		if err := m.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close model %s: %w", m.Manifest().ID, err))
		}
	}
	return errors.Join(errs...)
}

// checkSessions reports any use of a model after its Close: none is
// expected, since the analyses were stopped first.
func (a *App) checkSessions() error {
	var uses uint64
	for _, m := range a.models {
		uses += m.UsesAfterClose()
	}
	if uses == 0 {
		return nil
	}
	a.log.Error("model sessions used after close", "uses", uses)
	return fmt.Errorf("shutdown: model sessions used %d times after close", uses)
}

// release closes what New opened, when New fails.
func (a *App) release() {
	if a.listener != nil {
		a.listener.Close()
	}
	a.closeModels()
	if a.rdb != nil {
		a.rdb.Close()
	}
}
