module seckill/loadtest

go 1.26.8

require (
	github.com/HdrHistogram/hdrhistogram-go v1.2.0
	github.com/go-echarts/go-echarts/v2 v2.6.7
	github.com/go-sql-driver/mysql v1.8.1
	github.com/redis/go-redis/v9 v9.23.0
	github.com/wcharczuk/go-chart/v2 v2.1.2
	seckill/pkg v0.0.0
)

require (
	filippo.io/edwards25519 v1.1.0 // indirect
	github.com/cespare/xxhash/v2 v2.3.0 // indirect
	github.com/golang/freetype v0.0.0-20170609003504-e2365dfdc4a0 // indirect
	go.uber.org/atomic v1.12.0 // indirect
	golang.org/x/image v0.18.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
)

replace seckill/pkg => ../pkg
