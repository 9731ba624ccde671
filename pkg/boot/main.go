package boot

import (
	"context"
	"flag"
	"log/slog"
	"os"

	"seckill/pkg/httpx"
	"seckill/pkg/logging"
)

// Config is what main needs of a service's loaded Config: its HTTP address
// (promoted from Common) and a LogValue with the secrets masked.
type Config interface {
	slog.LogValuer
	Addr() string
}

// Main is a service's main. It parses the flags, builds the JSON logger for
// service, and then:
//
//   - -check-config: load, validate and log the masked config as one JSON
//     line ("config ok"); no connection is opened;
//   - -healthcheck: load, then probe GET /healthz on the config's HTTP address
//     (the distroless image has no curl): alive, serving HTTP;
//   - -readycheck: the same on GET /readyz: able to work now (database,
//     Redis, broker, consumers); fails while a dependency is down, so an
//     orchestrator that restarts on a failed check must use -healthcheck;
//   - otherwise run(ctx, log), which loads the config itself.
//
// Any error is logged one line per leaf (one per invalid config key) as
// "<service>-service failed", and the process exits 1.
func Main[C Config](service string, load func() (C, error), run func(context.Context, *slog.Logger) error) {
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	checkConfig := flags.Bool("check-config", false, "load and validate the config, print it masked as one JSON line, exit")
	healthcheck := flags.Bool("healthcheck", false, "probe this service's /healthz on HTTP_ADDR, exit 0 when healthy")
	readycheck := flags.Bool("readycheck", false, "probe this service's /readyz on HTTP_ADDR, exit 0 when ready")
	flags.Parse(os.Args[1:])

	log := logging.New(service)
	var err error
	switch {
	case *checkConfig:
		err = CheckConfig(log, load)
	case *healthcheck:
		err = Healthcheck(load, "/healthz")
	case *readycheck:
		err = Healthcheck(load, "/readyz")
	default:
		err = run(context.Background(), log)
	}
	if err != nil {
		LogErrors(log, service+"-service failed", err)
		os.Exit(1)
	}
}

// CheckConfig loads the config and logs it masked ("config ok").
func CheckConfig[C Config](log *slog.Logger, load func() (C, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	log.Info("config ok", "config", cfg)
	return nil
}

// Healthcheck loads the config and probes path (/healthz or /readyz) on the
// service's HTTP address.
func Healthcheck[C Config](load func() (C, error), path string) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	return httpx.ProbePath(cfg.Addr(), path)
}
