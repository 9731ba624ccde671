// Package testbroker is an in-process RocketMQ name server and broker that
// the unmodified github.com/apache/rocketmq-client-go/v2 talks to over TCP,
// for tests, CI and `make run` (what miniredis is for Redis and kfake for
// Kafka). Production uses real Apache RocketMQ; this package follows its
// behaviour (4.9.4), not its storage.
//
// Start a broker for a test and point the client at it:
//
//	srv := testbroker.Start(t, func(o *testbroker.Options) { o.DelayScale = 0.01 })
//	p, _ := rocketmq.NewProducer(producer.WithNameServer([]string{srv.NameSrvAddr()}))
//
// What it speaks (one file per request family, each with a Behavior comment):
// routes 105 (route.go), send 10/320 (send.go), pull 11 with long polling
// (pull.go), offsets 14/15/29/30/31 (offset.go), heartbeat 34/35/38 and the
// broker→client 40 (heartbeat.go), retry/DLQ 36 (sendback.go), orderly locks
// 41/42 (lock.go), admin 17/215/216/206 (admin.go), delay levels
// (delay.go), transactions 37 and the broker→client 39 (tx.go). UNSUPPORTED.md lists what is not implemented.
//
// Inspection for assertions: Messages, DLQ, MaxOffset, MinOffset,
// ConsumerOffset, Lag, Consumers, Topics, PendingDelayed. Fault hooks
// (faults.go): DuplicateDelivery, DropOffsetCommits, Pause/Resume, Latency,
// RefuseSends.
//
// Storage (store.go): every queue is an index of its messages and a cache
// of their encodings. Retention (Options.RetainPerQueue,
// RetainBytesPerQueue) drops only what every subscribed group has
// consumed; a group gone for Options.GroupRetention stops counting. In
// memory (the default) every encoding is cached and a queue full of
// messages a group still needs refuses sends (14 SERVICE_NOT_AVAILABLE).
// Options.DataDir keeps the messages in commit-log segment files
// (segment.go) and the rest in an append-only log (persist.go) that a
// restart replays, with only the index and the newest messages of each
// queue in memory, so a backlog of millions of messages costs disk, not
// RAM. The log is rewritten to the live state at start and in the
// background whenever it has doubled since the last rewrite (compact.go,
// Options.LogCompactMinBytes); segments go once nothing in them is needed;
// a process killed at any point, mid-rewrite included, keeps every
// acknowledged message and committed offset.
//
// All state is guarded by one mutex (held for in-memory work and, with a
// data dir, for reading messages past the cache from the segments, adjacent
// records with one read; profiles show no contention on it). Requests that never wait run on their
// connection's reader goroutine and are answered right away; a pull with
// nothing to return is held without blocking the connection, and the append
// that satisfies it builds its answer and sends it after its own response,
// with no other goroutine woken in between (server.go, pull.go).
package testbroker
