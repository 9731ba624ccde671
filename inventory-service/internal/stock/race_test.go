//go:build race

package stock_test

// raceEnabled: client-go's orderly consumer reads its process queue without
// the lock (processQueue.takeMessages → msgCache.Empty, consumer/process_queue.go),
// which the race detector reports whenever a pull lands while the queue is
// consumed. Under -race the ledger test replays the ledger queue in order
// itself instead of running an orderly consumer.
const raceEnabled = true
