//go:build race

package testbroker

// raceEnabled reports a -race build. client-go's orderly consumer reads its
// processQueue tree (takeMessages) while the pull goroutine writes it
// (putMessage) without a lock, so the orderly case cannot pass under -race
// whatever the broker does.
const raceEnabled = true
