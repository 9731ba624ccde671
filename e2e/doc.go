// Package e2e holds the end-to-end tests of the flash-sale system: the whole
// system run as real processes (system_test.go, harness in internal/stack)
// and the docker-compose file checked against the services' configuration.
//
// TestSystem builds the broker and the four services, and for each order
// send mode (outbox, batch, sync) starts them on fresh MariaDB databases and
// Redis database 9, runs a sale (a few hundred concurrent orders, idempotent
// replays, per-user limit, sell-out, half the orders paid, the rest closed by
// the pay timeout) and checks every database, Redis and the HTTP APIs. It is
// skipped under -short and fails when MariaDB or Redis is unreachable.
//
// TestConsole runs the sale console (console/) against the stack during a
// small load and drives its page in headless Chromium (Debian's chromium
// package, through chromedp): every number on the page must match the
// services' /metrics and APIs read around the page's board; with a service
// stopped the page must still load and name it.
//
// TestRunScript runs deploy/run.sh (make run) on free ports with MYSQL_ADDR
// and REDIS_ADDR where nothing listens, so it starts its private MariaDB and
// Redis, and checks that SIGTERM, SIGHUP and run.sh -stop leave nothing
// running.
//
// Environment:
//
//	MYSQL_DSN          server DSN (default root@tcp(127.0.0.1:3306)/?parseTime=true&loc=UTC)
//	REDIS_ADDR         default 127.0.0.1:6379
//	E2E_REDIS_DB       Redis database index of the services (default 9; flushed at start)
//	ROCKETMQ_NAMESRV   use this RocketMQ instead of starting the embedded broker
//	E2E_BIN_DIR        use prebuilt binaries (e.g. bin/ of `make build`) instead of building
//	E2E_RACE           build the binaries with the race detector
//	E2E_LOG_DIR        keep each process's log under this directory (default: a temp dir)
//	E2E_KEEP_DB        keep the test databases after the run
//	E2E_CONSOLE_PNG    where TestConsole writes its screenshot (default: the log directory);
//	                   docs/console.png is made with E2E_CONSOLE_PNG=$PWD/docs/console.png
//	CHROMIUM           the Chromium binary (default: chromium on PATH)
package e2e
