//go:build !race

package stock_test

// raceEnabled: see race_test.go.
const raceEnabled = false
