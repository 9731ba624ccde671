// Command testbroker runs the embedded RocketMQ-compatible name server and
// broker (package seckill/pkg/testbroker) as a process, for `make run` and
// end-to-end tests. It logs JSON to stdout and stops on SIGINT/SIGTERM.
//
//	testbroker -namesrv 127.0.0.1:9876 -broker 127.0.0.1:10911 -topics ORDER:4,SOLDOUT:1 -delay-scale 1
//
// With -admin ADDR it also serves an HTTP admin API for fault-injection tests
// (no authentication: bind it to loopback): POST /faults sets the broker's
// fault hooks, GET /lag?group=G and GET /dlq?group=G inspect a group. See
// admin.go. With -metrics ADDR it serves Prometheus metrics on GET /metrics
// (metrics.go). -data-dir D keeps the messages (in commit-log segment files)
// and offsets in D across restarts, with only an index and a cache of the
// newest messages in memory (testbroker.Options.DataDir). Retention never
// drops what a subscribed group has not consumed (-retain,
// -group-retention; see the package doc).
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"seckill/pkg/logging"
	"seckill/pkg/testbroker"
)

func main() {
	if err := run(context.Background(), os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "testbroker:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	fs := flag.NewFlagSet("testbroker", flag.ContinueOnError)
	var (
		opts     testbroker.Options
		topics   string
		logLevel string
		admin    string
		metrics  string
	)
	fs.StringVar(&opts.NameSrvAddr, "namesrv", "127.0.0.1:9876", "name server listen address (ip:port)")
	fs.StringVar(&opts.BrokerAddr, "broker", "127.0.0.1:10911", "broker listen address (ip:port), advertised in routes")
	fs.StringVar(&opts.DataDir, "data-dir", "", "directory of the commit-log segments and log that survive a restart; memory then holds only an index and a cache (empty = memory only)")
	fs.Float64Var(&opts.DelayScale, "delay-scale", 1, "multiplier for delay levels (1 = real time, 0.01 = 100x faster)")
	fs.BoolVar(&opts.StrictTopics, "strict-topics", false, "answer TOPIC_NOT_EXIST for unknown topics like real RocketMQ")
	fs.IntVar(&opts.RetainPerQueue, "retain", 100000, "messages kept per queue once every subscribed group consumed them (without -data-dir also the most a queue holds: sends past it are refused)")
	fs.DurationVar(&opts.GroupRetention, "group-retention", 72*time.Hour, "how long a group with no member keeps holding back the messages it has not consumed")
	fs.StringVar(&topics, "topics", "", "topics to create, NAME:QUEUES comma-separated (e.g. ORDER:4,SOLDOUT:1)")
	fs.StringVar(&admin, "admin", "", "listen address of the HTTP admin API for fault injection (ip:port; empty = off)")
	fs.StringVar(&metrics, "metrics", "", "listen address of GET /metrics, Prometheus (ip:port; empty = off)")
	fs.StringVar(&logLevel, "log-level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var err error
	if opts.Topics, err = parseTopics(topics); err != nil {
		return err
	}
	log := logging.NewWriter(os.Stdout, "testbroker", logging.ParseLevel(logLevel))
	opts.Logger = log

	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	srv, err := testbroker.Run(ctx, opts)
	if err != nil {
		return err
	}
	httpErr := make(chan error, 2)
	for _, h := range []struct {
		name, addr string
		handler    func() http.Handler
	}{
		{"admin API", admin, func() http.Handler { return adminHandler(srv, log) }},
		{"metrics", metrics, func() http.Handler { return metricsHandler(srv) }},
	} {
		if h.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", h.addr)
		if err != nil {
			srv.Close()
			return fmt.Errorf("%s (%s): %w", h.name, h.addr, err)
		}
		hs := &http.Server{Handler: h.handler(), ReadHeaderTimeout: 5 * time.Second}
		go func() { httpErr <- fmt.Errorf("%s: %w", h.name, hs.Serve(ln)) }()
		defer hs.Close()
		log.Info(h.name+" listening", slog.String("addr", ln.Addr().String()))
	}
	log.Info("ready", slog.String("namesrv", srv.NameSrvAddr()), slog.String("broker", srv.BrokerAddr()),
		slog.String("data_dir", opts.DataDir))
	select {
	case <-ctx.Done():
	case err := <-httpErr:
		srv.Close()
		return err
	}
	return srv.Close()
}

// parseTopics parses "ORDER:4,SOLDOUT:1" (queue count defaults to 4).
func parseTopics(s string) (map[string]int, error) {
	out := map[string]int{}
	var errs []error
	for _, item := range strings.Split(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		name, n, found := strings.Cut(item, ":")
		queues := 4
		if found {
			v, err := strconv.Atoi(n)
			if err != nil || v <= 0 {
				errs = append(errs, fmt.Errorf("-topics: %q: queue count must be a positive integer", item))
				continue
			}
			queues = v
		}
		out[name] = queues
	}
	return out, errors.Join(errs...)
}
