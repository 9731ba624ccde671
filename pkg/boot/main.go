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
//     (the distroless image has no curl);
//   - otherwise run(ctx, log), which loads the config itself.
//
// Any error is logged one line per leaf (one per invalid config key) as
// "<service>-service failed", and the process exits 1.
func Main[C Config](service string, load func() (C, error), run func(context.Context, *slog.Logger) error) {
	flags := flag.NewFlagSet(os.Args[0], flag.ExitOnError)
	checkConfig := flags.Bool("check-config", false, "load and validate the config, print it masked as one JSON line, exit")
	healthcheck := flags.Bool("healthcheck", false, "probe this service's /healthz on HTTP_ADDR, exit 0 when healthy")
	flags.Parse(os.Args[1:])

	log := logging.New(service)
	var err error
	switch {
	case *checkConfig:
		err = CheckConfig(log, load)
	case *healthcheck:
		err = Healthcheck(load)
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

// Healthcheck loads the config and probes the service's /healthz.
func Healthcheck[C Config](load func() (C, error)) error {
	cfg, err := load()
	if err != nil {
		return err
	}
	return httpx.Probe(cfg.Addr())
}
