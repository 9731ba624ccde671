package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"seckill/pkg/config"
	"seckill/pkg/logging"
)

// Config is the console's configuration: defaults, then the environment,
// then the command line (a flag wins over its variable).
type Config struct {
	HTTPAddr     string        // HTTP_ADDR, -http-addr: where the page is served
	OrderURL     string        // ORDER_URL, -order-url: order-service base URL
	PaymentURL   string        // PAYMENT_URL, -payment-url
	InventoryURL string        // INVENTORY_URL, -inventory-url
	LogisticsURL string        // LOGISTICS_URL, -logistics-url
	NameSrv      string        // ROCKETMQ_NAMESRV, -namesrv: ip:port[;ip:port]
	AccessKey    string        // ROCKETMQ_ACCESS_KEY (ACL), environment only
	SecretKey    string        // ROCKETMQ_SECRET_KEY (ACL), environment only
	ConsumeRate  float64       // CONSUME_RATE, -consume-rate: the groups' msg/s, drawn as the reference line
	Interval     time.Duration // CONSOLE_INTERVAL, -interval: how often everything is read
	Products     int           // CONSOLE_PRODUCTS, -products: how many of the latest sales are shown
}

func defaultConfig() Config {
	return Config{
		HTTPAddr:     "127.0.0.1:8090",
		OrderURL:     "http://127.0.0.1:8080",
		PaymentURL:   "http://127.0.0.1:8081",
		InventoryURL: "http://127.0.0.1:8082",
		LogisticsURL: "http://127.0.0.1:8083",
		NameSrv:      "127.0.0.1:9876",
		ConsumeRate:  200,
		Interval:     time.Second,
		Products:     10,
	}
}

// loadConfig reads the environment o collects, then args; it reports every
// bad variable, flag and value at once. The usage text goes to usage.
func loadConfig(o *config.Overrides, args []string, usage io.Writer) (Config, error) {
	cfg := defaultConfig()
	o.String("HTTP_ADDR", &cfg.HTTPAddr)
	o.String("ORDER_URL", &cfg.OrderURL)
	o.String("PAYMENT_URL", &cfg.PaymentURL)
	o.String("INVENTORY_URL", &cfg.InventoryURL)
	o.String("LOGISTICS_URL", &cfg.LogisticsURL)
	o.String("ROCKETMQ_NAMESRV", &cfg.NameSrv)
	o.String("ROCKETMQ_ACCESS_KEY", &cfg.AccessKey)
	o.String("ROCKETMQ_SECRET_KEY", &cfg.SecretKey)
	o.Float("CONSUME_RATE", &cfg.ConsumeRate)
	o.Duration("CONSOLE_INTERVAL", &cfg.Interval)
	o.Int("CONSOLE_PRODUCTS", &cfg.Products)

	fs := flag.NewFlagSet("console", flag.ContinueOnError)
	fs.SetOutput(usage)
	fs.StringVar(&cfg.HTTPAddr, "http-addr", cfg.HTTPAddr, "listen address of the console page (HTTP_ADDR)")
	fs.StringVar(&cfg.OrderURL, "order-url", cfg.OrderURL, "order-service base URL (ORDER_URL)")
	fs.StringVar(&cfg.PaymentURL, "payment-url", cfg.PaymentURL, "payment-service base URL (PAYMENT_URL)")
	fs.StringVar(&cfg.InventoryURL, "inventory-url", cfg.InventoryURL, "inventory-service base URL (INVENTORY_URL)")
	fs.StringVar(&cfg.LogisticsURL, "logistics-url", cfg.LogisticsURL, "logistics-service base URL (LOGISTICS_URL)")
	fs.StringVar(&cfg.NameSrv, "namesrv", cfg.NameSrv, "RocketMQ name server(s), ip:port[;ip:port], the embedded broker's or a real one (ROCKETMQ_NAMESRV)")
	fs.Float64Var(&cfg.ConsumeRate, "consume-rate", cfg.ConsumeRate, "msg/s each consumer group is throttled to, the reference line of the charts (CONSUME_RATE)")
	fs.DurationVar(&cfg.Interval, "interval", cfg.Interval, "how often the services and the broker are read (CONSOLE_INTERVAL)")
	fs.IntVar(&cfg.Products, "products", cfg.Products, "how many of the latest sales to show (CONSOLE_PRODUCTS)")
	errs := []error{o.Err()}
	if err := fs.Parse(args); err != nil {
		errs = append(errs, err)
	} else if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments %q", fs.Args()))
	}
	errs = append(errs, cfg.Validate())
	if err := errors.Join(errs...); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// Validate reports every invalid setting at once, each naming its variable.
