// Package e2e holds the end-to-end tests of the flash-sale system: the whole
// system run as real processes (system_test.go, harness in internal/stack)
// and the docker-compose file checked against the services' configuration.
package e2e
