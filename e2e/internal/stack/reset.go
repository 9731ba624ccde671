package stack

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ResetBrokerStore stops the embedded broker (SIGTERM), deletes everything
// in its data dir (Options.BrokerDataDir), as `rm -rf .run/broker` between
// two `make run` does, and starts it again on the same ports with an empty
// store. Stop the services first if they must not see the broker go.
func (s *Stack) ResetBrokerStore() error {
	if s.Broker == nil {
		return fmt.Errorf("no embedded broker (ROCKETMQ_NAMESRV is set)")
	}
	dir := s.Opts.BrokerDataDir
	if dir == "" {
		return fmt.Errorf("the broker has no data dir (Options.BrokerDataDir)")
	}
	if err := s.Broker.Stop(); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("reset broker store: %w", err)
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("reset broker store: %w", err)
		}
	}
	p, err := s.Broker.restart()
	if err != nil {
		return err
	}
	s.Broker = p
	return waitTCP(p, 30*time.Second, s.NameSrv, s.BrokerAddr, s.BrokerAdmin)
}
