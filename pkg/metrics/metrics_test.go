package metrics

import (
	"strings"
	"testing"
)

func TestNewRegistryHasRuntimeCollectors(t *testing.T) {
	t.Parallel()
	mfs, err := NewRegistry().Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	var goMetric, processMetric bool
	for _, mf := range mfs {
		goMetric = goMetric || strings.HasPrefix(mf.GetName(), "go_goroutines")
		processMetric = processMetric || strings.HasPrefix(mf.GetName(), "process_")
	}
	if !goMetric || !processMetric {
		t.Errorf("registry has go metrics %v, process metrics %v; want both", goMetric, processMetric)
	}
}