func (c Config) Validate() error {
	var errs []error
	if _, _, err := net.SplitHostPort(c.HTTPAddr); err != nil {
		errs = append(errs, fmt.Errorf("HTTP_ADDR: %q is not host:port", c.HTTPAddr))
	}
	for _, u := range []struct{ key, v string }{
		{"ORDER_URL", c.OrderURL}, {"PAYMENT_URL", c.PaymentURL},
		{"INVENTORY_URL", c.InventoryURL}, {"LOGISTICS_URL", c.LogisticsURL},
	} {
		p, err := url.Parse(u.v)
		if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" || p.User != nil {
			errs = append(errs, fmt.Errorf("%s: %q is not an http(s)://host:port base URL", u.key, u.v))
		}
	}
	servers := c.NameServers()
	if len(servers) == 0 {
		errs = append(errs, errors.New("ROCKETMQ_NAMESRV: empty"))
	}
	for _, s := range servers {
		// The broker probe speaks RocketMQ's remoting protocol like client-go,
		// which takes ip:port only.
		if _, err := netip.ParseAddrPort(s); err != nil {
			errs = append(errs, fmt.Errorf("ROCKETMQ_NAMESRV: %q is not ip:port", s))
		}
	}
	if (c.AccessKey == "") != (c.SecretKey == "") {
		errs = append(errs, errors.New("ROCKETMQ_ACCESS_KEY: ROCKETMQ_ACCESS_KEY and ROCKETMQ_SECRET_KEY must be set together"))
	}
	if c.ConsumeRate <= 0 || c.ConsumeRate > 100_000 {
		errs = append(errs, fmt.Errorf("CONSUME_RATE: %g out of (0, 100000] msg/s", c.ConsumeRate))
	}
	if c.Interval < 100*time.Millisecond || c.Interval > time.Minute {
		errs = append(errs, fmt.Errorf("CONSOLE_INTERVAL: %s out of [100ms, 1m]", c.Interval))
	}
	if c.Products < 1 || c.Products > 100 {
		errs = append(errs, fmt.Errorf("CONSOLE_PRODUCTS: %d out of 1..100", c.Products))
	}
	return errors.Join(errs...)
}

// NameServers splits NameSrv on ';', dropping blanks.
func (c Config) NameServers() []string {
	var out []string
	for _, s := range strings.Split(c.NameSrv, ";") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// pageURL is the URL a person opens for the listen address addr (the
// listener's, so port 0 is resolved), a wildcard host replaced by the
// loopback address.
func pageURL(addr string) string {
	host, port, _ := net.SplitHostPort(addr)
	if ip, err := netip.ParseAddr(host); host == "" || (err == nil && ip.IsUnspecified()) {
		host = "127.0.0.1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/"
}

// LogValue implements slog.LogValuer with the ACL credentials masked.
func (c Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.String("httpAddr", c.HTTPAddr),
		slog.String("orderURL", c.OrderURL),
		slog.String("paymentURL", c.PaymentURL),
		slog.String("inventoryURL", c.InventoryURL),
		slog.String("logisticsURL", c.LogisticsURL),
		slog.String("nameSrv", c.NameSrv),
		slog.Any("accessKey", logging.Secret(c.AccessKey)),
		slog.Any("secretKey", logging.Secret(c.SecretKey)),
		slog.Float64("consumeRate", c.ConsumeRate),
		slog.String("interval", c.Interval.String()),
		slog.Int("products", c.Products),
	)
}
