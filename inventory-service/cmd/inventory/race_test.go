//go:build race

package main

// raceEnabled: client-go's orderly consumer reads its process queue without
// the lock (processQueue.takeMessages → msgCache.Empty, consumer/process_queue.go
// against putMessage), which the race detector reports as soon as one message
// is consumed orderly. Under -race the run test consumes the ledger
// concurrently; the orderly path runs in the tests built without -race.
const raceEnabled = true
